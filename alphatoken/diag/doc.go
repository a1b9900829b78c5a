// Package diag computes the diagnostics of SPEC §8 from plain float64 data:
// the correlations, overlaps, representation similarities, clusterings,
// embeddings and summaries that the AlphaToken tables and plots show. It
// knows nothing about models, graphs or tensors: callers copy values out of
// their tensors first, so every function here can be checked by hand on a
// few numbers.
//
// # Data
//
// A vector is a []float64. A set of points (hidden states, representations)
// is a [][]float64 of rows, one row per example, all rows of equal width.
// Inputs are never modified, and results never alias them.
//
// # What each function computes
//
// Fisher-proxy fidelity (Φ_prx against oracle values):
//
//	Pearson(x, y)          r = Σ dx·dy / sqrt(Σ dx² Σ dy²), d = deviation from the mean     O(n)
//	Spearman(x, y)         Pearson of the ranks; ties share the average rank              O(n log n)
//	TopKOverlap(a, b, k)   |topk(a) ∩ topk(b)| / k, ties to the earlier index; chance k/n O(n log n)
//	TopKOverlapCurve       the same for several k, sorting once                           O(n log n + Σk)
//
// Representation stability (reference vs fine-tuned hidden states):
//
//	LinearCKA(X, Y)        ||Yc^T Xc||_F² / (||Xc^T Xc||_F ||Yc^T Yc||_F), columns centred
//	                       O(n·min(pq + p² + q², n(p + q))): feature or Gram form, the cheaper
//
// Token coverage (response-token hidden states, selected vs rejected):
//
//	KMeans(pts, k, seed, maxIter)   Lloyd's algorithm from a k-means++ start     O(n·k·d) per step
//	Coverage(labels, selected, k)   share of the k clusters with a selected point O(n)
//	TSNE(pts, opts)                 exact t-SNE to 2-D (perplexity 30, 1000 steps) O(n²·d + steps·n²), 8n² bytes
//
// Value propagation (SPEC §4, the omitted score path, per (query, key) pair):
//
//	RiskShare(pairs, aT, dT)        share with A ≤ aT (sparse) or Dev ≤ dT (saturated)  O(n)
//	OmittedShare(pairs, aT, dT)     share of Σ|Omitted| carried by those pairs           O(n)
//	DefaultRiskThresholds(pairs)    aT = 0.05, dT = 0.25 × median Dev                    O(n log n)
//
// Table cells and plots:
//
//	MeanStd(xs)            mean and sample (n−1) standard deviation          O(n)
//	CI95(xs)               t_{0.975,n−1} · s/√n, the 95% half-width            O(n)
//	ParetoFront(xs, ys)    undominated points, both maximised, sorted by x    O(n log n)
//
// # Errors and NaN
//
// Functions that can fail on their data return an error that starts with
// "diag: " and names the argument: "diag: y[3] is NaN", "diag: x and y have
// different lengths (5 and 4)", "diag: opts.Perplexity = 30 must be less
// than the number of points (10)". They never panic on user data. Inputs
// with NaN or ±Inf are rejected, as are undefined quantities (a correlation
// with a constant vector, CKA of a representation without variation).
//
// The small summary functions whose natural type is a plain number
// (Coverage, RiskShare, OmittedShare, MeanStd, CI95) return NaN instead of
// an error when the number does not exist: no pairs, one seed, mismatched
// lengths. A NaN in a table cell is visible; a silent 0 would not be.
//
// # Determinism
//
// KMeans and TSNE draw their random numbers from a PCG generator seeded by
// the caller (math/rand/v2), so a seed fixes the result. Both run on
// several goroutines, but the work is cut into a fixed number of pieces
// whose results are added in a fixed order: the output is bit-for-bit the
// same whatever GOMAXPROCS or TSNEOptions.Workers is.
//
// # Libraries
//
// Pearson, MeanStd and CI95 use gonum's stat and stat/distuv (the t
// quantile is exact, not a table), LinearCKA uses gonum's mat for its
// matrix products. t-SNE is implemented here: the Go t-SNE module in the
// proxy (github.com/danaugrs/go-tsne, 2020) builds but draws from the
// global math/rand, so it cannot be seeded, never resets its gradient
// between steps (its embedding diverges), and has no early exaggeration,
// momentum or gains. This package's TSNE follows van der Maaten's
// reference recipe and is checked against finite differences of its own
// objective.
//
// # Performance
//
// TSNE on 2,000 points of dimension 128 with the default options takes 4
// to 8 s on two shared cores (BenchmarkTSNE2000x128), 5,000 points about
// 37 s. Its time and memory grow as n², so subsample to a few thousand
// points. KMeans assigns points in parallel; LinearCKA relies on gonum's
// blocked matrix products.
package diag
