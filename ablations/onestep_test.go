package ablations

import (
	"math"
	"strings"
	"testing"

	"github.com/alphatoken/alphatoken/model"
)

// TestOneStep: on the tiny test preset, the one-step test yields its cells; a small SGD step's
// actual change of J_tgt and J_dec matches the full first-order prediction ⟨∇J, Δθ⟩; the momentum
// row keeps no token; the reference model's weights are left untouched; the outputs render.
func TestOneStep(t *testing.T) {
	r := testRunner(t)
	before, _ := model.TensorFloat64(r.Ref.Param("model.embed_tokens.weight").MustValue())
	res, err := r.OneStep([]string{"reference"}, []*model.LM{r.Ref}, OneStepOptions{Seed: 1, SGDLR: 0.0005, Warm: 2, Batches: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 1+3+5 || res.Rows[0].Selection != "momentum only" || res.Rows[0].Kept != 0 {
		t.Fatalf("rows: %+v", res.Rows)
	}
	for _, row := range res.Rows {
		if row.Optimizer == "sgd" {
			for _, c := range [][2]float64{{row.ActualT, row.FullT}, {row.ActualD, row.FullD}} {
				if math.Abs(c[0]-c[1]) > 0.1*math.Abs(c[1])+1e-6 || c[1] == 0 {
					t.Errorf("%s %s: actual %g vs first-order %g", row.Optimizer, row.Selection, c[0], c[1])
				}
			}
		}
		for _, x := range []float64{row.ActualT, row.FullT, row.PhiT, row.ActualD, row.FullD} {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				t.Fatalf("%+v: not finite", row)
			}
		}
	}
	after, _ := model.TensorFloat64(r.Ref.Param("model.embed_tokens.weight").MustValue())
	for i := range before {
		if before[i] != after[i] {
			t.Fatal("the one-step test changed the reference model")
		}
	}
	if md := res.Markdown(); !strings.Contains(md, "| sgd | top |") || !strings.Contains(res.CSV(), "reference,adamw,top (adam Φ)") {
		t.Fatalf("outputs:\n%s\n%s", md, res.CSV())
	}
	if _, err := OneStepFigure(res, "adamw"); err != nil {
		t.Fatal(err)
	}
}
