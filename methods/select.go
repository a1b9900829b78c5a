package methods

import (
	"math"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"

	"github.com/alphatoken/alphatoken/alphatoken"
)

// Graph primitives shared by the methods: masked losses, per-sequence selection, per-sequence
// min-max. Batch-level top/bottom/random-k is alphatoken.SelectK (SPEC §6).

// MaskedMeanLoss is Σ m·l / Σ m for a mask m (0/1, no gradient) and per-position losses l
// (every SFT baseline uses this normalisation).
func MaskedMeanLoss(nll, mask *Node) *Node {
	mask = StopGradient(ConvertDType(mask, nll.DType()))
	return Div(ReduceAllSum(Mul(nll, mask)), MaxScalar(ReduceAllSum(mask), 1))
}

// WeightedMeanLoss is Σ w·l / Σ valid for detached weights w that are 0 outside valid.
func WeightedMeanLoss(nll, weights, valid *Node) *Node {
	w := StopGradient(ConvertDType(weights, nll.DType()))
	n := ReduceAllSum(ConvertDType(valid, nll.DType()))
	return Div(ReduceAllSum(Mul(nll, w)), MaxScalar(n, 1))
}

// SelectPerRow keeps, in every row b of score [b, t], the k[b] highest-scoring valid positions
// (k: int32 [b]); ties are broken by position (earlier wins), k[b] ≤ 0 keeps none of the row.
func SelectPerRow(score, valid, k *Node) *Node {
	g := score.Graph()
	key := StopGradient(score)
	k = ConvertDType(k, dtypes.Int32)
	lowest := BroadcastToShape(Infinity(g, key.DType(), -1), key.Shape())
	masked, thr := alphatoken.KthLargest(Where(valid, key, lowest), MaxScalar(k, 1)) // thr [b, 1]: each row's k-th largest
	greater := And(valid, GreaterThan(masked, thr))
	equal := And(valid, Equal(masked, thr))
	need := InsertAxes(Sub(k, ReduceSum(ConvertDType(greater, dtypes.Int32), 1)), 1) // [b, 1]
	rank := CumSum(ConvertDType(equal, dtypes.Int32), 1)                             // 1-based rank among ties, by position
	keep := Or(greater, And(equal, LessOrEqual(rank, need)))
	return And(keep, InsertAxes(GreaterThan(k, ScalarZero(g, dtypes.Int32)), 1))
}

// MinMaxPerRow rescales x [b, t] to [0, 1] over each row's valid positions, (x − min)/(max − min);
// a row whose valid values are all equal becomes 0, and so does every invalid position.
func MinMaxPerRow(x, valid *Node) *Node {
	g := x.Graph()
	big := BroadcastToShape(Infinity(g, x.DType(), 1), x.Shape())
	lo := ReduceAndKeep(Where(valid, x, big), ReduceMin, 1)
	hi := ReduceAndKeep(Where(valid, x, Neg(big)), ReduceMax, 1)
	span := Sub(hi, lo)
	ok := GreaterThan(span, ZerosLike(span))
	scaled := Div(Sub(x, lo), Where(ok, span, OnesLike(span)))
	return Where(And(valid, BroadcastToShape(ok, x.Shape())), scaled, ZerosLike(x))
}

// rowKeepCounts is the per-sequence keep count ⌈ρ·T_b⌉ (at least 1 when the row has response
// tokens) for the response tokens T_b of each row of weights.
func rowKeepCounts(rho float64, weights [][]float32) []int32 {
	k := make([]int32, len(weights))
	for i, row := range weights {
		n := 0
		for _, w := range row {
			if w != 0 {
				n++
			}
		}
		if n > 0 {
			// ⌈ρn⌉, immune to products such as 0.6·5 = 3.0000000000000004.
			k[i] = int32(min(max(int(math.Ceil(rho*float64(n)-1e-9)), 1), n))
		}
	}
	return k
}
