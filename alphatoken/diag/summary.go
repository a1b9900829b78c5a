package diag

import (
	"math"
	"sort"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Summaries for the tables and plots (SPEC §8: every cell that comes from
// training carries the number of seeds and a spread).

// MeanStd returns the mean and the sample standard deviation
//
//	s = sqrt(Σ (x_i - x̄)² / (n - 1))
//
// of xs. For no values both are NaN; for one value the std is NaN (one seed
// has no spread to report). A NaN in xs gives NaN. O(n).
func MeanStd(xs []float64) (mean, std float64) {
	switch len(xs) {
	case 0:
		return math.NaN(), math.NaN()
	case 1:
		return xs[0], math.NaN()
	}
	return stat.MeanStdDev(xs, nil)
}

// CI95 returns the half-width h of the two-sided 95% confidence interval
// x̄ ± h for the mean of xs, from Student's t distribution with n - 1
// degrees of freedom:
//
//	h = t_{0.975, n-1} · s / √n,
//
// s being the sample standard deviation (MeanStd). The quantile is exact
// (gonum's distuv.StudentsT); for reading tables, the values are
//
//	n            2       3      4      5      6      8      10     20     30     ∞
//	t_{.975,n-1} 12.706  4.303  3.182  2.776  2.571  2.365  2.262  2.093  2.045  1.960
//
// so with 3 seeds the interval is about 2.5 standard deviations wide on
// each side (4.303/√3). NaN for fewer than 2 values or a NaN in xs. O(n).
func CI95(xs []float64) float64 {
	if len(xs) < 2 {
		return math.NaN()
	}
	_, s := MeanStd(xs)
	n := float64(len(xs))
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: n - 1}.Quantile(0.975)
	return t * s / math.Sqrt(n)
}

// ParetoFront returns the indices of the points (xs[i], ys[i]) that no
// other point dominates when both coordinates are maximised; j dominates i
// when xs[j] ≥ xs[i] and ys[j] ≥ ys[i] with at least one strict. Equal
// points are all kept. The indices are sorted by x ascending (so y
// descends along the front), equal x by index. Points with a NaN
// coordinate are skipped; mismatched lengths give nil. O(n log n).
func ParetoFront(xs, ys []float64) []int {
	if len(xs) != len(ys) {
		return nil
	}
	idx := make([]int, 0, len(xs))
	for i := range xs {
		if !math.IsNaN(xs[i]) && !math.IsNaN(ys[i]) {
			idx = append(idx, i)
		}
	}
	// Sweep from the largest x down; a point survives if its y beats every
	// point of strictly larger x and is the largest within its own x.
	sort.SliceStable(idx, func(a, b int) bool {
		i, j := idx[a], idx[b]
		if xs[i] != xs[j] {
			return xs[i] > xs[j]
		}
		return ys[i] > ys[j]
	})
	var front []int
	var bestRight float64 // max y over points with larger x (none yet when lo == 0)
	for lo := 0; lo < len(idx); {
		hi := lo + 1
		for hi < len(idx) && xs[idx[hi]] == xs[idx[lo]] {
			hi++
		}
		top := ys[idx[lo]] // the group's largest y
		if lo == 0 || top > bestRight {
			for _, i := range idx[lo:hi] {
				if ys[i] == top {
					front = append(front, i)
				}
			}
			bestRight = top
		}
		lo = hi
	}
	sort.SliceStable(front, func(a, b int) bool {
		i, j := front[a], front[b]
		if xs[i] != xs[j] {
			return xs[i] < xs[j]
		}
		return i < j
	})
	return front
}
