package model

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"io"
	"maps"
	"math"
	"math/bits"
	"os"
	"slices"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/internal/atomicfile"
)

// NamedTensor pairs a tensor with its name in a safetensors file.
type NamedTensor struct {
	Name   string
	Tensor *tensors.Tensor
}

// safetensorsDTypes names each dtype this package writes (the inverse of safetensorsByName).
var safetensorsDTypes = func() map[dtypes.DType]string {
	m := map[dtypes.DType]string{}
	for name, dt := range safetensorsByName {
		m[dt] = name
	}
	return m
}()

// WriteSafetensors writes the tensors (in the given order) to path in the safetensors format,
// atomically: a reader never sees a partial file. metadata goes to the "__metadata__" entry.
func WriteSafetensors(path string, named []NamedTensor, metadata map[string]string) error {
	err := atomicfile.Write(path, func(w io.Writer) error { return EncodeSafetensors(w, named, metadata) })
	return errors.WithMessagef(err, "model: writing %s", path)
}

// EncodeSafetensors writes the tensors (in the given order) to w in the safetensors format.
func EncodeSafetensors(w io.Writer, named []NamedTensor, metadata map[string]string) error {
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var offset int64
	for _, nt := range named {
		if _, dup := header[nt.Name]; dup || nt.Name == "__metadata__" {
			return errors.Errorf("model: duplicate or reserved tensor name %q", nt.Name)
		}
		shape := nt.Tensor.Shape()
		dt, ok := safetensorsDTypes[shape.DType]
		if !ok {
			return errors.Errorf("model: tensor %q has dtype %s, which safetensors cannot hold", nt.Name, shape.DType)
		}
		size := int64(shape.ByteSize())
		dims := shape.Dimensions
		if dims == nil {
			dims = []int{}
		}
		header[nt.Name] = map[string]any{"dtype": dt, "shape": dims, "data_offsets": []int64{offset, offset + size}}
		offset += size
	}
	hdr, err := json.Marshal(header)
	if err != nil {
		return errors.Wrap(err, "model: encoding safetensors header")
	}
	// Pad the header with spaces to a multiple of 8 bytes, as the reference implementation does.
	for len(hdr)%8 != 0 {
		hdr = append(hdr, ' ')
	}
	if err := binary.Write(w, binary.LittleEndian, uint64(len(hdr))); err != nil {
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	for _, nt := range named {
		var werr error
		if err := nt.Tensor.ConstBytes(func(data []byte) { _, werr = w.Write(data) }); err != nil {
			return errors.Wrapf(err, "model: reading tensor %q", nt.Name)
		}
		if werr != nil {
			return werr
		}
	}
	return nil
}

// ReadSafetensors reads every tensor of one safetensors file into host memory, with the file's
// "__metadata__" (DecodeSafetensors).
func ReadSafetensors(path string) (map[string]*tensors.Tensor, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, errors.Wrapf(err, "model: reading %s", path)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, errors.Wrapf(err, "model: reading %s", path)
	}
	if st.IsDir() {
		return nil, nil, errors.Errorf("model: %s is a directory, not a safetensors file", path)
	}
	return DecodeSafetensors(path, f, st.Size())
}

// DecodeSafetensors reads the tensors of a safetensors file of size bytes from r (name labels the
// errors). The header is validated first (ParseSafetensorsHeader: every tensor's dtype, shape and
// byte range against the size), so a damaged or crafted file is an error naming the file and the
// tensor; then each tensor's bytes are read straight into its buffer. (go-huggingface's reader
// builds shapes and slices its memory map from the header as given, which panics on negative
// dimensions, and reads only files; this reads any io.ReaderAt, so the fuzz targets run in memory.)
func DecodeSafetensors(name string, r io.ReaderAt, size int64) (map[string]*tensors.Tensor, map[string]string, error) {
	hdr, err := ParseSafetensorsHeader(name, io.NewSectionReader(r, 0, size), size)
	if err != nil {
		return nil, nil, err
	}
	dataStart := size - hdr.DataSize
	out := make(map[string]*tensors.Tensor, len(hdr.Tensors))
	for _, e := range hdr.Tensors {
		t := tensors.FromShape(shapes.Make(e.DType, e.Shape...))
		var rerr error
		err := t.MutableBytes(func(b []byte) {
			if int64(len(b)) != e.End-e.Begin {
				rerr = errors.Errorf("%d bytes in memory for %d in the file", len(b), e.End-e.Begin)
				return
			}
			if n, err := r.ReadAt(b, dataStart+e.Begin); n < len(b) { // io.ReaderAt may say EOF with all bytes read
				rerr = err
			}
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			return nil, nil, errors.Wrapf(err, "model: %s: reading tensor %q", name, e.Name)
		}
		out[e.Name] = t
	}
	return out, hdr.Metadata, nil
}

// MaxSafetensorsHeader is the largest header accepted (the reference implementation's limit).
const MaxSafetensorsHeader = 100_000_000

// SafetensorsHeader is a validated safetensors header.
type SafetensorsHeader struct {
	Tensors  []SafetensorsEntry // sorted by byte offset
	Metadata map[string]string  // "__metadata__"
	DataSize int64              // bytes after the header
}

// SafetensorsEntry is one tensor's entry: dtype, shape and byte range [Begin, End) in the data
// section (which starts after the 8-byte length and the header).
type SafetensorsEntry struct {
	Name       string
	DType      dtypes.DType
	Shape      []int
	Begin, End int64
}

// safetensorsByName maps the safetensors dtype names this package reads to GoMLX dtypes.
var safetensorsByName = map[string]dtypes.DType{
	"BOOL": dtypes.Bool, "U8": dtypes.Uint8, "I8": dtypes.Int8, "U16": dtypes.Uint16, "I16": dtypes.Int16,
	"F16": dtypes.Float16, "BF16": dtypes.BFloat16, "U32": dtypes.Uint32, "I32": dtypes.Int32, "F32": dtypes.Float32,
	"U64": dtypes.Uint64, "I64": dtypes.Int64, "F64": dtypes.Float64,
}

// ParseSafetensorsHeader reads the header of a safetensors file of size bytes from r (positioned
// at the start of the file) and validates it as the reference implementation does: the header
// length fits in the file; the header is a JSON object whose "__metadata__" maps strings to
// strings; every other entry has a known dtype, non-negative dimensions and data_offsets [begin,
// end] with end − begin equal to the shape's byte size; the tensors tile the data section exactly,
// without overlap, hole or trailing bytes. Errors name path and the tensor.
func ParseSafetensorsHeader(path string, r io.Reader, size int64) (*SafetensorsHeader, error) {
	fail := func(format string, args ...any) error {
		return errors.Errorf("model: %s: "+format, append([]any{path}, args...)...)
	}
	if size < 8 {
		return nil, fail("%d bytes: too short for a safetensors file (8-byte header length, header, data)", size)
	}
	var n uint64
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
		return nil, errors.Wrapf(err, "model: %s: reading the header length", path)
	}
	if n > MaxSafetensorsHeader || int64(n) > size-8 {
		return nil, fail("header length %d exceeds the file (%d bytes) or the %d-byte limit: not a safetensors file, or truncated",
			n, size, MaxSafetensorsHeader)
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, errors.Wrapf(err, "model: %s: reading the %d-byte header", path, n)
	}
	if !bytes.HasPrefix(bytes.TrimLeft(raw, " \t\r\n"), []byte("{")) {
		return nil, fail("the header is not a JSON object: not a safetensors file")
	}
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fail("parsing the header: %v", err)
	}
	h := &SafetensorsHeader{Metadata: map[string]string{}, DataSize: size - 8 - int64(n)}
	for _, name := range slices.Sorted(maps.Keys(entries)) { // sorted: the first error is always the same one
		msg := entries[name]
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &h.Metadata); err != nil {
				return nil, fail("__metadata__ must map strings to strings: %v", err)
			}
			continue
		}
		e, err := parseSafetensorsEntry(name, msg, h.DataSize)
		if err != nil {
			return nil, fail("tensor %q: %v", name, err)
		}
		h.Tensors = append(h.Tensors, e)
	}
	slices.SortFunc(h.Tensors, func(a, b SafetensorsEntry) int {
		if c := cmp.Compare(a.Begin, b.Begin); c != 0 {
			return c
		}
		return cmp.Compare(a.End, b.End)
	})
	var at int64
	prev := ""
	for _, e := range h.Tensors {
		switch {
		case e.Begin < at:
			return nil, fail("tensor %q (bytes [%d, %d)) overlaps tensor %q (which ends at %d)", e.Name, e.Begin, e.End, prev, at)
		case e.Begin > at:
			return nil, fail("bytes [%d, %d) of the data belong to no tensor (a hole before tensor %q)", at, e.Begin, e.Name)
		}
		at, prev = e.End, e.Name
	}
	if at != h.DataSize {
		return nil, fail("%d bytes after the last tensor belong to no tensor", h.DataSize-at)
	}
	return h, nil
}

// parseSafetensorsEntry validates one tensor entry against a data section of dataSize bytes.
func parseSafetensorsEntry(name string, msg json.RawMessage, dataSize int64) (SafetensorsEntry, error) {
	var raw struct {
		DType   string  `json:"dtype"`
		Shape   []int64 `json:"shape"`
		Offsets []int64 `json:"data_offsets"`
	}
	e := SafetensorsEntry{Name: name}
	if err := json.Unmarshal(msg, &raw); err != nil {
		return e, errors.Errorf("invalid entry: %v", err)
	}
	dt, ok := safetensorsByName[raw.DType]
	if !ok {
		names := slices.Sorted(maps.Keys(safetensorsByName))
		return e, errors.Errorf("dtype %q is not one of %s", raw.DType, strings.Join(names, ", "))
	}
	if raw.Shape == nil {
		return e, errors.New("no shape")
	}
	elems := uint64(1)
	for _, d := range raw.Shape {
		if d < 0 {
			return e, errors.Errorf("shape %v has a negative dimension", raw.Shape)
		}
		hi, lo := bits.Mul64(elems, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return e, errors.Errorf("shape %v has more elements than fit in 64 bits", raw.Shape)
		}
		elems = lo
		e.Shape = append(e.Shape, int(d))
	}
	if len(raw.Offsets) != 2 {
		return e, errors.Errorf("data_offsets must be [begin, end], got %v", raw.Offsets)
	}
	e.Begin, e.End = raw.Offsets[0], raw.Offsets[1]
	if e.Begin < 0 || e.End < e.Begin {
		return e, errors.Errorf("data_offsets [%d, %d] are not 0 ≤ begin ≤ end", e.Begin, e.End)
	}
	if e.End > dataSize {
		return e, errors.Errorf("data_offsets [%d, %d] run past the end of the data (%d bytes): the file is truncated or damaged",
			e.Begin, e.End, dataSize)
	}
	if hi, want := bits.Mul64(elems, uint64(dt.Size())); hi != 0 || want != uint64(e.End-e.Begin) {
		return e, errors.Errorf("shape %v of %s needs %d×%d bytes, but data_offsets [%d, %d] hold %d",
			raw.Shape, raw.DType, elems, dt.Size(), e.Begin, e.End, e.End-e.Begin)
	}
	e.DType = dt
	return e, nil
}

// SortedNames returns the keys of a tensor map in lexical order.
func SortedNames(m map[string]*tensors.Tensor) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ConvertTensor returns t converted to dtype on the host (a copy; t itself if the dtype matches).
// Supported: float64, float32, bfloat16, float16, in any direction.
func ConvertTensor(t *tensors.Tensor, dtype dtypes.DType) (*tensors.Tensor, error) {
	from := t.Shape().DType
	if from == dtype {
		return t, nil
	}
	vals, err := toFloat64(t)
	if err != nil {
		return nil, err
	}
	return fromFloat64(vals, dtype, t.Shape().Dimensions...)
}

// CloneTensor returns a host copy of t (in its dtype), independent of t's buffers.
func CloneTensor(t *tensors.Tensor) (*tensors.Tensor, error) {
	out := tensors.FromShape(t.Shape())
	var cerr error
	err := t.ConstBytes(func(src []byte) {
		cerr = out.MutableBytes(func(dst []byte) { copy(dst, src) })
	})
	if err != nil {
		return nil, err
	}
	return out, cerr
}

// toFloat64 copies a floating-point tensor's values to a float64 slice.
func toFloat64(t *tensors.Tensor) ([]float64, error) {
	var out []float64
	var convErr error
	err := t.ConstFlatData(func(flat any) {
		switch v := flat.(type) {
		case []float64:
			out = slices.Clone(v)
		case []float32:
			out = make([]float64, len(v))
			for i, x := range v {
				out[i] = float64(x)
			}
		default:
			out, convErr = halfToFloat64(flat)
		}
	})
	if err != nil {
		return nil, err
	}
	return out, convErr
}

func fromFloat64(vals []float64, dtype dtypes.DType, dims ...int) (*tensors.Tensor, error) {
	t := tensors.FromShape(shapes.Make(dtype, dims...))
	var convErr error
	err := t.MutableFlatData(func(flat any) {
		switch v := flat.(type) {
		case []float64:
			copy(v, vals)
		case []float32:
			for i, x := range vals {
				v[i] = float32(x)
			}
		default:
			convErr = float64ToHalf(vals, flat)
		}
	})
	if err != nil {
		return nil, err
	}
	return t, convErr
}

// TensorFloat64 returns a tensor's values as float64 (for tests, statistics and reports).
func TensorFloat64(t *tensors.Tensor) ([]float64, error) { return toFloat64(t) }

// TensorFromFloat64 builds a host tensor of the given dtype from float64 values.
func TensorFromFloat64(vals []float64, dtype dtypes.DType, dims ...int) (*tensors.Tensor, error) {
	return fromFloat64(vals, dtype, dims...)
}

// dtypeByName maps HF torch_dtype names to GoMLX dtypes.
func dtypeByName(name string) (dtypes.DType, error) {
	switch strings.ToLower(name) {
	case "float32", "f32", "fp32":
		return dtypes.Float32, nil
	case "float64", "f64", "fp64":
		return dtypes.Float64, nil
	case "bfloat16", "bf16":
		return dtypes.BFloat16, nil
	case "float16", "f16", "fp16", "half":
		return dtypes.Float16, nil
	}
	return dtypes.InvalidDType, errors.Errorf("model: unknown dtype %q", name)
}

// DTypeName is the HF torch_dtype name of a GoMLX dtype.
func DTypeName(d dtypes.DType) string {
	switch d {
	case dtypes.Float32:
		return "float32"
	case dtypes.Float64:
		return "float64"
	case dtypes.BFloat16:
		return "bfloat16"
	case dtypes.Float16:
		return "float16"
	}
	return d.String()
}
