package model

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/go-huggingface/hub"
	"github.com/gomlx/go-huggingface/models/safetensors"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/internal/atomicfile"
)

// NamedTensor pairs a tensor with its name in a safetensors file.
type NamedTensor struct {
	Name   string
	Tensor *tensors.Tensor
}

var safetensorsDTypes = map[dtypes.DType]string{
	dtypes.Float32: "F32", dtypes.Float64: "F64", dtypes.BFloat16: "BF16", dtypes.Float16: "F16",
	dtypes.Int32: "I32", dtypes.Int64: "I64", dtypes.Uint8: "U8", dtypes.Bool: "BOOL",
}

// WriteSafetensors writes the tensors (in the given order) to path in the safetensors format,
// atomically: a reader never sees a partial file. metadata goes to the "__metadata__" entry.
func WriteSafetensors(path string, named []NamedTensor, metadata map[string]string) error {
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var offset int64
	for _, nt := range named {
		if _, dup := header[nt.Name]; dup {
			return errors.Errorf("model: duplicate tensor name %q writing %s", nt.Name, path)
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
	return atomicfile.Write(path, func(w io.Writer) error {
		if err := binary.Write(w, binary.LittleEndian, uint64(len(hdr))); err != nil {
			return err
		}
		if _, err := w.Write(hdr); err != nil {
			return err
		}
		for _, nt := range named {
			var werr error
			if err := nt.Tensor.ConstBytes(func(data []byte) { _, werr = w.Write(data) }); err != nil {
				return errors.Wrapf(err, "reading tensor %q", nt.Name)
			}
			if werr != nil {
				return werr
			}
		}
		return nil
	})
}

// ReadSafetensors reads every tensor of one safetensors file into host memory, through
// go-huggingface's memory-mapped reader. It also returns the file's "__metadata__".
func ReadSafetensors(path string) (map[string]*tensors.Tensor, map[string]string, error) {
	dir, file := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if _, err := os.Stat(path); err != nil {
		return nil, nil, errors.Wrapf(err, "model: reading %s", path)
	}
	st := safetensors.NewEmpty(hub.NewLocal(dir))
	reader, err := st.NewTensorReader(file)
	if err != nil {
		return nil, nil, errors.Wrapf(err, "model: reading %s", path)
	}
	defer reader.Close()
	out := make(map[string]*tensors.Tensor, len(reader.Header.Tensors))
	for name := range reader.Header.Tensors {
		t, err := reader.ReadTensor(nil, name)
		if err != nil {
			return nil, nil, errors.Wrapf(err, "model: reading tensor %q from %s", name, path)
		}
		out[name] = t
	}
	meta := map[string]string{}
	for k, v := range reader.Header.Metadata {
		if s, ok := v.(string); ok {
			meta[k] = s
		}
	}
	return out, meta, nil
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
