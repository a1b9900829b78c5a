package alphatoken

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/alphatoken/alphatoken/model"
)

// FuzzLoadFisher: any bytes as a Fisher file give a Fisher or an error naming the file, never a
// panic. An accepted Fisher has a valid kind, K ≥ 1, finite non-negative diagonal entries, square
// symmetric K-FAC factors in pairs, and its blocks are those its tensor names say.
func FuzzLoadFisher(f *testing.F) {
	name := model.LinearName(1, model.QProj)
	mat := func(d int, vals ...float64) *tensors.Tensor {
		t, _ := model.TensorFromFloat64(vals, dtypes.Float32, d, len(vals)/d)
		return t
	}
	seeds := []struct {
		named []model.NamedTensor
		meta  map[string]string
	}{
		{[]model.NamedTensor{{Name: name, Tensor: mat(2, 1, 2, 3, 4, 5, 6)}}, map[string]string{"alphatoken_fisher": "diag", "blocks": "1", "samples": "8"}},
		{[]model.NamedTensor{{Name: name, Tensor: mat(2, 1, -2, 3, 4)}}, map[string]string{"alphatoken_fisher": "diag", "blocks": "1", "samples": "8"}},
		{[]model.NamedTensor{{Name: name + ".A", Tensor: mat(2, 2, 1, 1, 2)}, {Name: name + ".S", Tensor: mat(1, 3)}},
			map[string]string{"alphatoken_fisher": "kfac", "blocks": "2", "samples": "4"}},
		{[]model.NamedTensor{{Name: name + ".A", Tensor: mat(2, 2, 1, 0, 2)}, {Name: name + ".S", Tensor: mat(1, 3)}},
			map[string]string{"alphatoken_fisher": "kfac", "blocks": "2", "samples": "4"}},
		{[]model.NamedTensor{{Name: "model.embed_tokens.weight", Tensor: mat(2, -1, 1)}}, map[string]string{"format": "pt"}},
	}
	for _, s := range seeds {
		var buf bytes.Buffer
		if err := model.EncodeSafetensors(&buf, s.named, s.meta); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const path = "fisher.safetensors"
		ts, meta, err := model.DecodeSafetensors(path, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return // FuzzReadSafetensors covers the file format
		}
		fi, err := fisherFromTensors(path, ts, meta)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("the error does not name the file: %v", err)
			}
			return
		}
		if (fi.Kind != FisherDiag && fi.Kind != FisherKFAC) || fi.Blocks < 1 || fi.Samples < 1 || len(fi.Diag)+len(fi.A) == 0 {
			t.Fatalf("accepted %s", fi)
		}
		if len(fi.A) != len(fi.S) || (fi.Kind == FisherDiag) != (len(fi.A) == 0) {
			t.Fatalf("accepted %s with %d diagonal, %d A, %d S tensors", fi.Kind, len(fi.Diag), len(fi.A), len(fi.S))
		}
		for n, x := range fi.Diag {
			vals, _ := model.TensorFloat64(x)
			for _, v := range vals {
				if !(v >= 0) || math.IsInf(v, 0) {
					t.Fatalf("accepted %s with entry %v", n, v)
				}
			}
		}
		for _, m := range []map[string]*tensors.Tensor{fi.A, fi.S} {
			for n, x := range m {
				d := x.Shape().Dimensions
				vals, _ := model.TensorFloat64(x)
				if len(d) != 2 || d[0] != d[1] {
					t.Fatalf("accepted factor %s of shape %v", n, d)
				}
				for i := range d[0] {
					if !(vals[i*d[0]+i] >= 0) {
						t.Fatalf("accepted factor %s with diagonal entry %v", n, vals[i*d[0]+i])
					}
				}
			}
		}
		if len(fi.CoveredBlocks()) == 0 {
			t.Fatalf("accepted a Fisher covering no block")
		}
	})
}
