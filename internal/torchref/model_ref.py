#!/usr/bin/python3
"""Reference forward + backward of a HF-format Llama / Qwen2 / Qwen3 / Gemma 3 (text) checkpoint.

  /usr/bin/python3 model_ref.py --model DIR --input IN.json --out OUT.safetensors [--dtype float64|float32]

IN.json: {"tokens": [[int]*T]*B, "loss_mask": [[0/1]*T]*B}; loss_mask[b][p]=1
means the logits at p (predicting tokens[b][p+1]) count in the loss.
Loss = mean over masked positions of -log softmax(logits[b,p])[tokens[b][p+1]].

OUT.safetensors (working dtype): "logits" [B,T,V], "loss" [] and
"grad.<HF name>" = dLoss/dparam for every parameter in the checkpoint (a tied
lm_head.weight, if the file has one, gets the shared embed_tokens gradient).
"""
import sys

sys.dont_write_bytecode = True

import argparse
import json
import os

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_decoder  # noqa: E402
import st_io  # noqa: E402

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def load_model(model_dir, dtype):
    """-> (cfg, params, aliases)."""
    config, tensors = st_io.load_checkpoint_dir(model_dir)
    cfg = hf_decoder.DecoderConfig(config)
    params, aliases = hf_decoder.build_params(cfg, tensors, dtype)
    return cfg, params, aliases


def masked_mean_loss(cfg, params, tokens, loss_mask):
    """-> (logits [B,T,V], loss scalar). tokens LongTensor, loss_mask float [B,T]."""
    if loss_mask[:, -1].any():
        raise ValueError("loss_mask is set at the last position T-1, which has no next token")
    n = loss_mask.sum()
    if n <= 0:
        raise ValueError("loss_mask selects no position")
    logits = hf_decoder.forward(cfg, params, tokens)
    nll = hf_decoder.next_token_nll(logits, tokens)  # [B, T-1]
    loss = (nll * loss_mask[:, :-1].to(nll.dtype)).sum() / n
    return logits, loss


def read_input(path):
    with open(path) as f:
        d = json.load(f)
    toks = d["tokens"]
    mask = d["loss_mask"]
    if not toks or len({len(r) for r in toks}) != 1:
        raise ValueError("tokens must be a non-empty list of equal-length rows")
    if len(mask) != len(toks) or any(len(m) != len(t) for m, t in zip(mask, toks)):
        raise ValueError("loss_mask must have the same shape as tokens")
    for row in mask:
        for v in row:
            if v not in (0, 1):
                raise ValueError("loss_mask entries must be 0 or 1")
    return torch.tensor(toks, dtype=torch.long), torch.tensor(mask, dtype=torch.float64)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="float64", choices=sorted(DTYPES))
    args = ap.parse_args(argv)
    dtype = DTYPES[args.dtype]

    cfg, params, aliases = load_model(args.model, dtype)
    tokens, loss_mask = read_input(args.input)
    if tokens.min() < 0 or tokens.max() >= cfg.vocab_size:
        raise ValueError("token id out of range")

    logits, loss = masked_mean_loss(cfg, params, tokens, loss_mask)
    loss.backward()

    npdt = np.float64 if dtype == torch.float64 else np.float32
    out = {"logits": logits.detach().numpy().astype(npdt), "loss": np.array(loss.item(), dtype=npdt)}
    for name, p in params.items():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        out["grad." + name] = g.numpy().astype(npdt)
    for alias, target in aliases.items():
        out["grad." + alias] = out["grad." + target]
    st_io.write_safetensors(args.out, out, metadata={"model_type": cfg.model_type, "dtype": args.dtype})
    print(f"loss {loss.item():.17g}  wrote {len(out)} tensors to {args.out}")


if __name__ == "__main__":
    main()
