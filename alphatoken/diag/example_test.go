package diag_test

import (
	"fmt"

	"github.com/alphatoken/alphatoken/alphatoken/diag"
)

// CKA compares two representations of the same examples. A rotation and a
// rescaling of the features leave it at 1; replacing a feature does not.
func ExampleLinearCKA() {
	X := [][]float64{{1, 0}, {0, 2}, {3, 1}, {2, 2}, {0, 0}}
	// Rotated by 90 degrees and scaled by 5: (a, b) -> (-5b, 5a).
	rotated := make([][]float64, len(X))
	for i, r := range X {
		rotated[i] = []float64{-5 * r[1], 5 * r[0]}
	}
	other := [][]float64{{1, 1}, {0, 0}, {3, 0}, {2, 1}, {0, 1}}
	same, _ := diag.LinearCKA(X, rotated)
	diff, _ := diag.LinearCKA(X, other)
	fmt.Printf("CKA(X, rotated X) = %.3f\n", same)
	fmt.Printf("CKA(X, other)     = %.3f\n", diff)
	// Output:
	// CKA(X, rotated X) = 1.000
	// CKA(X, other)     = 0.872
}

// Spearman correlates ranks, so a monotone relation scores 1 even when it
// is far from linear; tied values share their average rank.
func ExampleSpearman() {
	phi := []float64{0.1, 0.2, 0.4, 0.8, 1.6}
	oracle := []float64{1, 10, 100, 1000, 10000}
	s, _ := diag.Spearman(phi, oracle)
	p, _ := diag.Pearson(phi, oracle)
	fmt.Printf("Spearman %.3f, Pearson %.3f\n", s, p)

	tied, _ := diag.Spearman([]float64{1, 2, 2, 3}, []float64{1, 3, 2, 4})
	fmt.Printf("with ties: %.4f\n", tied)
	// Output:
	// Spearman 1.000, Pearson 0.934
	// with ties: 0.9487
}

// TopKOverlap asks whether two scores select the same tokens; a random
// selection would overlap k/n on average.
func ExampleTopKOverlap() {
	proxy := []float64{0.9, 0.1, 0.8, 0.3, 0.7, 0.2, 0.05, 0.6}
	oracle := []float64{1.0, 0.2, 0.3, 0.1, 0.9, 0.4, 0.0, 0.8}
	k := 4 // ρ = 0.5 of n = 8
	o, _ := diag.TopKOverlap(proxy, oracle, k)
	fmt.Printf("overlap %.2f, chance %.2f\n", o, float64(k)/float64(len(proxy)))

	curve, _ := diag.TopKOverlapCurve(proxy, oracle, []int{1, 2, 4, 8})
	fmt.Println(curve)
	// Output:
	// overlap 0.75, chance 0.50
	// [1 0.5 0.75 1]
}

// Cluster all tokens' hidden states, then ask how many clusters a method's
// selected tokens reach.
func ExampleKMeans() {
	hidden := [][]float64{
		{0, 0}, {0.1, 0}, {0, 0.1}, // a group near the origin
		{5, 5}, {5.1, 5}, // a group near (5, 5)
		{-5, 5}, {-5, 5.1}, // a group near (-5, 5)
	}
	labels, _, err := diag.KMeans(hidden, 3, 1, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("groups kept together:",
		labels[0] == labels[1] && labels[1] == labels[2] && labels[3] == labels[4] && labels[5] == labels[6])

	selected := []bool{true, false, true, false, false, true, false} // misses the (5, 5) group
	fmt.Printf("coverage %.3f\n", diag.Coverage(labels, selected, 3))
	// Output:
	// groups kept together: true
	// coverage 0.667
}

// The value-propagation diagnostic: pairs with sparse attention or a value
// close to the query's output are low-risk for the omitted score path.
func ExampleRiskShare() {
	pairs := []diag.PairStat{
		{A: 0.01, Dev: 3.0, Omitted: 0.01}, // sparse
		{A: 0.90, Dev: 0.1, Omitted: 0.02}, // saturated
		{A: 0.40, Dev: 2.5, Omitted: 0.60}, // at risk
		{A: 0.02, Dev: 2.0, Omitted: 0.01}, // sparse
	}
	a, d := diag.DefaultRiskThresholds(pairs) // 0.05 and 0.25 × median Dev (2.25)
	fmt.Printf("thresholds A ≤ %.2f or Dev ≤ %.4f\n", a, d)
	fmt.Printf("low-risk share %.2f, of omitted mass %.2f\n",
		diag.RiskShare(pairs, a, d), diag.OmittedShare(pairs, a, d))
	// Output:
	// thresholds A ≤ 0.05 or Dev ≤ 0.5625
	// low-risk share 0.75, of omitted mass 0.06
}

// Table cells report mean ± half-width over seeds; plots mark the Pareto
// front of two scores to be maximised.
func ExampleCI95() {
	overall := []float64{61.2, 62.0, 60.5} // three seeds
	m, s := diag.MeanStd(overall)
	fmt.Printf("%.2f ± %.2f (std %.2f, n = 3)\n", m, diag.CI95(overall), s)

	target := []float64{60, 62, 58, 61}
	retention := []float64{70, 65, 72, 64}
	fmt.Println("Pareto front:", diag.ParetoFront(target, retention))
	// Output:
	// 61.23 ± 1.86 (std 0.75, n = 3)
	// Pareto front: [2 0 1]
}
