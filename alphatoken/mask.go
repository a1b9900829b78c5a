package alphatoken

import (
	"math"
	"sort"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
)

// SPEC §4 (combination) and §6 (masks). Every graph function here has a host twin in float64 with
// the same semantics (NormalizeHost, CombineHost, SelectHost), used when a whole file is scored as
// one batch in chunks; tests hold the two to each other.

// zeroStdRel: a component whose standard deviation is below this times its mean magnitude is
// constant over the batch and contributes 0 after normalisation.
const zeroStdRel = 1e-12

// Normalize standardises x over the valid positions (population std); positions outside valid
// become 0, and so does everything if x is (numerically) constant.
func Normalize(x, valid *Node) *Node {
	m := ConvertDType(valid, x.DType())
	n := MaxScalar(ReduceAllSum(m), 1)
	mean := Div(ReduceAllSum(Mul(x, m)), n)
	centred := Mul(Sub(x, mean), m)
	std := Sqrt(Div(ReduceAllSum(Square(centred)), n))
	scale := Div(ReduceAllSum(Mul(Abs(x), m)), n)
	ok := GreaterThan(std, MulScalar(scale, zeroStdRel))
	safe := Where(ok, std, OnesLike(std))
	return Where(BroadcastToShape(ok, x.Shape()), Div(centred, safe), ZerosLike(x))
}

// RankNormalize replaces x by its centred rank over the valid positions, (r − (N+1)/2)/N with r the
// 1-based rank (ties share their average rank), so values lie in (−½, ½) whatever N; positions
// outside valid become 0. It compares every pair of positions: O(N²) work and memory for N = b·t.
func RankNormalize(x, valid *Node) *Node {
	dims := x.Shape().Dimensions
	n := x.Shape().Size()
	flat := Reshape(x, n)
	ok := ConvertDType(Reshape(valid, n), x.DType())
	xi, xj := InsertAxes(flat, 1), InsertAxes(flat, 0) // [n,1], [1,n]
	okj := InsertAxes(ok, 0)
	less := ReduceSum(Mul(ConvertDType(LessThan(xj, xi), x.DType()), okj), 1) // Σ_j [x_j < x_i]
	equal := ReduceSum(Mul(ConvertDType(Equal(xj, xi), x.DType()), okj), 1)   // Σ_j [x_j = x_i], i itself included
	rank := Add(less, DivScalar(AddScalar(equal, 1), 2))                      // average 1-based rank among ties
	cnt := MaxScalar(ReduceAllSum(ok), 1)
	centred := Div(Sub(rank, DivScalar(AddScalar(cnt, 1), 2)), cnt)
	return Reshape(Mul(centred, ok), dims...)
}

// Combine returns Φ = N(tgt_dir + tgt_cau) + λ·N(prx_dir + prx_cau) with N the configured
// normalisation (identity for NormNone, Normalize for NormZScore, RankNormalize for NormRank), 0
// outside valid under zscore and rank.
func Combine(ev *Evaluation, cfg Config) *Node {
	tgt := Add(ev.TgtDir, ev.TgtCau)
	prx := Add(ev.PrxDir, ev.PrxCau)
	switch cfg.Normalize {
	case NormZScore:
		tgt, prx = Normalize(tgt, ev.Valid), Normalize(prx, ev.Valid)
	case NormRank:
		tgt, prx = RankNormalize(tgt, ev.Valid), RankNormalize(prx, ev.Valid)
	}
	return Add(tgt, MulScalar(prx, cfg.Lambda))
}

// KeepCount is k = floor(ρN + 0.5), at least 1 (and at most N).
func KeepCount(rho float64, n int) int {
	if n == 0 {
		return 0
	}
	return min(max(int(math.Floor(rho*float64(n)+0.5)), 1), n)
}

// Select returns the mask [b, t] (bool) of the tokens that keep their loss: of the valid positions,
// the k = floor(ρN + 0.5) highest values (top), lowest (bottom), or highest noise (random), one
// threshold over the whole batch, ties broken by flattened position (earlier wins).
func Select(values, valid, noise *Node, rho float64, sel Selection) *Node {
	g := values.Graph()
	n := values.Shape().Size()
	nValid := ReduceAllSum(ConvertDType(Reshape(valid, n), dtypes.Int32))
	k := ConvertDType(Floor(AddScalar(MulScalar(ConvertDType(nValid, dtypes.Float64), rho), 0.5)), dtypes.Int32)
	k = MinScalar(MaxScalar(k, 1), int32(n))
	k = Where(Equal(nValid, ScalarZero(g, dtypes.Int32)), ScalarZero(g, dtypes.Int32), Min(k, nValid))
	return SelectK(values, valid, noise, k, sel)
}

// SelectK is Select with the keep count given: k (an int32 scalar node, e.g. KeepCount computed on
// the host for a scheduled ρ) of the valid positions keep their loss; k ≤ 0 keeps none, k beyond
// the number of valid positions keeps them all.
func SelectK(values, valid, noise, k *Node, sel Selection) *Node {
	g := values.Graph()
	dims := values.Shape().Dimensions
	n := values.Shape().Size()
	key := values
	switch sel {
	case SelectBottom:
		key = Neg(values)
	case SelectRandom:
		key = ConvertDType(noise, values.DType())
	}
	key = StopGradient(Reshape(key, 1, n))
	ok := Reshape(valid, 1, n)
	k = Reshape(ConvertDType(k, dtypes.Int32), 1)
	lowest := BroadcastToShape(Infinity(g, key.DType(), -1), key.Shape())
	keys, thr := KthLargest(Where(ok, key, lowest), k) // [1, n], [1, 1]: the k-th largest
	greater := And(ok, GreaterThan(keys, thr))
	equal := And(ok, Equal(keys, thr))
	need := Sub(Reshape(k), ReduceAllSum(ConvertDType(greater, dtypes.Int32)))
	rank := CumSum(ConvertDType(equal, dtypes.Int32), 1) // 1-based rank among ties, by position
	keep := Or(greater, And(equal, LessOrEqual(rank, need)))
	keep = And(keep, GreaterThan(Reshape(k), ScalarZero(g, dtypes.Int32)))
	return Reshape(keep, dims...)
}

// KthLargest maps the values x [b, n] (no NaN) to unsigned integer keys of their bit width that
// sort as the values do (−0 as +0; other float dtypes go through float32, exactly) and returns
// them with each row's k[b]-th largest key [b, 1] (k int32 [b], ≥ 1; k > n gives 0, below every
// key). The threshold is found by radix select: built bit by bit from the top, a bit stays set when
// at least k keys are ≥ the threshold with it — 32 (64) counting passes over x. Graph Sort would do,
// but its comparator closure costs microseconds per comparison on the go backend (40 ms for 1,024
// values, a third of a MiniBench AlphaToken step).
func KthLargest(x, k *Node) (keys, kth *Node) {
	g := x.Graph()
	udt, bits := dtypes.Uint32, 32
	switch x.DType() {
	case dtypes.Float64:
		udt, bits = dtypes.Uint64, 64
	case dtypes.Float32:
	default:
		x = ConvertDType(x, dtypes.Float32)
	}
	x = Where(Equal(x, ZerosLike(x)), ZerosLike(x), x) // −0 → +0
	raw := Bitcast(x, udt)
	sign := BroadcastToShape(Scalar(g, udt, uint64(1)<<(bits-1)), raw.Shape())
	// Positive floats: set the sign bit (above every negative); negative: flip every bit (a larger
	// magnitude is smaller).
	keys = Where(GreaterOrEqual(raw, sign), BitwiseNot(raw), BitwiseOr(raw, sign))
	kk := InsertAxes(ConvertDType(k, dtypes.Int32), -1) // [b, 1]
	kth = Zeros(g, shapes.Make(udt, x.Shape().Dimensions[0], 1))
	for bit := bits - 1; bit >= 0; bit-- {
		cand := BitwiseOr(kth, Scalar(g, udt, uint64(1)<<bit))
		count := ReduceAndKeep(ConvertDType(GreaterOrEqual(keys, cand), dtypes.Int32), ReduceSum, -1)
		kth = Where(GreaterOrEqual(count, kk), cand, kth)
	}
	return keys, kth
}

// --- host twins ----------------------------------------------------------------------------------

// NormalizeHost is Normalize on a slice (valid[i] false positions become 0).
func NormalizeHost(x []float64, valid []bool) []float64 {
	out := make([]float64, len(x))
	var n, sum, abs float64
	for i, v := range x {
		if valid[i] {
			n++
			sum += v
			abs += math.Abs(v)
		}
	}
	if n == 0 {
		return out
	}
	mean := sum / n
	var ss float64
	for i, v := range x {
		if valid[i] {
			ss += (v - mean) * (v - mean)
		}
	}
	std := math.Sqrt(ss / n)
	if !(std > zeroStdRel*abs/n) {
		return out
	}
	for i, v := range x {
		if valid[i] {
			out[i] = (v - mean) / std
		}
	}
	return out
}

// RankNormalizeHost is RankNormalize on a slice.
func RankNormalizeHost(x []float64, valid []bool) []float64 {
	out := make([]float64, len(x))
	var idx []int
	for i := range x {
		if valid[i] {
			idx = append(idx, i)
		}
	}
	n := float64(len(idx))
	sort.SliceStable(idx, func(a, b int) bool { return x[idx[a]] < x[idx[b]] })
	for lo := 0; lo < len(idx); {
		hi := lo
		for hi+1 < len(idx) && x[idx[hi+1]] == x[idx[lo]] {
			hi++
		}
		avg := float64(lo+hi)/2 + 1 // average 1-based rank of the tie group
		for _, i := range idx[lo : hi+1] {
			out[i] = (avg - (n+1)/2) / n
		}
		lo = hi + 1
	}
	return out
}

// CombineHost is Combine on slices of the summed target and proxy terms.
func CombineHost(tgt, prx []float64, valid []bool, cfg Config) []float64 {
	switch cfg.Normalize {
	case NormZScore:
		tgt, prx = NormalizeHost(tgt, valid), NormalizeHost(prx, valid)
	case NormRank:
		tgt, prx = RankNormalizeHost(tgt, valid), RankNormalizeHost(prx, valid)
	}
	out := make([]float64, len(tgt))
	for i := range out {
		if valid[i] {
			out[i] = tgt[i] + cfg.Lambda*prx[i]
		}
	}
	return out
}

// SelectHost is Select on slices (noise is used for SelectRandom only).
func SelectHost(values []float64, valid []bool, noise []float64, rho float64, sel Selection) []bool {
	var idx []int
	for i := range values {
		if valid[i] {
			idx = append(idx, i)
		}
	}
	key := func(i int) float64 {
		switch sel {
		case SelectBottom:
			return -values[i]
		case SelectRandom:
			return noise[i]
		}
		return values[i]
	}
	sort.SliceStable(idx, func(a, b int) bool { return key(idx[a]) > key(idx[b]) })
	keep := make([]bool, len(values))
	for _, i := range idx[:KeepCount(rho, len(idx))] {
		keep[i] = true
	}
	return keep
}
