package diag

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestRiskShareOneHot: each query attends one key with A = 1 and v_c = u_r
// (Dev = 0) and every other key with A = 0, so every pair is low-risk.
func TestRiskShareOneHot(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 0))
	const T = 16
	var pairs []PairStat
	for r := 0; r < T; r++ {
		for c := 0; c <= r; c++ {
			p := PairStat{A: 0, Dev: 0.5 + 5*rng.Float64(), Omitted: 0}
			if c == r/2 { // the attended key: u_r = v_c
				p = PairStat{A: 1, Dev: 0, Omitted: 0}
			}
			pairs = append(pairs, p)
		}
	}
	a, d := DefaultRiskThresholds(pairs)
	if got := RiskShare(pairs, a, d); got != 1 {
		t.Errorf("one-hot attention: share = %v with thresholds (%v, %v), want 1", got, a, d)
	}
	if got := RiskShare(pairs, 0, 0); got != 1 {
		t.Errorf("one-hot attention: share = %v with zero thresholds, want 1", got)
	}
}

func TestRiskShareUniformAttention(t *testing.T) {
	// One query spread over four keys: nothing sparse; Dev median 2.5.
	pairs := []PairStat{{0.25, 1, 0.25}, {0.25, 2, 0.5}, {0.25, 3, 0.75}, {0.25, 4, 1}}
	a, d := DefaultRiskThresholds(pairs)
	if a != 0.05 || d != 0.625 {
		t.Fatalf("thresholds = (%v, %v), want (0.05, 0.25×2.5 = 0.625)", a, d)
	}
	if got := RiskShare(pairs, a, d); got != 0 {
		t.Errorf("share = %v, want 0", got)
	}
	if got := RiskShare(pairs, a, 2); got != 0.5 {
		t.Errorf("share with devThresh 2 = %v, want 0.5", got)
	}
	if got := RiskShare(pairs, 0.25, 0); got != 1 {
		t.Errorf("share with aThresh 0.25 = %v, want 1 (A ≤ aThresh is inclusive)", got)
	}
	// Omitted mass: low-risk pairs at devThresh 2 carry 0.25 + 0.5 of 2.5.
	if got := OmittedShare(pairs, a, 2); !near(got, 0.3, 1e-15) {
		t.Errorf("OmittedShare = %v, want 0.3", got)
	}
}

func TestRiskEdgeCases(t *testing.T) {
	if !math.IsNaN(RiskShare(nil, 0.05, 1)) {
		t.Error("RiskShare(nil) is not NaN")
	}
	if !math.IsNaN(OmittedShare([]PairStat{{0.5, 1, 0}}, 0.05, 1)) {
		t.Error("OmittedShare with zero total is not NaN")
	}
	nan := PairStat{A: math.NaN(), Dev: math.NaN(), Omitted: 1}
	if nan.LowRisk(0.05, 1) {
		t.Error("a NaN pair counts as low-risk")
	}
	if got := RiskShare([]PairStat{nan, {0, 9, 0}}, 0.05, 1); got != 0.5 {
		t.Errorf("share with a NaN pair = %v, want 0.5", got)
	}
	// Odd count, NaN skipped: median of {1, 3, 8} is 3.
	_, d := DefaultRiskThresholds([]PairStat{{Dev: 8}, {Dev: math.NaN()}, {Dev: 1}, {Dev: 3}})
	if d != 0.75 {
		t.Errorf("devThresh = %v, want 0.25×3", d)
	}
	a, d := DefaultRiskThresholds(nil)
	if a != DefaultRiskA || d != 0 {
		t.Errorf("thresholds for no pairs = (%v, %v), want (%v, 0)", a, d, DefaultRiskA)
	}
}
