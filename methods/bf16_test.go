package methods

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// TestBFloat16AlphaToken: an AlphaToken SFT run under --dtype bfloat16 (valuation included) trains:
// its full-batch loss falls, it keeps exactly floor(ρN+0.5) tokens per batch, no token value is
// non-finite, and it resumes from its checkpoint bit for bit (the go backend is deterministic).
func TestBFloat16AlphaToken(t *testing.T) {
	examples := copyTask(60)
	mixed, err := model.ParsePrecision("bfloat16")
	if err != nil {
		t.Fatal(err)
	}
	run := func(dir string, stop int, resume string) *train.Trainer {
		lm := tinyLM(t, 9)
		if err := lm.SetPrecision(mixed); err != nil {
			t.Fatal(err)
		}
		env := testEnv(t, lm, 12)
		env.Valuation.ValRefresh, env.BatchSize = 2, 8
		m, err := Build("alphatoken", env)
		if err != nil {
			t.Fatal(err)
		}
		cfg := train.DefaultConfig(12)
		cfg.LR, cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet = 3e-3, 8, 32, 16, true
		cfg.CheckpointEvery, cfg.OutDir, cfg.LogEvery, cfg.Seed = 6, dir, 1, 4
		tr, err := train.New(lm, tokenizer.NewByteLevel(), cfg, m)
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
	straight := run(t.TempDir(), 12, "")
	h := straight.History
	for _, r := range h {
		if int(r.Metrics["kept"]) != alphatoken.KeepCount(0.5, int(r.Metrics["tokens"])) {
			t.Fatalf("step %d kept %v of %v tokens", r.Step, r.Metrics["kept"], r.Metrics["tokens"])
		}
		if r.Metrics["nonfinite"] != 0 {
			t.Fatalf("step %d: %v non-finite token values", r.Step, r.Metrics["nonfinite"])
		}
	}
	firstLoss := (h[0].Metrics["full_loss"] + h[1].Metrics["full_loss"]) / 2
	lastLoss := (h[len(h)-1].Metrics["full_loss"] + h[len(h)-2].Metrics["full_loss"]) / 2
	t.Logf("full loss %.3f -> %.3f", firstLoss, lastLoss)
	if !(lastLoss < 0.9*firstLoss) {
		t.Fatalf("full loss did not fall: %.3f -> %.3f", firstLoss, lastLoss)
	}
	requireDeterministic(t, straight.LM.Backend)
	dir := t.TempDir()
	run(dir, 6, "")
	resumed := run(dir, 12, filepath.Join(dir, "checkpoint-6"))
	sameWeights(t, straight.LM, resumed.LM)
}

// TestBFloat16EveryMethod: every registered SFT and DPO method takes two steps under --dtype
// bfloat16 (the model, θ_ref, the helper and the oracle all computing in bfloat16, as the CLI
// opens them) with a finite loss and finite metrics.
func TestBFloat16EveryMethod(t *testing.T) {
	mixed, err := model.ParsePrecision("bfloat16")
	if err != nil {
		t.Fatal(err)
	}
	newLM := func(t *testing.T) *model.LM {
		lm := tinyLM(t, 3)
		if err := lm.SetPrecision(mixed); err != nil {
			t.Fatal(err)
		}
		return lm
	}
	check := func(t *testing.T, tr *train.Trainer) {
		if len(tr.History) == 0 {
			t.Fatal("no step logged")
		}
		for _, r := range tr.History {
			if math.IsNaN(r.Loss) || math.IsInf(r.Loss, 0) {
				t.Errorf("step %d: loss %v", r.Step, r.Loss)
			}
			for k, x := range r.Metrics {
				if math.IsNaN(x) || math.IsInf(x, 0) {
					t.Errorf("step %d: %s = %v", r.Step, k, x)
				}
			}
		}
	}
	exs := copyTask(16)
	for _, name := range Names() {
		steps := 2
		if name == "token-cleaning-self" {
			steps = 5 // one per chunk
		}
		t.Run("sft/"+name, func(t *testing.T) {
			lm := newLM(t)
			m, err := Build(name, testEnv(t, lm, steps))
			if err != nil {
				t.Fatal(err)
			}
			check(t, runMethod(t, lm, m, exs, steps, steps, "", ""))
		})
	}
	pairs := reversalPairs(12)
	for _, name := range DPONames() {
		t.Run("dpo/"+name, func(t *testing.T) {
			lm := newLM(t)
			m, err := BuildDPO(name, testDPOEnv(t, lm, 2))
			if err != nil {
				t.Fatal(err)
			}
			check(t, runDPO(t, lm, m, pairs, 2, 2, "", ""))
		})
	}
}
