package diag

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// k-means and cluster coverage for the token-coverage number (SPEC §8):
// cluster the hidden states of all response tokens, then ask how many of
// the clusters the selected tokens reach.

// DefaultKMeansMaxIter is the number of Lloyd steps KMeans allows when
// maxIter is 0.
const DefaultKMeansMaxIter = 300

// kmeansStream is the second word of the PCG state; the first is the seed.
const kmeansStream = 0x6b6d65616e73 // "kmeans"

// KMeans partitions points (n rows of width d) into k clusters by Lloyd's
// algorithm, minimising Σ_i ||x_i - μ_{label_i}||².
//
//   - Initialisation is k-means++ (Arthur & Vassilvitskii, 2007): the first
//     centroid is a uniformly drawn point, each next one a point drawn with
//     probability proportional to its squared distance to the nearest
//     centroid so far. The draws come from a PCG generator seeded by seed,
//     so a seed fixes the result.
//   - Each Lloyd step assigns every point to its nearest centroid (ties to
//     the lower cluster index), then moves each centroid to the mean of its
//     points. A cluster left empty is re-seeded with the point farthest from
//     its own centroid (taken from a cluster of two or more points).
//   - It stops when an assignment changes no label, or after maxIter steps
//     (maxIter = 0 means DefaultKMeansMaxIter); the returned labels are
//     always the nearest-centroid assignment for the returned centroids.
//
// labels[i] ∈ [0, k) is the cluster of points[i]; centroids is k×d. If the
// points have fewer than k distinct values some clusters stay empty.
// Cost: O(n·k·d) per step and for the initialisation; the assignment runs
// in parallel on GOMAXPROCS goroutines without changing the result.
func KMeans(points [][]float64, k int, seed int64, maxIter int) (labels []int, centroids [][]float64, err error) {
	d, err := checkRows("points", points)
	if err != nil {
		return nil, nil, err
	}
	n := len(points)
	if k < 1 || k > n {
		return nil, nil, fmt.Errorf("diag: k = %d is outside [1, %d] (the number of points)", k, n)
	}
	if maxIter < 0 {
		return nil, nil, fmt.Errorf("diag: maxIter = %d is negative", maxIter)
	}
	if maxIter == 0 {
		maxIter = DefaultKMeansMaxIter
	}
	rng := rand.New(rand.NewPCG(uint64(seed), kmeansStream))
	centroids = kmeansPlusPlus(points, k, rng)
	labels = make([]int, n)
	for i := range labels {
		labels[i] = -1
	}
	dist := make([]float64, n) // squared distance to the assigned centroid
	bounds := evenBounds(n, 16)
	for step := 0; ; step++ {
		if assignNearest(points, centroids, labels, dist, bounds) == 0 || step == maxIter {
			break
		}
		updateCentroids(points, labels, dist, centroids, d)
	}
	return labels, centroids, nil
}

// kmeansPlusPlus draws k initial centroids (copies of points).
func kmeansPlusPlus(points [][]float64, k int, rng *rand.Rand) [][]float64 {
	n := len(points)
	cent := make([][]float64, 0, k)
	cent = append(cent, clone(points[rng.IntN(n)]))
	minD := make([]float64, n)
	for i, p := range points {
		minD[i] = sqDist(p, cent[0])
	}
	for len(cent) < k {
		var total float64
		for _, v := range minD {
			total += v
		}
		pick := -1
		if total > 0 {
			r := rng.Float64() * total
			var cum float64
			for i, v := range minD {
				if v == 0 {
					continue
				}
				pick = i // the last positive weight absorbs rounding
				cum += v
				if cum > r {
					break
				}
			}
		} else {
			pick = rng.IntN(n) // every point coincides with a centroid
		}
		c := clone(points[pick])
		cent = append(cent, c)
		for i, p := range points {
			minD[i] = math.Min(minD[i], sqDist(p, c))
		}
	}
	return cent
}

// assignNearest sets labels and dist to each point's nearest centroid and
// returns how many labels changed.
func assignNearest(points, cent [][]float64, labels []int, dist []float64, bounds []int) int {
	changed := make([]int, len(bounds)-1)
	parallelRanges(bounds, 0, func(c, lo, hi int) {
		for i := lo; i < hi; i++ {
			best, bestD := 0, math.Inf(1)
			for j, m := range cent {
				if dd := sqDist(points[i], m); dd < bestD {
					best, bestD = j, dd
				}
			}
			if labels[i] != best {
				labels[i] = best
				changed[c]++
			}
			dist[i] = bestD
		}
	})
	total := 0
	for _, c := range changed {
		total += c
	}
	return total
}

// updateCentroids moves each centroid to the mean of its points, first
// re-seeding empty clusters with far-away points.
func updateCentroids(points [][]float64, labels []int, dist []float64, cent [][]float64, d int) {
	k := len(cent)
	count := make([]int, k)
	for _, l := range labels {
		count[l]++
	}
	for c := 0; c < k; c++ {
		if count[c] > 0 {
			continue
		}
		far := -1
		for i, l := range labels {
			if count[l] > 1 && dist[i] > 0 && (far < 0 || dist[i] > dist[far]) {
				far = i
			}
		}
		if far < 0 {
			continue // every point sits on a centroid: nothing to split
		}
		count[labels[far]]--
		labels[far], dist[far] = c, 0
		count[c]++
	}
	for c := 0; c < k; c++ {
		if count[c] == 0 {
			continue // keep the old centroid
		}
		clear(cent[c])
	}
	for i, p := range points {
		m := cent[labels[i]]
		for j := 0; j < d; j++ {
			m[j] += p[j]
		}
	}
	for c := 0; c < k; c++ {
		if count[c] == 0 {
			continue
		}
		inv := 1 / float64(count[c])
		for j := range cent[c] {
			cent[c][j] *= inv
		}
	}
}

// Coverage returns the share of the k clusters that hold at least one
// selected point: |{labels[i] : selected[i]}| / k, in [0, 1]. With labels
// from KMeans over all response tokens and selected the token mask of a
// method, this is SPEC §8's token coverage. Empty clusters count in k (they
// can never be reached). It returns NaN when k < 1, when labels and
// selected differ in length, or when a label lies outside [0, k).
func Coverage(labels []int, selected []bool, k int) float64 {
	if k < 1 || len(labels) != len(selected) {
		return math.NaN()
	}
	reached := make([]bool, k)
	hit := 0
	for i, l := range labels {
		if l < 0 || l >= k {
			return math.NaN()
		}
		if selected[i] && !reached[l] {
			reached[l] = true
			hit++
		}
	}
	return float64(hit) / float64(k)
}

func sqDist(a, b []float64) float64 {
	b = b[:len(a)]
	var s float64
	for i, x := range a {
		t := x - b[i]
		s += t * t
	}
	return s
}

func clone(xs []float64) []float64 {
	return append([]float64(nil), xs...)
}
