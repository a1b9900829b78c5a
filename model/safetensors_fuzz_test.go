package model

import (
	"bytes"
	"encoding/binary"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
)

// safetensorsSeeds are small valid and damaged safetensors files.
func safetensorsSeeds(f *testing.F) [][]byte {
	dir := f.TempDir()
	path := filepath.Join(dir, "seed.safetensors")
	a := tensors.FromValue([][]float32{{1, 2}, {3, 4}})
	b := tensors.FromValue([]int64{5, 6, 7})
	h, _ := TensorFromFloat64([]float64{0.5, -1, 2}, dtypes.BFloat16, 3)
	if err := WriteSafetensors(path, []NamedTensor{{"a", a}, {"b", b}, {"h", h}}, map[string]string{"format": "pt"}); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	withHeader := func(hdr string, data []byte) []byte {
		return append(append(binary.LittleEndian.AppendUint64(nil, uint64(len(hdr))), hdr...), data...)
	}
	return [][]byte{
		good,
		good[:len(good)/2],
		withHeader(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)),
		withHeader(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}`, make([]byte, 8)),
		withHeader(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[4611686018427387904,4611686018427387912]}}`, make([]byte, 8)),
		withHeader(`{"x":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"__metadata__":{"k":"v"}}`, nil),
		withHeader(`{"x":{"dtype":"F16","shape":[-1,-2],"data_offsets":[0,4]}}`, make([]byte, 4)),
		{0, 0, 0, 0, 0, 0, 0, 1},
	}
}

// FuzzReadSafetensors: any bytes as a .safetensors file give tensors or an error naming the file,
// never a panic. An accepted file's tensors have the shapes and bytes its header states, and
// writing them again and reading back gives the same tensors.
func FuzzReadSafetensors(f *testing.F) {
	for _, s := range safetensorsSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "x.safetensors"
		hdr, herr := ParseSafetensorsHeader(name, bytes.NewReader(data), int64(len(data)))
		ts, meta, err := DecodeSafetensors(name, bytes.NewReader(data), int64(len(data)))
		if (herr == nil) != (err == nil) {
			t.Fatalf("the header check (%v) and the reader (%v) disagree", herr, err)
		}
		if err != nil {
			if !strings.Contains(err.Error(), name) {
				t.Fatalf("the error does not name the file: %v", err)
			}
			return
		}
		if len(ts) != len(hdr.Tensors) {
			t.Fatalf("%d tensors read, header lists %d", len(ts), len(hdr.Tensors))
		}
		var named []NamedTensor
		for _, e := range hdr.Tensors {
			tt := ts[e.Name]
			if tt == nil || !slices.Equal(tt.Shape().Dimensions, e.Shape) || tt.Shape().DType != e.DType ||
				int64(tt.Shape().ByteSize()) != e.End-e.Begin {
				t.Fatalf("tensor %q: read %v, header says %s %v [%d, %d)", e.Name, tt, e.DType, e.Shape, e.Begin, e.End)
			}
			var want []byte
			_ = tt.ConstBytes(func(b []byte) { want = slices.Clone(b) })
			if !bytes.Equal(want, data[int64(len(data))-hdr.DataSize+e.Begin:][:e.End-e.Begin]) {
				t.Fatalf("tensor %q: bytes differ from the file's", e.Name)
			}
			named = append(named, NamedTensor{e.Name, tt})
		}
		var buf bytes.Buffer
		if err := EncodeSafetensors(&buf, named, meta); err != nil {
			t.Fatalf("writing back: %v", err)
		}
		back, backMeta, err := DecodeSafetensors("again", bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatalf("reading back: %v", err)
		}
		if !maps.Equal(meta, backMeta) || len(back) != len(ts) {
			t.Fatalf("round trip: metadata %v → %v, %d → %d tensors", meta, backMeta, len(ts), len(back))
		}
		for _, nt := range named {
			var want, got []byte
			_ = nt.Tensor.ConstBytes(func(b []byte) { want = slices.Clone(b) })
			_ = back[nt.Name].ConstBytes(func(b []byte) { got = slices.Clone(b) })
			if !bytes.Equal(want, got) {
				t.Fatalf("tensor %q changed on the round trip", nt.Name)
			}
		}
	})
}

// FuzzShardIndex: any bytes as model.safetensors.index.json give an index or an error naming the
// file, never a panic; an accepted index names only local .safetensors files, each once, sorted.
func FuzzShardIndex(f *testing.F) {
	f.Add([]byte(`{"metadata":{"total_size":10},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}`))
	f.Add([]byte(`{"weight_map":{"a":"../../x.safetensors"}}`))
	f.Add([]byte(`{"weight_map":{"a":"/etc/x.safetensors","b":"sub/y.safetensors"}}`))
	f.Add([]byte(`{"weight_map":{}}`))
	f.Add([]byte(`{"weight_map":{"a":1}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		const path = "ckpt/model.safetensors.index.json"
		index, err := ParseShardIndex(path, data)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("the error does not name the file: %v", err)
			}
			return
		}
		if !slices.IsSorted(index.Files) || len(slices.Compact(slices.Clone(index.Files))) != len(index.Files) {
			t.Fatalf("files not sorted and distinct: %q", index.Files)
		}
		for name, file := range index.WeightMap {
			if !filepath.IsLocal(file) || !strings.HasSuffix(file, ".safetensors") || !slices.Contains(index.Files, file) {
				t.Fatalf("tensor %q mapped to %q accepted (files %q)", name, file, index.Files)
			}
			// ".." or "../…" leaves the checkpoint; a name that merely starts with dots ("...safetensors",
			// found by the fuzzer) is a local file.
			if rel, err := filepath.Rel("ckpt", filepath.Join("ckpt", file)); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				t.Fatalf("%q escapes the checkpoint", file)
			}
		}
	})
}
