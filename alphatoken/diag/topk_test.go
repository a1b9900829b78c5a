package diag

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestTopKOverlapKnownValues(t *testing.T) {
	cases := []struct {
		name string
		a, b []float64
		k    int
		want float64
	}{
		{"opposite k=2", []float64{5, 4, 3, 2, 1}, []float64{1, 2, 3, 4, 5}, 2, 0},
		{"opposite k=3", []float64{5, 4, 3, 2, 1}, []float64{1, 2, 3, 4, 5}, 3, 1.0 / 3},
		{"same order, other scale", []float64{0.3, 0.1, 0.2}, []float64{30, 10, 20}, 2, 1},
		{"all", []float64{1, 2, 3}, []float64{3, 1, 2}, 3, 1},
		// Ties go to the earlier index: topk(a) = {0}, topk(b) = {1}.
		{"ties by index", []float64{1, 1, 0, 0}, []float64{0, 1, 1, 0}, 1, 0},
		// Reversing tie order would pick index 1 in a and give 1.
		{"tie to the earlier index", []float64{1, 1, 0}, []float64{0, 1, 0}, 1, 0},
		{"all tied", []float64{1, 1, 1, 1}, []float64{2, 2, 2, 2}, 2, 1},
		// topk(a) = {1, 2}, topk(b) = {2, 3}.
		{"partial", []float64{0, 9, 8, 1}, []float64{0, 1, 9, 8}, 2, 0.5},
	}
	for _, c := range cases {
		got, err := TopKOverlap(c.a, c.b, c.k)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !near(got, c.want, 1e-15) {
			t.Errorf("%s: TopKOverlap = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestDescendingOrder(t *testing.T) {
	if got := descendingOrder([]float64{3, 1, 3, 2, 3}); !slices.Equal(got, []int{0, 2, 4, 3, 1}) {
		t.Errorf("descendingOrder = %v, want [0 2 4 3 1]", got)
	}
}

func TestTopKOverlapCurve(t *testing.T) {
	a := []float64{5, 4, 3, 2, 1}
	b := []float64{1, 2, 3, 4, 5}
	got, err := TopKOverlapCurve(a, b, []int{5, 1, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{1, 0, 1.0 / 3, 3.0 / 4} // k=4: {0,1,2,3} ∩ {4,3,2,1} = {1,2,3}
	if !slices.Equal(got, want) {
		t.Errorf("curve = %v, want %v", got, want)
	}
}

// TestTopKOverlapChance checks the documented random expectation k/n.
func TestTopKOverlapChance(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	const n, k, trials = 100, 10, 2000
	a := make([]float64, n)
	for i := range a {
		a[i] = float64(i)
	}
	var sum float64
	for range trials {
		b := make([]float64, n)
		for i, p := range rng.Perm(n) {
			b[i] = float64(p)
		}
		o, err := TopKOverlap(a, b, k)
		if err != nil {
			t.Fatal(err)
		}
		sum += o
	}
	// Per-trial sd ≈ 0.09, so the mean of 2000 has sd ≈ 0.002.
	if mean := sum / trials; !near(mean, float64(k)/n, 0.01) {
		t.Errorf("mean overlap of random rankings = %.4f, want k/n = %.2f", mean, float64(k)/n)
	}
}

func TestTopKOverlapErrors(t *testing.T) {
	_, err := TopKOverlap([]float64{1, 2}, []float64{1, 2}, 0)
	wantErr(t, err, "ks[0] = 0", "[1, 2]")
	_, err = TopKOverlap([]float64{1, 2}, []float64{1, 2}, 3)
	wantErr(t, err, "ks[0] = 3")
	_, err = TopKOverlap([]float64{1, 2}, []float64{1}, 1)
	wantErr(t, err, "a and b", "lengths")
	_, err = TopKOverlap([]float64{math.Inf(1), 2}, []float64{1, 2}, 1)
	wantErr(t, err, "a[0]")
	_, err = TopKOverlapCurve([]float64{1, 2}, []float64{1, 2}, nil)
	wantErr(t, err, "ks is empty")
}
