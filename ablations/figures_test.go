package ablations

import (
	"math"
	"testing"
)

// TestCurveBands: the band is the mean over seeds ± the 95% t-interval (t_{0.975, 2} = 4.303 for three
// seeds), steps not logged by every seed and J_tgt's unlogged zeros are left out.
func TestCurveBands(t *testing.T) {
	run := func(seed uint64, losses, jtgt []float64) *RunResult {
		r := &RunResult{Config: RunConfig{Seed: seed}}
		for i, l := range losses {
			r.Curve = append(r.Curve, CurvePoint{Step: 10 * (i + 1), FullLoss: l, JTgt: jtgt[i]})
		}
		return r
	}
	tab := &Table{Seeds: []int{1, 2, 3}, Rows: []TableRow{
		{Label: "reference"}, // no runs: left out
		{Label: "Full FT", Runs: []*RunResult{
			run(1, []float64{1, 2, 5}, []float64{0, 3, 0}),
			run(2, []float64{2, 3}, []float64{0, 4}),
			run(3, []float64{3, 4}, []float64{0, 8}),
		}},
	}}
	bands := CurveBands(tab, CurveFullLoss)
	if len(bands) != 1 || bands[0].Label != "Full FT" {
		t.Fatalf("bands %+v, want one for Full FT", bands)
	}
	b := bands[0]
	if len(b.Steps) != 2 || b.Steps[0] != 10 || b.Steps[1] != 20 {
		t.Fatalf("steps %v, want [10 20] (step 30 has one seed only)", b.Steps)
	}
	half := 4.302652729911275 * 1 / math.Sqrt(3) // std of {1,2,3} is 1
	if math.Abs(b.Mean[0]-2) > 1e-12 || math.Abs(b.Hi[0]-2-half) > 1e-9 || math.Abs(2-b.Lo[0]-half) > 1e-9 {
		t.Errorf("step 10: mean %v [%v, %v], want 2 ± %v", b.Mean[0], b.Lo[0], b.Hi[0], half)
	}
	jt := CurveBands(tab, CurveJTgt)
	if len(jt) != 1 || len(jt[0].Steps) != 1 || jt[0].Steps[0] != 20 || math.Abs(jt[0].Mean[0]-5) > 1e-12 {
		t.Errorf("J_tgt bands %+v, want step 20 only, mean 5", jt)
	}
	if _, _, err := CurvesFigure("t", tab, CurveFullLoss); err != nil {
		t.Fatal(err)
	}
	if _, _, err := CurvesFigure("t", &Table{Seeds: []int{1}, Rows: []TableRow{{Label: "x"}}}, CurveFullLoss); err == nil {
		t.Error("a table without curves drew a figure")
	}
}

func TestBarsText(t *testing.T) {
	if got := barsText([]int{1, 2, 3}); got != "bars: mean ± 95% t-interval over 3 seeds (1, 2, 3)" {
		t.Errorf("barsText: %q", got)
	}
	if got := barsText([]int{1}); got != "one run per point (seed 1): no error bars" {
		t.Errorf("barsText: %q", got)
	}
	if e := errOf(Stat{Mean: 1, Std: 2, CI95: 3, N: 3}); e != 3 {
		t.Errorf("errOf = %v, want the CI95 3", e)
	}
	if e := errOf(Stat{Mean: 1, Std: math.NaN(), CI95: math.NaN(), N: 1}); e != 0 {
		t.Errorf("errOf of one seed = %v, want 0", e)
	}
}
