"""Minimal safetensors reader/writer (numpy only) and HF checkpoint loader.

File format: 8-byte little-endian uint64 header length N, then N bytes of a
JSON header {name: {"dtype", "shape", "data_offsets": [begin, end]}, optional
"__metadata__": {str: str}}, then the raw little-endian tensor bytes; offsets
are relative to the first byte after the header.

Reading supports F64, F32, F16, BF16, I64, I32 (BF16 is widened to float32 by
placing its 16 bits in the top half of a uint32). Writing supports F64, F32,
I64, and BF16 (used only by the self-test to exercise the reader).
"""
import json
import os
import struct

import numpy as np

_READ_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "BF16": np.dtype("<u2"),  # raw bits, converted below
}

_WRITE_DTYPES = {
    np.dtype("float64"): "F64",
    np.dtype("float32"): "F32",
    np.dtype("int64"): "I64",
}


def read_safetensors(path):
    """Returns (tensors: dict name -> np.ndarray, metadata: dict or None)."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    base = 8 + n
    meta = header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        dt = info["dtype"]
        if dt not in _READ_DTYPES:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dt}")
        shape = tuple(int(s) for s in info["shape"])
        begin, end = info["data_offsets"]
        npdt = _READ_DTYPES[dt]
        count = int(np.prod(shape)) if shape else 1
        if end - begin != count * npdt.itemsize:
            raise ValueError(f"{path}: tensor {name}: byte range {end - begin} does not match shape {shape} x {dt}")
        arr = np.frombuffer(buf, dtype=npdt, count=count, offset=base + begin)
        if dt == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr.reshape(shape).copy()
    return out, meta


def _bf16_bits(arr):
    """float array -> uint16 bfloat16 bits (round to nearest even)."""
    u = np.ascontiguousarray(arr, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounding = 0x7FFF + ((u >> 16) & 1)
    return ((u + rounding) >> 16).astype(np.uint16)


def write_safetensors(path, tensors, metadata=None, dtypes=None):
    """Writes dict name -> array-like. dtypes optionally maps name -> "BF16"
    to store that tensor as bfloat16; otherwise the dtype follows the array
    (float64 -> F64, float32 -> F32, integer -> I64)."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        arr = np.asarray(tensors[name])
        if dtypes and dtypes.get(name) == "BF16":
            dt, raw = "BF16", _bf16_bits(arr).astype("<u2").tobytes()
        else:
            if np.issubdtype(arr.dtype, np.integer):
                arr = arr.astype(np.int64)
            if arr.dtype not in _WRITE_DTYPES:
                raise ValueError(f"tensor {name}: cannot write dtype {arr.dtype}")
            dt = _WRITE_DTYPES[arr.dtype]
            raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)  # align data to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def load_checkpoint_dir(model_dir):
    """Loads config.json and all tensors of a HF checkpoint directory:
    model.safetensors, or shards listed in model.safetensors.index.json."""
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    single = os.path.join(model_dir, "model.safetensors")
    index = os.path.join(model_dir, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(single):
        tensors, _ = read_safetensors(single)
    elif os.path.exists(index):
        with open(index) as f:
            wmap = json.load(f)["weight_map"]
        for shard in sorted(set(wmap.values())):
            part, _ = read_safetensors(os.path.join(model_dir, shard))
            for name, arr in part.items():
                if name in tensors:
                    raise ValueError(f"tensor {name} appears in more than one shard")
                tensors[name] = arr
        missing = set(wmap) - set(tensors)
        if missing:
            raise ValueError(f"index lists tensors absent from the shards: {sorted(missing)[:5]}")
    else:
        raise FileNotFoundError(f"{model_dir}: neither model.safetensors nor model.safetensors.index.json")
    return config, tensors
