package train

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/model"
)

func precision(t *testing.T, name string) model.Precision {
	t.Helper()
	p, err := model.ParsePrecision(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBFloat16FullSFT: full SFT under --dtype bfloat16 (mixed) and bfloat16-pure learns the copy
// task; mixed precision keeps float32 master weights and AdamW moments and writes float32
// checkpoints, the pure mode bfloat16 ones; both checkpoints say so in config.json.
func TestBFloat16FullSFT(t *testing.T) {
	for _, tc := range []struct {
		name    string
		storage dtypes.DType
	}{{"bfloat16", dtypes.Float32}, {"bfloat16-pure", dtypes.BFloat16}} {
		t.Run(tc.name, func(t *testing.T) {
			lm := tinyLM(t, 1)
			if err := lm.SetPrecision(precision(t, tc.name)); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			cfg := DefaultConfig(60)
			cfg.LR, cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet, cfg.LogEvery, cfg.OutDir = 3e-3, 16, 32, 16, true, 10, dir
			tr := runTrainer(t, lm, cfg, Full{}, "", copyTask(140), 60)
			first, last := tr.History[0].Loss, tr.History[len(tr.History)-1].Loss
			t.Logf("%s: loss %.3f -> %.3f", tc.name, first, last)
			if !(last < 0.6*first) {
				t.Fatalf("loss did not drop enough: %.3f -> %.3f", first, last)
			}
			for _, spec := range lm.Config.ParamSpecs() {
				if dt := lm.Param(spec.Name).Shape().DType; dt != tc.storage {
					t.Errorf("weight %s is %s, want the storage dtype %s", spec.Name, dt, tc.storage)
				}
			}
			moments := 0
			for v := range lm.Store.IterVariables() {
				if strings.HasPrefix(v.Path(), "/AdamOptimizer/") && v.Shape().Rank() > 0 {
					moments++
					if v.Shape().DType != dtypes.Float32 {
						t.Errorf("AdamW state %s is %s, want float32", v.Path(), v.Shape().DType)
					}
				}
			}
			if moments != 2*len(lm.Config.ParamSpecs()) {
				t.Errorf("found %d AdamW moment tensors, want 2 per weight (%d)", moments, 2*len(lm.Config.ParamSpecs()))
			}
			ckpt := filepath.Join(dir, "checkpoint-60")
			raw, err := os.ReadFile(filepath.Join(ckpt, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			want := `"torch_dtype": "` + model.DTypeName(tc.storage) + `"`
			if !strings.Contains(string(raw), want) {
				t.Errorf("config.json lacks %s:\n%s", want, raw)
			}
			ts, _, err := model.ReadSafetensors(filepath.Join(ckpt, "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			for name, tt := range ts {
				if tt.Shape().DType != tc.storage {
					t.Fatalf("checkpoint tensor %s is %s, want %s", name, tt.Shape().DType, tc.storage)
				}
			}
		})
	}
}

// TestBFloat16AlphaToken: an AlphaToken SFT run under --dtype bfloat16 (valuation included) trains:
// its full-batch loss falls, it keeps exactly floor(ρN+0.5) tokens per batch, no token value is
// non-finite, and it resumes from its checkpoint bit for bit (the go backend is deterministic).
func TestBFloat16AlphaToken(t *testing.T) {
	examples := copyTask(60)
	run := func(dir string, stop int, resume string) *Trainer {
		lm := tinyLM(t, 9)
		if err := lm.SetPrecision(precision(t, "bfloat16")); err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig(12)
		cfg.LR, cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet = 3e-3, 8, 32, 16, true
		cfg.CheckpointEvery, cfg.OutDir, cfg.LogEvery, cfg.Seed = 6, dir, 1, 4
		return runTrainer(t, lm, cfg, newAlphaToken(t, lm, "alphatoken", 2), resume, examples, stop)
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
	sameState(t, straight, resumed)
}
