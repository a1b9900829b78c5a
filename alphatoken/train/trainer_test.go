package train

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

var backendOnce compute.Backend

func testBackend(t testing.TB) compute.Backend {
	if backendOnce == nil {
		b, err := model.NewBackend("")
		if err != nil {
			t.Fatal(err)
		}
		backendOnce = b
	}
	return backendOnce
}

func tinyLM(t testing.TB, seed uint64) *model.LM {
	cfg := &model.Config{Arch: model.Llama, VocabSize: tokenizer.ByteVocabSize, Hidden: 32, Layers: 2, Heads: 4, KVHeads: 2,
		HeadDim: 8, Intermediate: 64, RMSNormEps: 1e-5, RoPETheta: 10000, MaxPositions: 64, BOSTokenID: tokenizer.ByteBOS,
		EOSTokenIDs: []int{tokenizer.ByteEOS}, PadTokenID: tokenizer.BytePAD, DType: "float32"}
	lm, err := model.New(testBackend(t), cfg, dtypes.Float32, seed)
	if err != nil {
		t.Fatal(err)
	}
	return lm
}

// copyTask: respond with the prompt reversed — learnable, so the loss must drop.
func copyTask(n int) []data.Example {
	tok := tokenizer.NewByteLevel()
	var out []data.Example
	for i := range n {
		word := []byte{byte('a' + i%7), byte('a' + (i/7)%5), byte('a' + (i/3)%4)}
		rev := []byte{word[2], word[1], word[0]}
		prompt := append([]int{tokenizer.ByteBOS}, tok.Encode(string(word)+"=")...)
		resp := append(tok.Encode(string(rev)), tokenizer.ByteEOS)
		out = append(out, data.Example{IDs: append(prompt, resp...), PromptLen: len(prompt)})
	}
	return out
}

func TestTrainingReducesLoss(t *testing.T) {
	lm := tinyLM(t, 1)
	cfg := DefaultConfig(60)
	cfg.LR, cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet = 3e-3, 16, 32, 16, true
	tr, err := New(lm, tokenizer.NewByteLevel(), cfg, Full{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.LogEvery = 10
	if err := tr.Run(copyTask(140)); err != nil {
		t.Fatal(err)
	}
	first, last := tr.History[0].Loss, tr.History[len(tr.History)-1].Loss
	if !(last < 0.6*first) {
		t.Fatalf("loss did not drop enough: %.3f -> %.3f", first, last)
	}
}

// requireDeterministic skips the rest of a bit-exactness test on a backend that does not promise
// bit-identical results run after run (XLA on CUDA); the go backend does, so there the test is strict.
func requireDeterministic(t *testing.T, backend compute.Backend) {
	t.Helper()
	if !model.Deterministic(backend) {
		t.Skipf("backend %q is not bit-deterministic (two identical runs may differ in the last bits), so bit-exact resuming cannot be checked on it", backend)
	}
}

// sameState fails unless every variable of a's store (weights, optimizer moments, method state)
// exists in b's store with bit-identical values.
func sameState(t *testing.T, a, b *Trainer) {
	t.Helper()
	for v := range a.LM.Store.IterVariables() {
		w := b.LM.Store.GetVariable(v.Path())
		if w == nil {
			t.Fatalf("%s missing after resume", v.Path())
		}
		x, _ := model.TensorFloat64(v.MustValue())
		y, _ := model.TensorFloat64(w.MustValue())
		for i := range x {
			if x[i] != y[i] && !(math.IsNaN(x[i]) && math.IsNaN(y[i])) {
				t.Fatalf("%s[%d]: straight %v, resumed %v", v.Path(), i, x[i], y[i])
			}
		}
	}
}

// TestResumeBitExact: 8 steps straight equal 4 steps, a checkpoint, and 4 more in a new trainer
// resumed from it — every weight and every optimizer moment, bit for bit.
func TestResumeBitExact(t *testing.T) {
	requireDeterministic(t, testBackend(t))
	examples := copyTask(50)
	run := func(outDir string, steps int, resumeFrom string) *Trainer {
		lm := tinyLM(t, 7)
		cfg := DefaultConfig(8)
		cfg.LR, cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet = 2e-3, 8, 32, 16, true
		cfg.CheckpointEvery, cfg.OutDir, cfg.LogEvery, cfg.Seed, cfg.WeightDecay = 4, outDir, 2, 3, 0.01
		return runTrainer(t, lm, cfg, Full{}, resumeFrom, examples, steps)
	}
	straight := run(t.TempDir(), 8, "")
	again := run(t.TempDir(), 8, "")
	a, _ := model.TensorFloat64(straight.LM.Param("model.embed_tokens.weight").MustValue())
	b, _ := model.TensorFloat64(again.LM.Param("model.embed_tokens.weight").MustValue())
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("two identical runs differ at embed[%d]: %v vs %v (the backend is not deterministic)", i, a[i], b[i])
		}
	}
	dir := t.TempDir()
	run(dir, 4, "")
	if _, err := os.Stat(filepath.Join(dir, "checkpoint-4", "trainer_state.safetensors")); err != nil {
		t.Fatal(err)
	}
	resumed := run(dir, 8, filepath.Join(dir, "checkpoint-4"))
	if resumed.Step() != 8 {
		t.Fatalf("resumed trainer at step %d", resumed.Step())
	}
	sameState(t, straight, resumed)
	// metrics.jsonl holds each logged step once.
	raw, _ := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if n := len(splitLines(string(raw))); n != 4 {
		t.Fatalf("metrics.jsonl has %d lines, want 4 (steps 2,4,6,8)", n)
	}
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := range len(s) {
		if s[i] == '\n' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// poisoned is Full, except that before step poisonAt it writes a NaN into a weight (as a diverging
// update would).
type poisoned struct {
	Full
	lm       *model.LM
	poisonAt int
}

func (p poisoned) Prepare(step int, _ *data.Batch) ([]any, error) {
	if step != p.poisonAt {
		return nil, nil
	}
	v := p.lm.Param("model.norm.weight")
	vals := make([]float64, v.Shape().Size())
	vals[0] = math.NaN()
	tt, _ := model.TensorFromFloat64(vals, dtypes.Float32, v.Shape().Dimensions...)
	return nil, v.SetValue(tt)
}

// planned is Full plus the Planner and extra-input plumbing: Plan records every step's batch,
// Prepare checks that the trainer's batch is the planned one and passes the step number as an
// extra input, which Loss returns as a metric.
type planned struct {
	Full
	t       *testing.T
	batches [][]int
	steps   int
}

func (p *planned) Plan(examples []data.Example, batchAt func(int) []int, steps int) error {
	p.steps = steps
	for s := range steps {
		p.batches = append(p.batches, append([]int(nil), batchAt(s)...))
	}
	return nil
}

func (p *planned) MetricNames() []string { return []string{"tokens", "step_in"} }

func (p *planned) Prepare(step int, b *data.Batch) ([]any, error) {
	want := p.batches[step]
	if !slices.Equal(b.Index[:len(want)], want) {
		p.t.Errorf("step %d: batch %v, planned %v", step, b.Index, want)
	}
	return []any{float32(step)}, nil
}

func (p *planned) Loss(scope *gm.Scope, lm *model.LM, b BatchNodes) (*Node, []*Node) {
	loss, m := p.Full.Loss(scope, lm, b)
	return loss, append(m, b.Extra[0])
}

// TestPlannerAndExtraInputs: a Planner sees the batches the trainer then runs (across epochs),
// and a method's extra inputs reach its loss graph.
func TestPlannerAndExtraInputs(t *testing.T) {
	lm := tinyLM(t, 5)
	cfg := DefaultConfig(7)
	cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet, cfg.LogEvery = 4, 32, 16, true, 1
	m := &planned{t: t}
	tr, err := New(lm, tokenizer.NewByteLevel(), cfg, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(copyTask(10)); err != nil { // 3 batches per epoch: 7 steps span 3 epochs
		t.Fatal(err)
	}
	if m.steps != 7 || len(m.batches) != 7 {
		t.Fatalf("planned %d steps (%d batches)", m.steps, len(m.batches))
	}
	for i, r := range tr.History {
		if r.Metrics["step_in"] != float64(i) {
			t.Fatalf("step %d: the extra input arrived as %v", i, r.Metrics["step_in"])
		}
	}
}

// TestNaNStops: a non-finite loss stops training with a NaNError naming the step, and the last
// checkpoint, written before, stays loadable and finite.
func TestNaNStops(t *testing.T) {
	lm := tinyLM(t, 2)
	dir := t.TempDir()
	cfg := DefaultConfig(6)
	cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet, cfg.CheckpointEvery, cfg.OutDir = 4, 32, 16, true, 2, dir
	tr, err := New(lm, tokenizer.NewByteLevel(), cfg, poisoned{lm: lm, poisonAt: 3})
	if err != nil {
		t.Fatal(err)
	}
	err = tr.Run(copyTask(20))
	var nan *NaNError
	if !errors.As(err, &nan) || nan.Step != 3 {
		t.Fatalf("want NaNError at step 3, got %v", err)
	}
	latest, _ := LatestCheckpoint(dir)
	if filepath.Base(latest) != "checkpoint-2" {
		t.Fatalf("latest checkpoint %q", latest)
	}
	back, err := model.Load(testBackend(t), latest, dtypes.Float32)
	if err != nil {
		t.Fatal(err)
	}
	named, _ := back.ParamTensors()
	for _, nt := range named {
		vals, _ := model.TensorFloat64(nt.Tensor)
		for _, x := range vals {
			if math.IsNaN(x) {
				t.Fatalf("checkpoint-2 holds a NaN in %s", nt.Name)
			}
		}
	}
}

func TestLearningRateSchedule(t *testing.T) {
	c := DefaultConfig(100)
	c.WarmupSteps, c.LR, c.MinLRRatio = 10, 1, 0.1
	if got := c.LearningRate(0); math.Abs(got-0.1) > 1e-12 {
		t.Errorf("lr(0) = %g", got)
	}
	if got := c.LearningRate(9); math.Abs(got-1) > 1e-12 {
		t.Errorf("lr(9) = %g", got)
	}
	if got := c.LearningRate(55); math.Abs(got-0.55) > 1e-12 {
		t.Errorf("lr(55) = %g, want midpoint 0.55", got)
	}
	if got := c.LearningRate(100); math.Abs(got-0.1) > 1e-12 {
		t.Errorf("lr(100) = %g", got)
	}
}

// runTrainer makes a trainer, resumes it from a checkpoint directory (when resume is not empty) and
// trains it until step stop.
func runTrainer(t *testing.T, lm *model.LM, cfg Config, m Method, resume string, examples []data.Example, stop int) *Trainer {
	t.Helper()
	tr, err := New(lm, tokenizer.NewByteLevel(), cfg, m)
	if err != nil {
		t.Fatal(err)
	}
	if resume != "" {
		if err := tr.Resume(resume); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.RunUntil(examples, stop); err != nil {
		t.Fatal(err)
	}
	return tr
}
