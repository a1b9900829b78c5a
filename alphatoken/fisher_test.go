package alphatoken

import (
	"slices"
	"testing"

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
