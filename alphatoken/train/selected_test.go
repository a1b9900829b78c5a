package train

import (
	"path/filepath"
	"testing"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// newAlphaToken builds the AlphaToken method for lm (θ_ref = lm at the start).
func newAlphaToken(t *testing.T, lm *model.LM, name string, refresh int) *Selected {
	t.Helper()
	ref, err := lm.Clone()
	if err != nil {
		t.Fatal(err)
	}
	exs := copyTask(40)
	fisher, err := alphatoken.FisherFromSequences(ref, exs[:8], alphatoken.FisherOptions{Kind: alphatoken.FisherDiag, Blocks: 2})
	if err != nil {
		t.Fatal(err)
	}
	cfg := alphatoken.DefaultConfig()
	cfg.Blocks, cfg.ValRefresh, cfg.Window = 2, refresh, 8
	cfg, err = alphatoken.Variant(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := alphatoken.NewValuer(lm, ref, fisher, exs[30:], cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewSelected(name, v)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestAlphaTokenTrainingAndResume: the AlphaToken step trains (loss drops), keeps exactly
// floor(ρN+0.5) tokens per batch, and resumes bit-for-bit across a ValRefresh boundary (the
// validation gradient of the last refresh comes back from the checkpoint).
func TestAlphaTokenTrainingAndResume(t *testing.T) {
	examples := copyTask(60)
	run := func(dir string, stop int, resume string) *Trainer {
		lm := tinyLM(t, 9)
		cfg := DefaultConfig(8)
		cfg.LR, cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet = 3e-3, 8, 32, 16, true
		cfg.CheckpointEvery, cfg.OutDir, cfg.LogEvery, cfg.Seed = 4, dir, 1, 4
		return runTrainer(t, lm, cfg, newAlphaToken(t, lm, "alphatoken", 3), resume, examples, stop)
	}
	straight := run(t.TempDir(), 8, "")
	for _, r := range straight.History {
		if int(r.Metrics["kept"]) != alphatoken.KeepCount(0.5, int(r.Metrics["tokens"])) {
			t.Fatalf("step %d kept %v of %v tokens", r.Step, r.Metrics["kept"], r.Metrics["tokens"])
		}
	}
	if h := straight.History; !(h[len(h)-1].Metrics["full_loss"] < h[0].Metrics["full_loss"]) {
		t.Fatalf("full loss did not drop: %v -> %v", h[0].Metrics["full_loss"], h[len(h)-1].Metrics["full_loss"])
	}
	requireDeterministic(t, straight.LM.Backend)
	dir := t.TempDir()
	run(dir, 4, "")
	resumed := run(dir, 8, filepath.Join(dir, "checkpoint-4"))
	sameState(t, straight, resumed)
}

// TestMethodsRun: every named method builds and takes steps.
func TestMethodsRun(t *testing.T) {
	for _, name := range MethodNames {
		t.Run(name, func(t *testing.T) {
			lm := tinyLM(t, 3)
			var m Method
			switch name {
			case "full":
				m = Full{}
			case "random":
				r, err := NewRandom(0.5)
				if err != nil {
					t.Fatal(err)
				}
				m = r
			default:
				m = newAlphaToken(t, lm, name, 1)
			}
			cfg := DefaultConfig(2)
			cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet, cfg.LogEvery = 4, 32, 16, true, 1
			tr, err := New(lm, tokenizer.NewByteLevel(), cfg, m)
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.Run(copyTask(12)); err != nil {
				t.Fatal(err)
			}
			if name != "full" && tr.History[0].Metrics["kept"] >= tr.History[0].Metrics["tokens"] {
				t.Fatalf("%s kept every token", name)
			}
		})
	}
}
