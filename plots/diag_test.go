package plots_test

import (
	"slices"
	"testing"

	"github.com/alphatoken/alphatoken/alphatoken/diag"
	"github.com/alphatoken/alphatoken/plots"
)

// plots.Pair converts from diag.PairStat, and the figure's low-risk share
// and Pareto front agree with the diag package's.
func TestAgreesWithDiag(t *testing.T) {
	r := rng(7)
	stats := make([]diag.PairStat, 500)
	pairs := make([]plots.Pair, len(stats))
	for i := range stats {
		stats[i] = diag.PairStat{A: r.float64() * r.float64(), Dev: 2 * r.float64(), Omitted: r.float64()}
		pairs[i] = plots.Pair(stats[i])
	}
	aT, dT := diag.DefaultRiskThresholds(stats)
	if got, want := (plots.LowRisk{MaxA: aT, MaxDev: dT}).Share(pairs), diag.RiskShare(stats, aT, dT); got != want {
		t.Errorf("LowRisk.Share = %v, diag.RiskShare = %v", got, want)
	}

	for trial := range 50 {
		n := 1 + trial%9
		pts := make([]plots.MethodPoint, n)
		xs, ys := make([]float64, n), make([]float64, n)
		for i := range pts {
			// Coarse values so that ties happen.
			xs[i], ys[i] = float64(int(r.float64()*4)), float64(int(r.float64()*4))
			pts[i] = plots.MethodPoint{Name: "m", Retention: xs[i], Target: ys[i]}
		}
		if got, want := plots.ParetoFront(pts), diag.ParetoFront(xs, ys); !slices.Equal(got, want) {
			t.Fatalf("points %v, %v: ParetoFront = %v, diag.ParetoFront = %v", xs, ys, got, want)
		}
	}
}

// TestOmittedShareMatchesDiag: the figure's share of the omitted mass in the low-risk region is
// diag.OmittedShare's.
func TestOmittedShareMatchesDiag(t *testing.T) {
	ps := []diag.PairStat{{A: 0.01, Dev: 3, Omitted: 1}, {A: 0.5, Dev: 0.1, Omitted: 2}, {A: 0.6, Dev: 2, Omitted: 7}}
	pairs := make([]plots.Pair, len(ps))
	for i, p := range ps {
		pairs[i] = plots.Pair(p)
	}
	r := plots.LowRisk{MaxA: 0.05, MaxDev: 0.5}
	if got, want := r.OmittedShare(pairs), diag.OmittedShare(ps, 0.05, 0.5); got != want || got != 0.3 {
		t.Errorf("OmittedShare = %v, diag = %v, want 0.3", got, want)
	}
}
