package alphatoken

import (
	"math"
	"sort"

	"github.com/gomlx/compute/dtypes"
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

// Combine returns Φ = N(tgt_dir + tgt_cau) + λ·N(prx_dir + prx_cau) (N = Normalize, or the
// identity for NormNone), 0 outside valid.
func Combine(ev *Evaluation, cfg Config) *Node {
	tgt := Add(ev.TgtDir, ev.TgtCau)
	prx := Add(ev.PrxDir, ev.PrxCau)
	if cfg.Normalize == NormZScore {
		tgt, prx = Normalize(tgt, ev.Valid), Normalize(prx, ev.Valid)
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
	dims := values.Shape().Dimensions
	n := values.Shape().Size()
	key := values
	switch sel {
	case SelectBottom:
		key = Neg(values)
	case SelectRandom:
		key = ConvertDType(noise, values.DType())
	}
	key = StopGradient(Reshape(key, n))
	ok := Reshape(valid, n)
	nValid := ReduceAllSum(ConvertDType(ok, dtypes.Int32))
	k := ConvertDType(Floor(AddScalar(MulScalar(ConvertDType(nValid, dtypes.Float64), rho), 0.5)), dtypes.Int32)
	k = MinScalar(MaxScalar(k, 1), int32(n))
	k = Where(Equal(nValid, ScalarZero(g, dtypes.Int32)), ScalarZero(g, dtypes.Int32), Min(k, nValid))
	lowest := BroadcastToShape(Infinity(g, key.DType(), -1), key.Shape())
	masked := Where(ok, key, lowest)
	sorted := Sort(masked, 0, false)                                    // descending
	thr := Gather(sorted, Reshape(MaxScalar(SubScalar(k, 1), 0), 1, 1)) // [1]: the k-th largest
	thr = Reshape(thr)
	greater := And(ok, GreaterThan(masked, thr))
	equal := And(ok, Equal(masked, thr))
	need := Sub(k, ReduceAllSum(ConvertDType(greater, dtypes.Int32)))
	rank := CumSum(ConvertDType(equal, dtypes.Int32), 0) // 1-based rank among ties, by position
	keep := Or(greater, And(equal, LessOrEqual(rank, need)))
	keep = And(keep, GreaterThan(k, ScalarZero(g, dtypes.Int32)))
	return Reshape(keep, dims...)
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

// CombineHost is Combine on slices of the summed target and proxy terms.
func CombineHost(tgt, prx []float64, valid []bool, cfg Config) []float64 {
	if cfg.Normalize == NormZScore {
		tgt, prx = NormalizeHost(tgt, valid), NormalizeHost(prx, valid)
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
