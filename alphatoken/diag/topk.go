package diag

import (
	"fmt"
	"sort"
)

// Top-k overlap for the Fisher-proxy fidelity table (SPEC §8): do Φ_prx and
// the oracle values select the same tokens at budget k = ρN?

// TopKOverlap returns |topk(a) ∩ topk(b)| / k, where topk(v) is the set of
// indices of the k largest values of v, ties broken by index (the earlier
// index ranks higher, as in the SFT mask of SPEC §6). The result is in
// [0, 1]: 1 when both select the same k indices.
//
// Chance level: if topk(b) were a uniformly random k-subset of the n
// indices, the expected overlap would be k/n (hypergeometric mean k·k/n,
// divided by k). With k = ρN that is ρ, the random expectation of SPEC §8.
//
// a and b must have the same length n, hold no NaN or infinity, and
// 1 ≤ k ≤ n. It costs O(n log n).
func TopKOverlap(a, b []float64, k int) (float64, error) {
	curve, err := TopKOverlapCurve(a, b, []int{k})
	if err != nil {
		return 0, err
	}
	return curve[0], nil
}

// TopKOverlapCurve returns TopKOverlap(a, b, k) for every k in ks, in the
// order given, sorting a and b only once: O(n log n + Σ k).
func TopKOverlapCurve(a, b []float64, ks []int) ([]float64, error) {
	if err := checkPair("a", a, "b", b); err != nil {
		return nil, err
	}
	n := len(a)
	if len(ks) == 0 {
		return nil, fmt.Errorf("diag: ks is empty")
	}
	for i, k := range ks {
		if k < 1 || k > n {
			return nil, fmt.Errorf("diag: ks[%d] = %d is outside [1, %d]", i, k, n)
		}
	}
	orderA := descendingOrder(a)
	// rankB[i] is the 0-based position of index i in b's descending order,
	// so i ∈ topk(b) exactly when rankB[i] < k.
	rankB := make([]int, n)
	for pos, i := range descendingOrder(b) {
		rankB[i] = pos
	}
	out := make([]float64, len(ks))
	for j, k := range ks {
		hits := 0
		for _, i := range orderA[:k] {
			if rankB[i] < k {
				hits++
			}
		}
		out[j] = float64(hits) / float64(k)
	}
	return out, nil
}

// descendingOrder returns the indices of v ordered by value, largest
// first, equal values in index order.
func descendingOrder(v []float64) []int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(x, y int) bool { return v[idx[x]] > v[idx[y]] })
	return idx
}
