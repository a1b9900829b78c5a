package diag

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestMeanStd(t *testing.T) {
	m, s := MeanStd([]float64{2, 4, 4, 4, 5, 5, 7, 9})
	// Σ(x - 5)² = 32, so s = √(32/7).
	if m != 5 || !near(s, math.Sqrt(32.0/7), 1e-14) {
		t.Errorf("MeanStd = (%v, %v), want (5, %v)", m, s, math.Sqrt(32.0/7))
	}
	m, s = MeanStd([]float64{3})
	if m != 3 || !math.IsNaN(s) {
		t.Errorf("one value: (%v, %v), want (3, NaN)", m, s)
	}
	m, s = MeanStd(nil)
	if !math.IsNaN(m) || !math.IsNaN(s) {
		t.Errorf("no values: (%v, %v), want NaNs", m, s)
	}
}

func TestCI95Table(t *testing.T) {
	// The documented t_{0.975, n-1} values; xs = 0..n-1 has s = √(n(n+1)/12).
	table := map[int]float64{2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 8: 2.365, 10: 2.262, 20: 2.093, 30: 2.045}
	for n, tq := range table {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = float64(i)
		}
		s := math.Sqrt(float64(n*(n+1)) / 12)
		want := tq * s / math.Sqrt(float64(n))
		if got := CI95(xs); !near(got, want, 5e-4*s) {
			t.Errorf("n=%d: CI95 = %.5f, want %.5f (t = %v)", n, got, want, tq)
		}
	}
	// Large n approaches the normal 1.96.
	rng := rand.New(rand.NewPCG(31, 0))
	xs := make([]float64, 100000)
	for i := range xs {
		xs[i] = rng.NormFloat64()
	}
	_, s := MeanStd(xs)
	if r := CI95(xs) / (s / math.Sqrt(float64(len(xs)))); !near(r, 1.960, 1e-3) {
		t.Errorf("large n: t = %v, want 1.960", r)
	}
	if !math.IsNaN(CI95([]float64{1})) {
		t.Error("CI95 of one value is not NaN")
	}
}

func TestParetoFrontKnown(t *testing.T) {
	//          0  1  2  3  4  5  6  7  8
	xs := []float64{1, 2, 3, 2, 1, 3, 0, 4, math.NaN()}
	ys := []float64{5, 4, 3, 2, 1, 3, 6, 0, 9}
	// (0,6) (1,5) (2,4) (3,3)×2 (4,0) are undominated; (2,2) and (1,1) are not.
	want := []int{6, 0, 1, 2, 5, 7}
	if got := ParetoFront(xs, ys); !slices.Equal(got, want) {
		t.Errorf("ParetoFront = %v, want %v", got, want)
	}
	if ParetoFront([]float64{1}, nil) != nil {
		t.Error("mismatched lengths do not give nil")
	}
	if got := ParetoFront([]float64{0}, []float64{math.Inf(-1)}); !slices.Equal(got, []int{0}) {
		t.Errorf("single point at -Inf: %v, want [0]", got)
	}
}

// TestParetoFrontBruteForce compares with the O(n²) definition on data with
// many ties.
func TestParetoFrontBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(32, 0))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(30)
		xs, ys := make([]float64, n), make([]float64, n)
		for i := range xs {
			xs[i], ys[i] = float64(rng.IntN(6)), float64(rng.IntN(6))
		}
		var want []int
		for i := range xs {
			dominated := false
			for j := range xs {
				if xs[j] >= xs[i] && ys[j] >= ys[i] && (xs[j] > xs[i] || ys[j] > ys[i]) {
					dominated = true
				}
			}
			if !dominated {
				want = append(want, i)
			}
		}
		slices.SortStableFunc(want, func(a, b int) int {
			if xs[a] != xs[b] {
				return int(xs[a] - xs[b])
			}
			return a - b
		})
		if got := ParetoFront(xs, ys); !slices.Equal(got, want) {
			t.Fatalf("xs=%v ys=%v: got %v, want %v", xs, ys, got, want)
		}
	}
}
