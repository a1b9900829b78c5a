package diag

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// blobs returns len(centres)·per points drawn around each centre with
// standard deviation sd, and the index of each point's centre.
func blobs(seed uint64, centres [][]float64, per int, sd float64) ([][]float64, []int) {
	rng := rand.New(rand.NewPCG(seed, 2))
	var pts [][]float64
	var truth []int
	for c, m := range centres {
		for range per {
			p := make([]float64, len(m))
			for j := range p {
				p[j] = m[j] + sd*rng.NormFloat64()
			}
			pts = append(pts, p)
			truth = append(truth, c)
		}
	}
	return pts, truth
}

func TestKMeansExact(t *testing.T) {
	pts := [][]float64{{0, 0}, {0, 1}, {10, 10}, {10, 11}}
	labels, cent, err := KMeans(pts, 2, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if labels[0] != labels[1] || labels[2] != labels[3] || labels[0] == labels[2] {
		t.Fatalf("labels = %v, want {0,1} and {2,3} apart", labels)
	}
	if !slices.Equal(cent[labels[0]], []float64{0, 0.5}) || !slices.Equal(cent[labels[2]], []float64{10, 10.5}) {
		t.Errorf("centroids = %v, want (0, 0.5) and (10, 10.5)", cent)
	}
}

func TestKMeansBlobs(t *testing.T) {
	centres := [][]float64{{0, 0, 0}, {10, 0, 0}, {0, 10, 0}, {0, 0, 10}}
	pts, truth := blobs(3, centres, 40, 0.5)
	for seed := int64(0); seed < 5; seed++ {
		labels, cent, err := KMeans(pts, 4, seed, 100)
		if err != nil {
			t.Fatal(err)
		}
		// Each true blob gets one label, and the four labels differ.
		blobLabel := map[int]int{}
		for i, l := range labels {
			if prev, ok := blobLabel[truth[i]]; ok && prev != l {
				t.Fatalf("seed %d: blob %d split across clusters %d and %d", seed, truth[i], prev, l)
			}
			blobLabel[truth[i]] = l
		}
		seen := map[int]bool{}
		for c, l := range blobLabel {
			if seen[l] {
				t.Fatalf("seed %d: two blobs share cluster %d", seed, l)
			}
			seen[l] = true
			if d := math.Sqrt(sqDist(cent[l], centres[c])); d > 0.3 {
				t.Errorf("seed %d: centroid %v is %.3f from centre %v", seed, cent[l], d, centres[c])
			}
		}
	}
}

func TestKMeansDeterministic(t *testing.T) {
	pts := gaussRows(9, 300, 4)
	l1, c1, _ := KMeans(pts, 7, 42, 0)
	l2, c2, _ := KMeans(pts, 7, 42, 0)
	if !slices.Equal(l1, l2) || !slices.EqualFunc(c1, c2, slices.Equal[[]float64]) {
		t.Error("same seed gave different results")
	}
	l3, _, _ := KMeans(pts, 7, 43, 0)
	if slices.Equal(l1, l3) {
		t.Error("another seed gave identical labels on unstructured data (seed unused?)")
	}
}

func TestKMeansEdgeCases(t *testing.T) {
	pts := [][]float64{{1, 2}, {3, 4}, {5, 9}}
	// k = n: every point is its own cluster and centroid.
	labels, cent, err := KMeans(pts, 3, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range labels {
		if !slices.Equal(cent[l], pts[i]) {
			t.Errorf("k=n: point %v has centroid %v", pts[i], cent[l])
		}
	}
	if labels[0] == labels[1] || labels[1] == labels[2] || labels[0] == labels[2] {
		t.Errorf("k=n: labels %v not distinct", labels)
	}
	// k = 1: the centroid is the mean.
	_, cent, _ = KMeans(pts, 1, 0, 0)
	if !slices.Equal(cent[0], []float64{3, 5}) {
		t.Errorf("k=1: centroid %v, want the mean (3, 5)", cent[0])
	}
	// Fewer distinct points than k: no error, labels in range.
	same := [][]float64{{1}, {1}, {1}, {2}}
	labels, _, err = KMeans(same, 3, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range labels {
		if l < 0 || l >= 3 {
			t.Errorf("label %d outside [0, 3)", l)
		}
	}
	if labels[0] != labels[1] || labels[1] != labels[2] || labels[2] == labels[3] {
		t.Errorf("duplicates: labels %v, want {0,1,2} together and 3 apart", labels)
	}
}

func TestUpdateCentroidsReseedsEmptyCluster(t *testing.T) {
	pts := [][]float64{{0}, {1}, {9}}
	labels := []int{0, 0, 0}
	dist := []float64{16, 9, 25} // squared distances to centroid 0 at 4
	cent := [][]float64{{4}, {100}}
	updateCentroids(pts, labels, dist, cent, 1)
	if !slices.Equal(labels, []int{0, 0, 1}) {
		t.Errorf("labels = %v, want the farthest point (9) moved to the empty cluster", labels)
	}
	if cent[0][0] != 0.5 || cent[1][0] != 9 {
		t.Errorf("centroids = %v, want [0.5] and [9]", cent)
	}
}

func TestKMeansErrors(t *testing.T) {
	pts := [][]float64{{1}, {2}}
	_, _, err := KMeans(pts, 0, 0, 0)
	wantErr(t, err, "k = 0", "[1, 2]")
	_, _, err = KMeans(pts, 3, 0, 0)
	wantErr(t, err, "k = 3")
	_, _, err = KMeans(pts, 1, 0, -1)
	wantErr(t, err, "maxIter = -1")
	_, _, err = KMeans(nil, 1, 0, 0)
	wantErr(t, err, "points has no rows")
	_, _, err = KMeans([][]float64{{1}, {math.Inf(-1)}}, 1, 0, 0)
	wantErr(t, err, "points[1][0]")
}

func TestCoverage(t *testing.T) {
	labels := []int{0, 0, 1, 1, 2}
	cases := []struct {
		sel  []bool
		k    int
		want float64
	}{
		{[]bool{true, false, false, false, true}, 4, 0.5}, // clusters 0 and 2 of 4
		{[]bool{true, true, false, false, false}, 3, 1.0 / 3},
		{[]bool{false, false, false, false, false}, 3, 0},
		{[]bool{true, true, true, true, true}, 3, 1},
	}
	for _, c := range cases {
		if got := Coverage(labels, c.sel, c.k); !near(got, c.want, 1e-15) {
			t.Errorf("Coverage(%v, k=%d) = %v, want %v", c.sel, c.k, got, c.want)
		}
	}
	bad := []float64{
		Coverage(labels, []bool{true}, 3),
		Coverage(labels, make([]bool, 5), 0),
		Coverage(labels, make([]bool, 5), 2), // label 2 outside [0, 2)
	}
	for i, v := range bad {
		if !math.IsNaN(v) {
			t.Errorf("bad input %d: Coverage = %v, want NaN", i, v)
		}
	}
}
