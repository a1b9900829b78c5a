package diag

import (
	"math"
	"sort"
)

// The value-propagation diagnostic (SPEC §4 "what is omitted", §8). The
// causal path keeps only value propagation; it omits the score path, whose
// gradient for the pair (query r, key c) is A_{r,c} (v_c - u_r) · g_r. That
// term is small where attention is sparse (A_{r,c} ≈ 0) or saturated
// (v_c ≈ u_r, so ||v_c - u_r|| ≈ 0). The diagnostic samples pairs, plots A
// against ||v_c - u_r|| coloured by the omitted term, and reports the share
// of pairs in the low-risk region.

// PairStat describes one sampled (query r, key c) attention pair.
type PairStat struct {
	A       float64 // attention probability A_{r,c}, in [0, 1]
	Dev     float64 // deviation ||v_c - u_r|| of the key's value from the query's output
	Omitted float64 // size of the omitted score-path term, e.g. |A_{r,c} (v_c - u_r) · g_r|
}

// Default low-risk thresholds (see DefaultRiskThresholds).
const (
	// DefaultRiskA is the attention probability at or below which a pair
	// counts as sparse: 0.05, a twentieth of the mass of one query.
	DefaultRiskA = 0.05
	// DefaultRiskDevFraction times the median Dev of the sample is the
	// deviation at or below which a pair counts as saturated.
	DefaultRiskDevFraction = 0.25
)

// LowRisk reports whether a pair lies in the low-risk region, where the
// omitted score-path term is small whatever the gradient: A ≤ aThresh
// (sparse) or Dev ≤ devThresh (saturated). A pair with a NaN A or Dev is
// not low-risk.
func (p PairStat) LowRisk(aThresh, devThresh float64) bool {
	return p.A <= aThresh || p.Dev <= devThresh
}

// RiskShare returns the share of pairs in the low-risk region (see
// PairStat.LowRisk), in [0, 1]; NaN for no pairs. O(n).
func RiskShare(pairs []PairStat, aThresh, devThresh float64) float64 {
	if len(pairs) == 0 {
		return math.NaN()
	}
	low := 0
	for _, p := range pairs {
		if p.LowRisk(aThresh, devThresh) {
			low++
		}
	}
	return float64(low) / float64(len(pairs))
}

// OmittedShare returns the share of the total omitted magnitude Σ |Omitted|
// carried by low-risk pairs, in [0, 1]: near 1 when the region the
// thresholds call safe is where the score path actually lives, near 0 when
// the large omitted terms sit among high-risk pairs. NaN for no pairs or a
// zero total; pairs with a NaN Omitted are skipped. O(n).
func OmittedShare(pairs []PairStat, aThresh, devThresh float64) float64 {
	var low, total float64
	for _, p := range pairs {
		s := math.Abs(p.Omitted)
		if math.IsNaN(s) {
			continue
		}
		total += s
		if p.LowRisk(aThresh, devThresh) {
			low += s
		}
	}
	if total == 0 {
		return math.NaN()
	}
	return low / total
}

// DefaultRiskThresholds returns the thresholds the notebooks use:
// aThresh = DefaultRiskA (0.05) and devThresh = DefaultRiskDevFraction
// (0.25) × the median Dev of the sample, so "saturated" means a deviation
// under a quarter of the typical one and the threshold follows the scale of
// the layer's values without a separate norm. NaN Dev values are skipped;
// with none left devThresh is 0 (only exact saturation counts). O(n log n).
func DefaultRiskThresholds(pairs []PairStat) (aThresh, devThresh float64) {
	devs := make([]float64, 0, len(pairs))
	for _, p := range pairs {
		if !math.IsNaN(p.Dev) {
			devs = append(devs, p.Dev)
		}
	}
	if len(devs) == 0 {
		return DefaultRiskA, 0
	}
	return DefaultRiskA, DefaultRiskDevFraction * median(devs)
}

// median sorts xs in place and returns its median (the mean of the two
// middle values for even length).
func median(xs []float64) float64 {
	sort.Float64s(xs)
	m := len(xs) / 2
	if len(xs)%2 == 1 {
		return xs[m]
	}
	return (xs[m-1] + xs[m]) / 2
}
