package ablations

import "sort"

// Statistics shared by the SFT and DPO tables.

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
