package diag

import (
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/stat"
)

// Correlations for the Fisher-proxy fidelity table (SPEC §8): token values
// Φ_prx against oracle values <g_token, ∇J_ret>.

// Pearson returns the sample Pearson correlation of x and y,
//
//	r = Σ (x_i - x̄)(y_i - ȳ) / sqrt(Σ (x_i - x̄)^2 · Σ (y_i - ȳ)^2),
//
// in [-1, 1]. It costs O(n). x and y must have the same length n ≥ 2, hold
// no NaN or infinity, and neither may be constant (r is undefined then).
func Pearson(x, y []float64) (float64, error) {
	if err := checkPair("x", x, "y", y); err != nil {
		return 0, err
	}
	if len(x) < 2 {
		return 0, fmt.Errorf("diag: x and y need at least 2 values, have %d", len(x))
	}
	if isConstant(x) {
		return 0, fmt.Errorf("diag: x is constant, correlation is undefined")
	}
	if isConstant(y) {
		return 0, fmt.Errorf("diag: y is constant, correlation is undefined")
	}
	r := stat.Correlation(x, y, nil)
	return clamp(r, -1, 1), nil
}

// Spearman returns Spearman's rank correlation of x and y: the Pearson
// correlation of their ranks, where tied values share the average of the
// ranks they span (the "fractional" ranking; x = [1, 2, 2, 3] has ranks
// [1, 2.5, 2.5, 4]). It costs O(n log n). The conditions on x and y are
// those of Pearson.
func Spearman(x, y []float64) (float64, error) {
	if err := checkPair("x", x, "y", y); err != nil {
		return 0, err
	}
	// Ranks are constant exactly when the data are, so Pearson's errors
	// still describe x and y.
	return Pearson(averageRanks(x), averageRanks(y))
}

// averageRanks returns the 1-based ranks of xs, ties getting the mean of
// the ranks they occupy.
func averageRanks(xs []float64) []float64 {
	n := len(xs)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return xs[idx[a]] < xs[idx[b]] })
	ranks := make([]float64, n)
	for lo := 0; lo < n; {
		hi := lo + 1
		for hi < n && xs[idx[hi]] == xs[idx[lo]] {
			hi++
		}
		// Positions lo..hi-1 (0-based) hold ranks lo+1..hi; their mean:
		r := float64(lo+1+hi) / 2
		for _, i := range idx[lo:hi] {
			ranks[i] = r
		}
		lo = hi
	}
	return ranks
}

func clamp(x, lo, hi float64) float64 {
	return math.Max(lo, math.Min(hi, x))
}
