package ablations

import (
	"fmt"
	"math"
	"sort"

	"github.com/alphatoken/alphatoken/alphatoken/diag"
)

// Statistics shared by the tables (SFT here; the DPO tables use the same helpers).

// Stat is a mean with its spread over seeds (sample std; NaN for one seed) and the 95% interval
// half-width (Student t with n − 1 degrees of freedom; NaN for one seed).
type Stat struct {
	Mean float64 `json:"mean"`
	Std  float64 `json:"std"`
	CI95 float64 `json:"ci95"`
	N    int     `json:"n"`
}

func statOf(xs []float64) Stat {
	m, s := diag.MeanStd(xs)
	return Stat{Mean: m, Std: s, CI95: diag.CI95(xs), N: len(xs)}
}

// Lo and Hi are the ends of the 95% interval (NaN for one seed).
func (s Stat) Lo() float64 { return s.Mean - s.CI95 }
func (s Stat) Hi() float64 { return s.Mean + s.CI95 }

// PairedDiff is the paired difference a[s] − b[s] over the seeds s both have: its mean, standard
// deviation and 95% t-interval half-width (diag.CI95 of the differences, n − 1 degrees of freedom).
// Pairing removes what a seed shares between two rows (data order, random masks), so this is the
// interval to read when two rows are compared.
func PairedDiff(a, b map[int]float64) Stat {
	var seeds []int
	for s := range a {
		if _, ok := b[s]; ok {
			seeds = append(seeds, s)
		}
	}
	sort.Ints(seeds)
	d := make([]float64, len(seeds))
	for i, s := range seeds {
		d[i] = a[s] - b[s]
	}
	return statOf(d)
}

// fmtPM renders a Stat as "mean ± ci95" (the 95% t-interval half-width over seeds); one seed shows
// the mean alone (the table's note says there is no interval).
func fmtPM(s Stat) string {
	if s.N == 0 {
		return "–"
	}
	if s.N < 2 || math.IsNaN(s.CI95) {
		return fmt.Sprintf("%.1f", s.Mean)
	}
	return fmt.Sprintf("%.1f ± %.1f", s.Mean, s.CI95)
}

// fmtDiff renders a paired difference as "+mean [lo, hi]" (its 95% interval).
func fmtDiff(s Stat) string {
	if s.N == 0 {
		return "–"
	}
	if s.N < 2 || math.IsNaN(s.CI95) {
		return fmt.Sprintf("%+.1f", s.Mean)
	}
	return fmt.Sprintf("%+.1f [%+.1f, %+.1f]", s.Mean, s.Lo(), s.Hi())
}

// fmtStd renders a Stat as "mean ± std" (sample standard deviation; the mean alone for one seed),
// for the calibration record, whose note says so.
func fmtStd(s Stat) string {
	if s.N == 0 {
		return "–"
	}
	if s.N < 2 || math.IsNaN(s.Std) {
		return fmt.Sprintf("%.1f", s.Mean)
	}
	return fmt.Sprintf("%.1f ± %.1f", s.Mean, s.Std)
}
