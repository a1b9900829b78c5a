package alphatoken

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
)

// TestEstimateFisherSampling: the sampled responses, and so the Fisher, do not depend on how many
// prompts are decoded together (SampleBatch), and are FisherFromSequences of the generator's
// temperature-1 samples of (Seed, prompt index); progress reaches its total.
func TestEstimateFisherSampling(t *testing.T) {
	fx := newFixture(t, model.Qwen3, FisherDiag, 2)
	var prompts [][]int
	for i := range 7 {
		prompts = append(prompts, []int{1 + i, 2 + 2*i%9, 3, 4 + i%3}[:1+i%4])
	}
	var last, total int
	opts := FisherOptions{Kind: FisherDiag, Blocks: 2, MaxNewTokens: 6, Seed: 3, BatchSize: 4, SampleBatch: 3,
		Progress: func(done, n int) { last, total = done, n }}
	f3, err := EstimateFisher(fx.ref, prompts, opts)
	if err != nil {
		t.Fatal(err)
	}
	if last != total || total == 0 {
		t.Errorf("progress ended at %d/%d", last, total)
	}
	opts.SampleBatch, opts.Progress = 7, nil
	f7, err := EstimateFisher(fx.ref, prompts, opts)
	if err != nil {
		t.Fatal(err)
	}
	gen, _ := model.NewGenerator(fx.ref)
	responses, err := gen.Generate(prompts, model.GenerateOptions{MaxNewTokens: 6, Temperature: 1, Seed: 3, BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []data.Example
	for i, p := range prompts {
		seqs = append(seqs, data.Example{IDs: append(slices.Clone(p), responses[i]...), PromptLen: len(p)})
	}
	want, err := FisherFromSequences(fx.ref, seqs, FisherOptions{Kind: FisherDiag, Blocks: 2, BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ScoredLayers(fx.cfg, 2) {
		w := f64(t, want.Diag[l.Name])
		if !slices.Equal(f64(t, f3.Diag[l.Name]), w) || !slices.Equal(f64(t, f7.Diag[l.Name]), w) {
			t.Errorf("%s: Fisher depends on SampleBatch, or differs from the generator's samples", l.Name)
		}
	}
	if f3.Samples != len(prompts) {
		t.Errorf("%d samples from %d prompts", f3.Samples, len(prompts))
	}
}

// TestLoadFisherRejects: what is not a Fisher is refused naming the file and the tensor (issue 14
// #9): a model's weights, negative or non-finite diagonal entries, asymmetric K-FAC factors or
// ones with a negative diagonal, a factor without its partner, bad metadata.
func TestLoadFisherRejects(t *testing.T) {
	fx := newFixture(t, model.Llama, FisherDiag, 2)
	dir := t.TempDir()
	if err := fx.lm.Save(dir, model.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	weights := dir + "/model.safetensors"
	if _, err := LoadFisher(weights); err == nil || !strings.Contains(err.Error(), "not a Fisher file") || !strings.Contains(err.Error(), weights) {
		t.Fatalf("model weights as a Fisher: %v", err)
	}
	name := model.LinearName(2, model.QProj)
	meta := func(kind string) map[string]string {
		return map[string]string{"alphatoken_fisher": kind, "blocks": "1", "samples": "8"}
	}
	mat := func(d int, vals map[[2]int]float64, diag float64) *tensors.Tensor {
		v := make([]float64, d*d)
		for i := range d {
			v[i*d+i] = diag
		}
		for ij, x := range vals {
			v[ij[0]*d+ij[1]] = x
		}
		tt, _ := model.TensorFromFloat64(v, dtypes.Float32, d, d)
		return tt
	}
	cases := []struct {
		want   string
		named  []model.NamedTensor
		meta   map[string]string
		tensor string
	}{
		{"negative entry", []model.NamedTensor{{Name: name, Tensor: mat(3, map[[2]int]float64{{0, 1}: -0.5}, 1)}}, meta("diag"), name},
		{"non-finite value", []model.NamedTensor{{Name: name, Tensor: mat(3, map[[2]int]float64{{2, 1}: math.NaN()}, 1)}}, meta("diag"), name},
		{"not symmetric", []model.NamedTensor{{Name: name + ".A", Tensor: mat(3, map[[2]int]float64{{0, 2}: 0.5}, 1)},
			{Name: name + ".S", Tensor: mat(2, nil, 1)}}, meta("kfac"), name + ".A"},
		{"negative diagonal", []model.NamedTensor{{Name: name + ".A", Tensor: mat(3, nil, 1)},
			{Name: name + ".S", Tensor: mat(2, nil, -1)}}, meta("kfac"), name + ".S"},
		{"has no", []model.NamedTensor{{Name: name + ".A", Tensor: mat(3, nil, 1)}}, meta("kfac"), name},
		{"must be a factor", []model.NamedTensor{{Name: name, Tensor: mat(3, nil, 1)}}, meta("kfac"), name},
		{"not named after", []model.NamedTensor{{Name: name + ".A", Tensor: mat(3, nil, 1)}}, meta("diag"), name + ".A"},
		{"square matrix", []model.NamedTensor{{Name: name + ".A", Tensor: randomTensor(rand.New(rand.NewPCG(1, 2)), true, 2, 3)},
			{Name: name + ".S", Tensor: mat(2, nil, 1)}}, meta("kfac"), name + ".A"},
		{"not diag or kfac", []model.NamedTensor{{Name: name, Tensor: mat(3, nil, 1)}}, meta("full"), ""},
		{"metadata blocks", []model.NamedTensor{{Name: name, Tensor: mat(3, nil, 1)}},
			map[string]string{"alphatoken_fisher": "diag", "blocks": "x", "samples": "8"}, ""},
	}
	for i, c := range cases {
		path := fmt.Sprintf("%s/f%d.safetensors", dir, i)
		if err := model.WriteSafetensors(path, c.named, c.meta); err != nil {
			t.Fatal(err)
		}
		_, err := LoadFisher(path)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) ||
			(c.tensor != "" && !strings.Contains(err.Error(), c.tensor)) {
			t.Errorf("%s: want an error naming %s and %q, got %v", c.want, path, c.tensor, err)
		}
	}
	// A valid file of each kind loads.
	for _, kind := range []FisherKind{FisherDiag, FisherKFAC} {
		f := newFixture(t, model.Llama, kind, 2).fisher
		path := dir + "/ok-" + string(kind) + ".safetensors"
		if err := f.Save(path); err != nil {
			t.Fatal(err)
		}
		back, err := LoadFisher(path)
		if err != nil || back.Blocks != 2 || back.Samples != 8 || !slices.Equal(back.CoveredBlocks(), []int{1, 2}) {
			t.Fatalf("%s: %v %+v", kind, err, back)
		}
	}
}
