package diag

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

func TestCalibrateRowHitsPerplexity(t *testing.T) {
	pts := gaussRows(11, 200, 5)
	for i := range pts { // a wide range of scales
		for j := range pts[i] {
			pts[i][j] *= 1000
		}
	}
	const perp = 20
	n := len(pts)
	for _, i := range []int{0, 57, 199} {
		row := make([]float64, n)
		for j := range row {
			row[j] = sqDist(pts[i], pts[j])
		}
		calibrateRow(row, i, math.Log(perp))
		var sum, H float64
		for j, p := range row {
			if j == i && p != 0 {
				t.Errorf("row %d: p_{i|i} = %v, want 0", i, p)
			}
			sum += p
			if p > 0 {
				H -= p * math.Log(p)
			}
		}
		if !near(sum, 1, 1e-12) || !near(math.Exp(H), perp, 1e-3) {
			t.Errorf("row %d: Σp = %v, perplexity %v; want 1 and %v", i, sum, math.Exp(H), perp)
		}
	}
}

func TestAffinitiesJoint(t *testing.T) {
	pts := gaussRows(12, 50, 3)
	n := len(pts)
	P := tsneAffinities(pts, 10, 0)
	var sum float64
	for i := 0; i < n; i++ {
		if P[i*n+i] != 0 {
			t.Fatalf("P[%d][%d] = %v, want 0", i, i, P[i*n+i])
		}
		for j := 0; j < n; j++ {
			if P[i*n+j] != P[j*n+i] {
				t.Fatalf("P not symmetric at (%d, %d)", i, j)
			}
			sum += P[i*n+j]
		}
	}
	if !near(sum, 1, 1e-12) {
		t.Errorf("ΣP = %v, want 1", sum)
	}
}

// randomJoint returns a symmetric P with zero diagonal summing to 1 and a
// random embedding, for gradient checks.
func randomJoint(seed uint64, n int) (P, Y []float64) {
	rng := rand.New(rand.NewPCG(seed, 3))
	P = make([]float64, n*n)
	var s float64
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			v := rng.Float64()
			P[i*n+j], P[j*n+i] = v, v
			s += 2 * v
		}
	}
	for k := range P {
		P[k] /= s
	}
	Y = make([]float64, 2*n)
	for k := range Y {
		Y[k] = rng.NormFloat64()
	}
	return P, Y
}

// TestGradientMatchesFiniteDifferences checks the analytic gradient
// against central differences of the objective it descends:
// -α Σ P_ij log w_ij + log Z, which is KL(P || Q) plus a constant for α = 1.
func TestGradientMatchesFiniteDifferences(t *testing.T) {
	const n = 7
	P, Y := randomJoint(13, n)
	objective := func(Y []float64, alpha float64) float64 {
		var Z, a float64
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				if i != j {
					w := tsneW(Y, i, j)
					Z += w
					a -= alpha * P[i*n+j] * math.Log(w)
				}
			}
		}
		return a + math.Log(Z)
	}
	for _, alpha := range []float64{1, 12} {
		g := newTSNEGrad(n, 0)
		grad := slices.Clone(g.gradient(P, Y, alpha))
		const h = 1e-6
		for k := range Y {
			yp, ym := slices.Clone(Y), slices.Clone(Y)
			yp[k] += h
			ym[k] -= h
			fd := (objective(yp, alpha) - objective(ym, alpha)) / (2 * h)
			if !near(grad[k], fd, 1e-7*(1+math.Abs(fd))) {
				t.Errorf("α=%v: ∂/∂Y[%d] = %.10f, finite difference %.10f", alpha, k, grad[k], fd)
			}
		}
		if alpha == 1 { // KL itself differs from the objective by Σ P log P
			var plogp float64
			for _, p := range P {
				if p > 0 {
					plogp += p * math.Log(p)
				}
			}
			if kl, obj := tsneKL(P, Y), objective(Y, 1); !near(kl, obj+plogp, 1e-12) {
				t.Errorf("KL = %v, objective + ΣPlogP = %v", kl, obj+plogp)
			}
		}
	}
}

func TestGradientIndependentOfWorkers(t *testing.T) {
	P, Y := randomJoint(14, 300)
	g1 := slices.Clone(newTSNEGrad(300, 1).gradient(P, Y, 1))
	g2 := newTSNEGrad(300, 2).gradient(P, Y, 1)
	if !slices.Equal(g1, g2) {
		t.Error("gradient differs between 1 and 2 workers")
	}
}

func TestTriangleBounds(t *testing.T) {
	for _, n := range []int{2, 3, 17, 1000} {
		b := triangleBounds(n, 16)
		if b[0] != 0 || b[len(b)-1] != n || !slices.IsSorted(b) {
			t.Fatalf("n=%d: bounds %v do not cover [0, n) in order", n, b)
		}
		total, most := n*(n-1)/2, 0
		for c := 0; c+1 < len(b); c++ {
			pairs := 0
			for i := b[c]; i < b[c+1]; i++ {
				pairs += n - 1 - i
			}
			most = max(most, pairs)
		}
		// No chunk holds more than its share plus one row.
		if most > total/(len(b)-1)+n {
			t.Errorf("n=%d: a chunk holds %d of %d pairs over %d chunks", n, most, total, len(b)-1)
		}
	}
}

// TestTSNESeparatesClusters embeds four well-separated Gaussian clusters in
// 20-D and checks that they stay apart in 2-D.
func TestTSNESeparatesClusters(t *testing.T) {
	const per, dim = 50, 20
	centres := make([][]float64, 4)
	for c := range centres {
		centres[c] = make([]float64, dim)
		centres[c][c] = 12 // pairwise distance ≈ 17 against within-cluster sd 1
	}
	pts, truth := blobs(15, centres, per, 1)
	opts := TSNEOptions{Perplexity: 15, Iterations: 500, Seed: 1}
	Y, err := TSNE(pts, opts)
	if err != nil {
		t.Fatal(err)
	}
	n := len(Y)
	// 1-nearest-neighbour label agreement in the plane.
	agree := 0
	for i := range Y {
		best, bestD := -1, math.Inf(1)
		for j := range Y {
			if d := sq2(Y[i], Y[j]); j != i && d < bestD {
				best, bestD = j, d
			}
		}
		if truth[best] == truth[i] {
			agree++
		}
	}
	if frac := float64(agree) / float64(n); frac < 0.95 {
		t.Errorf("1-NN label agreement = %.3f, want ≥ 0.95", frac)
	}
	// Centroid separation against within-cluster spread.
	var cen [4][2]float64
	for i, y := range Y {
		cen[truth[i]][0] += y[0] / per
		cen[truth[i]][1] += y[1] / per
	}
	var spread float64 // largest RMS radius
	for c := range cen {
		var s float64
		for i, y := range Y {
			if truth[i] == c {
				s += sq2(y, cen[c])
			}
		}
		spread = math.Max(spread, math.Sqrt(s/per))
	}
	minSep := math.Inf(1)
	for a := range cen {
		for b := a + 1; b < len(cen); b++ {
			minSep = math.Min(minSep, math.Sqrt(sq2(cen[a], cen[b])))
		}
	}
	if minSep < 3*spread {
		t.Errorf("closest cluster centroids %.2f apart, largest RMS radius %.2f: want ≥ 3×", minSep, spread)
	}
	t.Logf("1-NN agreement %d/%d, min centroid distance %.2f, max RMS radius %.2f", agree, n, minSep, spread)
}

func TestTSNEDeterministic(t *testing.T) {
	pts := gaussRows(16, 120, 8)
	opts := TSNEOptions{Perplexity: 10, Iterations: 300, Seed: 5}
	a, err := TSNE(pts, opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.Workers = 1
	b, _ := TSNE(pts, opts)
	if !slices.Equal(a, b) {
		t.Errorf("Workers=%d and Workers=1 differ", runtime.GOMAXPROCS(0))
	}
	opts.Seed = 6
	c, _ := TSNE(pts, opts)
	if slices.Equal(a, c) {
		t.Error("seeds 5 and 6 gave the same embedding (seed unused?)")
	}
	for _, y := range a {
		if math.IsNaN(y[0]) || math.IsNaN(y[1]) {
			t.Fatal("NaN in embedding")
		}
	}
}

func TestTSNEErrors(t *testing.T) {
	pts := gaussRows(17, 10, 3)
	_, err := TSNE(pts, TSNEOptions{}) // default perplexity 30 ≥ 10 points
	wantErr(t, err, "opts.Perplexity = 30", "10")
	_, err = TSNE(pts, TSNEOptions{Perplexity: -1})
	wantErr(t, err, "opts.Perplexity = -1")
	_, err = TSNE(pts, TSNEOptions{Perplexity: 3, Iterations: -5})
	wantErr(t, err, "opts.Iterations = -5")
	_, err = TSNE(pts, TSNEOptions{Perplexity: 3, LearningRate: math.NaN()})
	wantErr(t, err, "opts.LearningRate")
	_, err = TSNE(pts, TSNEOptions{Perplexity: 3, Workers: -2})
	wantErr(t, err, "opts.Workers = -2")
	_, err = TSNE(pts[:1], TSNEOptions{})
	wantErr(t, err, "at least 2 rows")
	pts[3][1] = math.NaN()
	_, err = TSNE(pts, TSNEOptions{Perplexity: 3})
	wantErr(t, err, "points[3][1]", "NaN")
}

func TestTSNEOptionsDefaults(t *testing.T) {
	o, err := TSNEOptions{}.resolve(2000)
	if err != nil {
		t.Fatal(err)
	}
	if o.Perplexity != 30 || o.Iterations != 1000 || o.EarlyExaggeration != 12 || o.ExaggerationIters != 250 || o.LearningRate != 50 {
		t.Errorf("defaults for n=2000: %+v", o)
	}
	o, _ = TSNEOptions{}.resolve(24000)
	if o.LearningRate != 500 {
		t.Errorf("auto learning rate for n=24000 = %v, want 24000/48 = 500", o.LearningRate)
	}
}

func sq2(a, b [2]float64) float64 {
	dx, dy := a[0]-b[0], a[1]-b[1]
	return dx*dx + dy*dy
}

// BenchmarkTSNE2000x128 times the default recipe (perplexity 30, 1000
// steps) on 2000 points of dimension 128 in 10 clusters. Run it with
//
//	GOEXPERIMENT=simd go test ./alphatoken/diag/ -run '^$' -bench TSNE2000 -benchtime 1x
func BenchmarkTSNE2000x128(b *testing.B) {
	const k, per, dim = 10, 200, 128
	centres := make([][]float64, k)
	for c := range centres {
		centres[c] = make([]float64, dim)
		centres[c][c] = 8
	}
	pts, _ := blobs(18, centres, per, 1)
	for b.Loop() {
		if _, err := TSNE(pts, TSNEOptions{Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
}
