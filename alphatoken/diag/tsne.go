package diag

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Exact t-SNE for the token-coverage plot (SPEC §8): response-token hidden
// states, drawn in 2-D, selected vs rejected.

// TSNEOptions configures TSNE. The zero value gives the defaults, which
// follow van der Maaten's reference implementation (bhtsne, exact mode):
// every zero field takes the default named in its comment.
type TSNEOptions struct {
	// Perplexity is the effective number of neighbours each point's
	// Gaussian is calibrated to; 0 means 30. Must be below the number of
	// points.
	Perplexity float64

	// Iterations is the number of gradient steps; 0 means 1000.
	Iterations int

	// LearningRate is the step size η; 0 means max(n / (4·EarlyExaggeration), 50)
	// (Belkina et al., 2019, scikit-learn's "auto"), which for n ≤ 2400
	// points equals bhtsne's η = 200 on a gradient without the factor 4.
	LearningRate float64

	// EarlyExaggeration multiplies P during the first ExaggerationIters
	// steps; 0 means 12. Set it to 1 to switch exaggeration off.
	EarlyExaggeration float64

	// ExaggerationIters is the length of the early phase (exaggerated P,
	// momentum 0.5); later steps use P and momentum 0.8; 0 means 250.
	ExaggerationIters int

	// Seed fixes the initial embedding, hence the whole result.
	Seed int64

	// Workers is the number of goroutines; 0 means GOMAXPROCS. The work is
	// split in a fixed way, so Workers changes the speed, not the result.
	Workers int
}

// The fixed parts of the recipe (bhtsne).
const (
	tsneInitStd        = 1e-4 // standard deviation of the initial Y
	tsneEntropyTol     = 1e-5 // |H - log(perplexity)| accepted, in nats
	tsneSearchSteps    = 200  // bisection steps per point, at most
	tsneMomentumEarly  = 0.5
	tsneMomentumLate   = 0.8
	tsneGainUp         = 0.2        // gain += 0.2 when the gradient flips sign
	tsneGainDown       = 0.8        // gain *= 0.8 when it keeps its sign
	tsneMinGain        = 0.01       // gains never fall below this
	tsneChunks         = 16         // fixed work split: results do not depend on Workers
	tsneStream         = 0x74736e65 // "tsne", second word of the PCG state
	defaultPerplexity  = 30
	defaultTSNEIters   = 1000
	defaultExaggerate  = 12
	defaultExaggerIter = 250
)

// DefaultTSNEOptions returns the options TSNE uses for the zero value, with
// every default filled in (LearningRate stays 0: it depends on n).
func DefaultTSNEOptions() TSNEOptions {
	return TSNEOptions{
		Perplexity:        defaultPerplexity,
		Iterations:        defaultTSNEIters,
		EarlyExaggeration: defaultExaggerate,
		ExaggerationIters: defaultExaggerIter,
	}
}

// TSNE embeds points (n rows of width d) in the plane by exact t-SNE
// (van der Maaten & Hinton, 2008) and returns one (x, y) per point.
//
//  1. Affinities. For each point i, a bisection on the precision β_i finds
//     the Gaussian p_{j|i} ∝ exp(-β_i ||x_i - x_j||²) whose perplexity
//     exp(H(p_{·|i})) equals opts.Perplexity. They are symmetrised into the
//     joint P_ij = (p_{j|i} + p_{i|j}) / 2n.
//
//  2. Embedding. Y starts as N(0, 1e-4²) draws from a PCG generator seeded
//     by opts.Seed. Gradient descent minimises KL(P || Q), with the
//     Student-t similarities Q_ij = (1 + ||y_i - y_j||²)^-1 / Z, whose
//     gradient is
//
//     ∂KL/∂y_i = 4 Σ_j (α P_ij - Q_ij) (1 + ||y_i - y_j||²)^-1 (y_i - y_j),
//
//     α being the early exaggeration while it lasts and 1 after. Each step
//     uses momentum and per-coordinate gains (Jacobs, 1988): a gain grows
//     by 0.2 when the gradient's sign opposes the last update and shrinks
//     by ×0.8 otherwise, never below 0.01. Y is re-centred every step.
//
// Cost: O(n²·d) for the affinities, O(n²) per gradient step (both halved
// by symmetry and run on opts.Workers goroutines), and O(n²) memory for P
// (8n² bytes: 32 MB for 2,000 points, 800 MB for 10,000). Subsample beyond
// a few thousand points. The result depends only on points and opts,
// neither on Workers nor on the machine.
func TSNE(points [][]float64, opts TSNEOptions) ([][2]float64, error) {
	if _, err := checkRows("points", points); err != nil {
		return nil, err
	}
	n := len(points)
	if n < 2 {
		return nil, fmt.Errorf("diag: points needs at least 2 rows, has %d", n)
	}
	o, err := opts.resolve(n)
	if err != nil {
		return nil, err
	}
	P := tsneAffinities(points, o.Perplexity, o.Workers)
	Y := tsneOptimise(P, n, o)
	out := make([][2]float64, n)
	for i := range out {
		out[i] = [2]float64{Y[2*i], Y[2*i+1]}
	}
	return out, nil
}

// resolve fills in the defaults and checks the options for n points.
func (o TSNEOptions) resolve(n int) (TSNEOptions, error) {
	def := DefaultTSNEOptions()
	switch {
	case math.IsNaN(o.Perplexity) || o.Perplexity < 0:
		return o, fmt.Errorf("diag: opts.Perplexity = %v is negative or NaN", o.Perplexity)
	case o.Iterations < 0:
		return o, fmt.Errorf("diag: opts.Iterations = %d is negative", o.Iterations)
	case math.IsNaN(o.LearningRate) || o.LearningRate < 0 || math.IsInf(o.LearningRate, 0):
		return o, fmt.Errorf("diag: opts.LearningRate = %v is not a finite non-negative number", o.LearningRate)
	case math.IsNaN(o.EarlyExaggeration) || o.EarlyExaggeration < 0 || math.IsInf(o.EarlyExaggeration, 0):
		return o, fmt.Errorf("diag: opts.EarlyExaggeration = %v is not a finite non-negative number", o.EarlyExaggeration)
	case o.ExaggerationIters < 0:
		return o, fmt.Errorf("diag: opts.ExaggerationIters = %d is negative", o.ExaggerationIters)
	case o.Workers < 0:
		return o, fmt.Errorf("diag: opts.Workers = %d is negative", o.Workers)
	}
	if o.Perplexity == 0 {
		o.Perplexity = def.Perplexity
	}
	if o.Perplexity >= float64(n) {
		return o, fmt.Errorf("diag: opts.Perplexity = %v must be less than the number of points (%d)", o.Perplexity, n)
	}
	if o.Iterations == 0 {
		o.Iterations = def.Iterations
	}
	if o.EarlyExaggeration == 0 {
		o.EarlyExaggeration = def.EarlyExaggeration
	}
	if o.ExaggerationIters == 0 {
		o.ExaggerationIters = def.ExaggerationIters
	}
	if o.LearningRate == 0 {
		o.LearningRate = math.Max(float64(n)/(4*o.EarlyExaggeration), 50)
	}
	return o, nil
}

// tsneAffinities returns the joint probabilities P as a dense n×n
// row-major slice with zero diagonal, symmetric, summing to 1.
func tsneAffinities(points [][]float64, perplexity float64, workers int) []float64 {
	n := len(points)
	P := make([]float64, n*n)
	bounds := triangleBounds(n, tsneChunks)
	// Squared distances, each pair computed once and mirrored.
	parallelRanges(bounds, workers, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			for j := i + 1; j < n; j++ {
				d := sqDist(points[i], points[j])
				P[i*n+j], P[j*n+i] = d, d
			}
		}
	})
	// Conditional p_{j|i}, row by row in place.
	logPerp := math.Log(perplexity)
	parallelRanges(evenBounds(n, tsneChunks), workers, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			calibrateRow(P[i*n:(i+1)*n], i, logPerp)
		}
	})
	// P_ij = (p_{j|i} + p_{i|j}) / 2n.
	scale := 1 / float64(2*n)
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			v := (P[i*n+j] + P[j*n+i]) * scale
			P[i*n+j], P[j*n+i] = v, v
		}
	}
	return P
}

// calibrateRow replaces row (the squared distances from point i, row[i]
// ignored) by p_{·|i}, the Gaussian of perplexity exp(logPerp). The
// distances are shifted by their minimum before exponentiating, which
// leaves p unchanged and keeps exp from underflowing on large scales:
//
//	H = log Σ_j e_j + β Σ_j (d_j - d_min) e_j / Σ_j e_j,   e_j = exp(-β (d_j - d_min)).
func calibrateRow(row []float64, i int, logPerp float64) {
	n := len(row)
	dist := make([]float64, n)
	copy(dist, row)
	dmin, dmean := math.Inf(1), 0.0
	for j, d := range dist {
		if j != i {
			dmin = math.Min(dmin, d)
		}
	}
	for j := range dist {
		if j != i {
			dist[j] -= dmin
			dmean += dist[j]
		}
	}
	dmean /= float64(n - 1)
	beta := 1.0
	if dmean > 0 {
		beta = 1 / dmean // a start on the data's scale saves steps
	}
	lo, hi := 0.0, math.Inf(1)
	for step := 0; step < tsneSearchSteps; step++ {
		var sum, dot float64
		for j, d := range dist {
			if j == i {
				row[j] = 0
				continue
			}
			e := math.Exp(-beta * d)
			row[j] = e
			sum += e
			dot += d * e
		}
		H := math.Log(sum) + beta*dot/sum
		diff := H - logPerp
		if math.Abs(diff) < tsneEntropyTol {
			break
		}
		if diff > 0 { // too flat: sharpen
			lo = beta
			if math.IsInf(hi, 1) {
				beta *= 2
			} else {
				beta = (beta + hi) / 2
			}
		} else { // too peaked: widen
			hi = beta
			beta = (beta + lo) / 2
		}
	}
	var sum float64
	for _, e := range row {
		sum += e
	}
	for j := range row {
		row[j] /= sum
	}
}

// tsneOptimise runs the gradient descent on P and returns Y as n
// interleaved (x, y) pairs.
func tsneOptimise(P []float64, n int, o TSNEOptions) []float64 {
	rng := rand.New(rand.NewPCG(uint64(o.Seed), tsneStream))
	Y := make([]float64, 2*n)
	for k := range Y {
		Y[k] = tsneInitStd * rng.NormFloat64()
	}
	g := newTSNEGrad(n, o.Workers)
	update := make([]float64, 2*n)
	gains := make([]float64, 2*n)
	for k := range gains {
		gains[k] = 1
	}
	for it := 0; it < o.Iterations; it++ {
		alpha, momentum := 1.0, tsneMomentumLate
		if it < o.ExaggerationIters {
			alpha, momentum = o.EarlyExaggeration, tsneMomentumEarly
		}
		grad := g.gradient(P, Y, alpha)
		for k, gk := range grad {
			if (gk > 0) != (update[k] > 0) {
				gains[k] += tsneGainUp
			} else {
				gains[k] *= tsneGainDown
			}
			gains[k] = math.Max(gains[k], tsneMinGain)
			update[k] = momentum*update[k] - o.LearningRate*gains[k]*gk
			Y[k] += update[k]
		}
		centre2D(Y)
	}
	return Y
}

// tsneGrad holds the buffers of the exact gradient. Chunk c of the pairs
// (i < j) accumulates, per point, the attractive sum Σ P_ij w_ij (y_i - y_j)
// and the repulsive sum Σ w_ij² (y_i - y_j), w_ij = (1 + ||y_i - y_j||²)^-1,
// into parts[c] as [ax, ay, rx, ry] per point, and Σ w_ij into z[c]. The
// chunks are then added in order, so the result does not depend on how
// many goroutines ran them.
type tsneGrad struct {
	n       int
	workers int
	bounds  []int
	parts   [][]float64 // [chunk][4n]
	z       []float64   // [chunk]
	grad    []float64   // [2n]
}

func newTSNEGrad(n, workers int) *tsneGrad {
	b := triangleBounds(n, tsneChunks)
	g := &tsneGrad{n: n, workers: workers, bounds: b, z: make([]float64, len(b)-1), grad: make([]float64, 2*n)}
	g.parts = make([][]float64, len(b)-1)
	for c := range g.parts {
		g.parts[c] = make([]float64, 4*n)
	}
	return g
}

// gradient returns ∂KL/∂Y with P exaggerated by alpha, as 2n interleaved
// values (overwritten by the next call). Since Q_ij = w_ij / Z,
//
//	∂/∂y_i = 4 (α Σ_j P_ij w_ij (y_i - y_j) - (1/Z) Σ_j w_ij² (y_i - y_j)),
//
// which needs a single pass over the pairs.
func (g *tsneGrad) gradient(P, Y []float64, alpha float64) []float64 {
	n := g.n
	parallelRanges(g.bounds, g.workers, func(c, lo, hi int) {
		acc := g.parts[c]
		clear(acc)
		var z float64
		for i := lo; i < hi; i++ {
			yi0, yi1 := Y[2*i], Y[2*i+1]
			prow := P[i*n+i+1 : i*n+n]
			yr := Y[2*(i+1) : 2*n]
			ar := acc[4*(i+1) : 4*n]
			var ax, ay, rx, ry, zi float64
			for k, p := range prow {
				yj := yr[2*k : 2*k+2 : 2*k+2]
				dx, dy := yi0-yj[0], yi1-yj[1]
				w := 1 / (1 + dx*dx + dy*dy)
				zi += w
				a, r := p*w, w*w
				ax += a * dx
				ay += a * dy
				rx += r * dx
				ry += r * dy
				b := ar[4*k : 4*k+4 : 4*k+4]
				b[0] -= a * dx
				b[1] -= a * dy
				b[2] -= r * dx
				b[3] -= r * dy
			}
			acc[4*i] += ax
			acc[4*i+1] += ay
			acc[4*i+2] += rx
			acc[4*i+3] += ry
			z += 2 * zi // w_ij = w_ji
		}
		g.z[c] = z
	})
	var Z float64
	for _, z := range g.z {
		Z += z
	}
	total := g.parts[0]
	for _, part := range g.parts[1:] {
		for k, v := range part {
			total[k] += v
		}
	}
	for i := 0; i < n; i++ {
		g.grad[2*i] = 4 * (alpha*total[4*i] - total[4*i+2]/Z)
		g.grad[2*i+1] = 4 * (alpha*total[4*i+1] - total[4*i+3]/Z)
	}
	return g.grad
}

// tsneKL returns KL(P || Q) = Σ_{i≠j} P_ij log(P_ij / Q_ij) for the
// embedding Y (2n interleaved values); terms with P_ij = 0 count 0.
func tsneKL(P, Y []float64) float64 {
	n := len(Y) / 2
	var Z float64
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			if i != j {
				Z += tsneW(Y, i, j)
			}
		}
	}
	var kl float64
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			if p := P[i*n+j]; i != j && p > 0 {
				kl += p * math.Log(p*Z/tsneW(Y, i, j))
			}
		}
	}
	return kl
}

// tsneW is the Student-t kernel (1 + ||y_i - y_j||²)^-1.
func tsneW(Y []float64, i, j int) float64 {
	dx, dy := Y[2*i]-Y[2*j], Y[2*i+1]-Y[2*j+1]
	return 1 / (1 + dx*dx + dy*dy)
}

// centre2D subtracts the mean from n interleaved (x, y) pairs.
func centre2D(Y []float64) {
	n := len(Y) / 2
	var mx, my float64
	for i := 0; i < n; i++ {
		mx += Y[2*i]
		my += Y[2*i+1]
	}
	mx /= float64(n)
	my /= float64(n)
	for i := 0; i < n; i++ {
		Y[2*i] -= mx
		Y[2*i+1] -= my
	}
}

// triangleBounds splits rows [0, n) into at most chunks contiguous ranges
// holding near-equal numbers of pairs (i, j > i); row i has n-1-i of them.
func triangleBounds(n, chunks int) []int {
	chunks = max(1, min(chunks, n))
	total := n * (n - 1) / 2
	b := []int{0}
	done := 0
	for i := 0; i < n; i++ {
		done += n - 1 - i
		c := len(b) // the chunk being filled, 1-based
		if c < chunks && done*chunks >= c*total {
			b = append(b, i+1)
		}
	}
	if b[len(b)-1] != n {
		b = append(b, n)
	}
	return b
}
