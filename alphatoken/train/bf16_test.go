package train

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"

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
// checkpoints, the pure mode bfloat16 ones; both checkpoints say so in config.json. The pure run
// accumulates its gradients over 2 micro-batches, in float32.
func TestBFloat16FullSFT(t *testing.T) {
	for _, tc := range []struct {
		name      string
		storage   dtypes.DType
		gradAccum int
	}{{"bfloat16", dtypes.Float32, 1}, {"bfloat16-pure", dtypes.BFloat16, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			lm := tinyLM(t, 1)
			if err := lm.SetPrecision(precision(t, tc.name)); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			cfg := DefaultConfig(60)
			cfg.LR, cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet, cfg.LogEvery, cfg.OutDir = 3e-3, 16/tc.gradAccum, 32, 16, true, 10, dir
			cfg.GradAccum = tc.gradAccum
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
			moments, accumulators := 0, 0
			for v := range lm.Store.IterVariables() {
				if strings.HasPrefix(v.Path(), "/AdamOptimizer/") && v.Shape().Rank() > 0 {
					moments++
					if v.Shape().DType != dtypes.Float32 {
						t.Errorf("AdamW state %s is %s, want float32", v.Path(), v.Shape().DType)
					}
				}
				if strings.HasPrefix(v.Path(), accumScope+"/") {
					accumulators++
					if v.Shape().DType != dtypes.Float32 {
						t.Errorf("gradient accumulator %s is %s, want float32", v.Path(), v.Shape().DType)
					}
				}
			}
			if want := map[bool]int{true: len(lm.Config.ParamSpecs())}[tc.gradAccum > 1]; accumulators != want {
				t.Errorf("found %d gradient accumulators, want %d", accumulators, want)
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
