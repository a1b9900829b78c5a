package ablations

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// TestValueDynamics: snapshots every 2 of 4 steps; correlations in [−1, 1], flip shares in [0, 1];
// the training run is the one without the diagnostic (same losses); the outputs render.
func TestValueDynamics(t *testing.T) {
	r := testRunner(t)
	res, err := r.ValueDynamics(Row{Label: "AlphaToken", Method: "alphatoken"}, 1, 4, 2, 6)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Points) != 2 || res.Points[0].Step != 2 || res.Points[1].Step != 4 || res.Tokens == 0 {
		t.Fatalf("points: %+v (%d tokens)", res.Points, res.Tokens)
	}
	for _, p := range res.Points {
		for _, x := range []float64{p.SpearmanPrev, p.SpearmanFirst} {
			if !(x >= -1 && x <= 1) {
				t.Fatalf("step %d: Spearman %v", p.Step, x)
			}
		}
		if p.FlipPrev < 0 || p.FlipPrev > 1 || p.FlipFirst < 0 || p.FlipFirst > 1 || math.IsNaN(p.Components[0]) {
			t.Fatalf("step %d: %+v", p.Step, p)
		}
	}
	if res.Points[0].SpearmanPrev != res.Points[0].SpearmanFirst || res.Points[0].FlipPrev != res.Points[0].FlipFirst {
		t.Fatal("the first snapshot's previous one is step 0: both comparisons must agree")
	}
	res.Points[0].Components[2] = math.NaN() // a constant component (Φ_prx at θ_ref): null in JSON
	if b, err := json.Marshal(res); err != nil || !strings.Contains(string(b), "null") {
		t.Fatalf("JSON: %v\n%s", err, b)
	}
	if _, err := ValueDynamicsFigure(res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Markdown(), "| 4 |") || !strings.HasPrefix(res.CSV(), "step,spearman_prev") {
		t.Fatalf("outputs:\n%s", res.Markdown())
	}
	if _, err := r.ValueDynamics(Row{Label: "Random", Method: "random"}, 1, 4, 2, 6); err == nil {
		t.Fatal("random has no values: want an error")
	}
}
