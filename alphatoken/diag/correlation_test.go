package diag

import (
	"math"
	"slices"
	"testing"
)

func TestPearsonKnownValues(t *testing.T) {
	cases := []struct {
		name string
		x, y []float64
		want float64
	}{
		// Σdxdy = 6, Σdx² = 10, Σdy² = 6: r = 6/√60.
		{"textbook", []float64{1, 2, 3, 4, 5}, []float64{2, 4, 5, 4, 5}, 6 / math.Sqrt(60)},
		{"affine", []float64{1, 2, 3, 4}, []float64{3, 5, 7, 9}, 1},
		{"reversed", []float64{1, 2, 3, 4}, []float64{4, 3, 2, 1}, -1},
		{"orthogonal", []float64{-1, 0, 1, 0}, []float64{0, 1, 0, -1}, 0},
	}
	for _, c := range cases {
		got, err := Pearson(c.x, c.y)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !near(got, c.want, 1e-12) {
			t.Errorf("%s: Pearson = %.15f, want %.15f", c.name, got, c.want)
		}
	}
}

func TestSpearmanKnownValues(t *testing.T) {
	// Ranks [1, 2.5, 2.5, 4] and [1, 3, 2, 4]: r = 4.5/√(4.5·5) = 0.948683...
	// (scipy.stats.spearmanr gives 0.9486832980505138).
	got, err := Spearman([]float64{1, 2, 2, 3}, []float64{1, 3, 2, 4})
	if err != nil {
		t.Fatal(err)
	}
	if !near(got, 0.9486832980505138, 1e-12) {
		t.Errorf("Spearman with ties = %.16f, want 0.9486832980505138", got)
	}
	// A monotone but non-linear relation: Spearman 1, Pearson below 1.
	x := []float64{1, 2, 3, 4, 5}
	y := []float64{math.Exp(1), math.Exp(2), math.Exp(3), math.Exp(4), math.Exp(5)}
	s, _ := Spearman(x, y)
	p, _ := Pearson(x, y)
	if s != 1 || p > 0.95 {
		t.Errorf("monotone: Spearman = %v (want 1), Pearson = %v (want < 0.95)", s, p)
	}
}

func TestAverageRanks(t *testing.T) {
	cases := []struct{ in, want []float64 }{
		{[]float64{1, 2, 2, 3}, []float64{1, 2.5, 2.5, 4}},
		{[]float64{3, 1, 3, 3}, []float64{3, 1, 3, 3}},
		{[]float64{-1, 5, 0}, []float64{1, 3, 2}},
		{[]float64{7, 7}, []float64{1.5, 1.5}},
	}
	for _, c := range cases {
		if got := averageRanks(c.in); !slices.Equal(got, c.want) {
			t.Errorf("averageRanks(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestCorrelationErrors(t *testing.T) {
	for _, f := range []struct {
		name string
		fn   func(x, y []float64) (float64, error)
	}{{"Pearson", Pearson}, {"Spearman", Spearman}} {
		_, err := f.fn([]float64{1, 2}, []float64{1, 2, 3})
		wantErr(t, err, "x", "y", "lengths")
		_, err = f.fn(nil, nil)
		wantErr(t, err, "x", "empty")
		_, err = f.fn([]float64{1, 2}, []float64{1, math.NaN()})
		wantErr(t, err, "y[1]", "NaN")
		_, err = f.fn([]float64{1}, []float64{2})
		wantErr(t, err, "at least 2")
		_, err = f.fn([]float64{2, 2, 2}, []float64{1, 2, 3})
		wantErr(t, err, "x is constant")
		_, err = f.fn([]float64{1, 2, 3}, []float64{0.1, 0.1, 0.1})
		wantErr(t, err, "y is constant")
	}
}
