package alphatoken

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/alphatoken/alphatoken/model"
)

// setAdamState writes random second moments (positive, spread over four decades) and a step count
// into the optimizer state the valuer reads, and returns √v̂ + ε per scored layer, in float64.
func setAdamState(t *testing.T, v *Valuer, m AdamMoments, step int, rng *rand.Rand) map[string][]float64 {
	t.Helper()
	st, _ := model.TensorFromFloat64([]float64{float64(step)}, m.DType)
	if err := model.SetFrozen(v.LM.Store, m.stepPath(), st); err != nil {
		t.Fatal(err)
	}
	den := map[string][]float64{}
	bias := 1 - math.Pow(m.Beta2, float64(step))
	for _, l := range v.Layers {
		mom := make([]float64, l.Out*l.In)
		d := make([]float64, len(mom))
		for j := range mom {
			mom[j] = math.Pow(10, -8+4*rng.Float64())
			d[j] = math.Sqrt(mom[j]/bias) + m.Eps
			if step == 0 {
				d[j] = 1
			}
		}
		tt, _ := model.TensorFromFloat64(mom, m.DType, l.Out, l.In)
		if err := model.SetFrozen(v.LM.Store, m.momentPath(model.VarPath(l.Name)), tt); err != nil {
			t.Fatal(err)
		}
		den[l.Name] = d
	}
	return den
}

// TestPreconditionAdamAgainstMaterialisedGradients: SPEC §4 optimizer-aware values — each component
// equals the float64 brute-force inner product of explicitly materialised per-token gradients with
// G ⊘ (√v̂+ε) and P ⊘ (√v̂+ε), for v̂ set in the store as the trainer's AdamW leaves it; at step 0 the
// values are the plain ones.
func TestPreconditionAdamAgainstMaterialisedGradients(t *testing.T) {
	for _, tc := range []struct {
		arch   model.Arch
		fisher FisherKind
		step   int
	}{
		{model.Llama, FisherDiag, 3},
		{model.Qwen3, FisherKFAC, 7},
		{model.Llama, FisherDiag, 0},
	} {
		t.Run(fmt.Sprintf("%s/%s/step%d", tc.arch, tc.fisher, tc.step), func(t *testing.T) {
			fx := newFixture(t, tc.arch, tc.fisher, 2)
			cfg := DefaultConfig()
			cfg.Blocks, cfg.Window, cfg.Fisher, cfg.Precondition = 2, 3, tc.fisher, PrecondAdam
			v, err := NewValuer(fx.lm, fx.ref, fx.fisher, fx.val, cfg, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range v.Layers {
				if l.Ghost {
					t.Fatalf("%s uses the ghost form under precondition adam", l.Name)
				}
			}
			m := AdamMoments{Scope: "AdamOptimizer", Beta2: 0.95, Eps: 1e-8, DType: dtypes.Float64}
			if err := v.UseAdam(m); err != nil {
				t.Fatal(err)
			}
			den := setAdamState(t, v, m, tc.step, rand.New(rand.NewPCG(7, uint64(tc.step))))
			if _, err := v.RefreshValidationGradient(); err != nil {
				t.Fatal(err)
			}
			b := fx.trainBatch(12)
			got := components(t, v, b)
			want := bruteForceWith(t, fx, cfg, b, omegaOf(b), nil, den)
			plain := bruteForce(t, fx, cfg, b)
			for i := range got {
				if e := relErr(got[i], want[i]); e > 1e-9 || math.IsNaN(e) {
					t.Errorf("%s: relative error %.3g against preconditioned materialised gradients", componentNames[i], e)
				}
				// The preconditioner must change the values (else the test proves nothing), except at step 0.
				if d := relErr(plain[i], want[i]); (tc.step > 0) != (d > 1e-3) {
					t.Errorf("%s: preconditioned and plain values differ by %.3g at step %d", componentNames[i], d, tc.step)
				}
			}
		})
	}
}

// TestPreconditionErrors: the ghost form, an unknown kind and a missing optimizer state are refused.
func TestPreconditionErrors(t *testing.T) {
	fx := newFixture(t, model.Llama, FisherDiag, 2)
	cfg := DefaultConfig()
	cfg.Blocks, cfg.Fisher, cfg.Precondition, cfg.Ghost = 2, FisherDiag, PrecondAdam, GhostAlways
	if _, err := NewValuer(fx.lm, fx.ref, fx.fisher, fx.val, cfg, 0); err == nil || !strings.Contains(err.Error(), "materialised") {
		t.Errorf("ghost + adam: got %v", err)
	}
	cfg.Ghost, cfg.Precondition = GhostAuto, "sgd"
	if _, err := NewValuer(fx.lm, fx.ref, fx.fisher, fx.val, cfg, 0); err == nil || !strings.Contains(err.Error(), "unknown precondition") {
		t.Errorf("unknown precondition: got %v", err)
	}
	cfg.Precondition = PrecondAdam
	v, err := NewValuer(fx.lm, fx.ref, fx.fisher, fx.val, cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.UseAdam(AdamMoments{Scope: "AdamOptimizer", Beta2: 1, Eps: 1e-8, DType: dtypes.Float32}); err == nil {
		t.Error("β2 = 1 accepted")
	}
	if _, err := v.RefreshValidationGradient(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "UseAdam") {
			t.Errorf("Build without the optimizer state: got %v", r)
		}
	}()
	components(t, v, fx.trainBatch(12))
}

// TestPreconditionKeepsConfigJSON: configurations without the extension keep their JSON (the
// ablation runner's cache keys), and adam is recorded.
func TestPreconditionKeepsConfigJSON(t *testing.T) {
	c := DefaultConfig()
	if strings.Contains(string(c.JSON()), "Precondition") {
		t.Fatalf("default configuration JSON mentions Precondition:\n%s", c.JSON())
	}
	c.Precondition = PrecondAdam
	if !strings.Contains(string(c.JSON()), `"Precondition": "adam"`) {
		t.Fatalf("adam not recorded:\n%s", c.JSON())
	}
}
