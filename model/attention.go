package model

import (
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
)

// attention is grouped-query causal self-attention with RoPE, on the normalised input a [b, t, d].
//
// Query head h = kv·g + i uses key/value head kv (HF's repeat_kv order). Internally the heads are laid
// out as [b·k, g·t, e] so each score and value product is one batched matmul over b·k.
//
// With diagonal set, it computes the same values, but keys and values at positions c ≠ r reach query r
// through a stop-gradient (SPEC §4, direct path):
//
//	s_{r,c} = q_r·sg(k_c) + δ_{rc} q_r·(k_r − sg(k_r))      u_r = Σ_c A_{r,c} sg(v_c) + A_{r,r} (v_r − sg(v_r))
func attention(cfg *Config, w *BlockWeights, a *Node, rope *rope, diagonal bool, taps *BlockTaps, kv *kvCapture) *Node {
	dims := a.Shape().Dimensions
	b, t := dims[0], dims[1]
	nh, nk, e := cfg.Heads, cfg.KVHeads, cfg.HeadDim
	ng := nh / nk

	q := tappedLinear(a, w.Linear[QProj], w.QBias, taps, QProj) // [b, t, h·e]
	k := tappedLinear(a, w.Linear[KProj], w.KBias, taps, KProj) // [b, t, k·e]
	v := tappedLinear(a, w.Linear[VProj], w.VBias, taps, VProj) // [b, t, k·e]
	q = Reshape(q, b, t, nh, e)
	k = Reshape(k, b, t, nk, e)
	v = Reshape(v, b, t, nk, e)
	if w.QNorm != nil {
		q = rmsNorm(q, w.QNorm, cfg.RMSNormEps)
		k = rmsNorm(k, w.KNorm, cfg.RMSNormEps)
	}
	q = rope.apply(q)
	k = rope.apply(k)
	if taps != nil {
		taps.Values = v
	}
	if kv != nil {
		kv.k, kv.v = k, v
	}

	// [b, t, k·g, e] -> [b, k, g, t, e] -> [b·k, g·t, e]
	qh := Reshape(TransposeAllAxes(Reshape(q, b, t, nk, ng, e), 0, 2, 3, 1, 4), b*nk, ng*t, e)
	// [b, t, k, e] -> [b, k, t, e] -> [b·k, t, e]
	kh := Reshape(TransposeAllAxes(k, 0, 2, 1, 3), b*nk, t, e)
	vh := Reshape(TransposeAllAxes(v, 0, 2, 1, 3), b*nk, t, e)

	kScores := kh
	if diagonal {
		kScores = StopGradient(kh)
	}
	// Q:[b·k, g·t, e] x K:[b·k, s, e] -> [b·k, g·t, s]
	scores := DotGeneral(qh, []int{2}, []int{0}, kScores, []int{2}, []int{0})
	if diagonal {
		// + δ_{rc} q_r·(k_r − sg(k_r)): zero in value, carries the diagonal key gradient.
		dk := Sub(kh, StopGradient(kh))                                           // [b·k, t, e]
		qdk := ReduceSum(Mul(Reshape(qh, b*nk, ng, t, e), InsertAxes(dk, 1)), -1) // [b·k, g, t]
		scores = Add(scores, Reshape(diagEmbed(Reshape(qdk, b*nk*ng, t)), b*nk, ng*t, t))
	}
	scores = Reshape(scores, b*nk, ng, t, t)
	scores = MulScalar(scores, 1/math.Sqrt(float64(e)))
	probs := causalSoftmax(scores) // [b·k, g, t, s]
	if taps != nil {
		taps.Probs = Reshape(probs, b, nh, t, t)
	}
	probs = Reshape(probs, b*nk, ng*t, t)

	vValues := vh
	if diagonal {
		vValues = StopGradient(vh)
	}
	// A:[b·k, g·t, s] x V:[b·k, s, e] -> [b·k, g·t, e]
	u := DotGeneral(probs, []int{2}, []int{0}, vValues, []int{1}, []int{0})
	if diagonal {
		// + A_{r,r} (v_r − sg(v_r)): zero in value, carries the diagonal value gradient.
		aDiag := Reshape(diagOf(Reshape(probs, b*nk*ng, t, t)), b*nk, ng, t) // [b·k, g, t]: A_{r,r}
		dv := InsertAxes(Sub(vh, StopGradient(vh)), 1)                       // [b·k, 1, t, e]
		u = Add(u, Reshape(Mul(InsertAxes(aDiag, -1), dv), b*nk, ng*t, e))
	}
	if taps != nil {
		taps.U = u
	}
	// [b·k, g·t, e] -> [b, k, g, t, e] -> [b, t, k, g, e] -> [b, t, h·e]
	u = Reshape(TransposeAllAxes(Reshape(u, b, nk, ng, t, e), 0, 3, 1, 2, 4), b, t, nh*e)
	return tappedLinear(u, w.Linear[OProj], w.OBias, taps, OProj)
}

// causalSoftmax normalises scores [.., t(query), s(key)] over keys c ≤ r (half precision in float32).
func causalSoftmax(scores *Node) *Node {
	g := scores.Graph()
	dtype := scores.DType()
	if dtype == dtypes.BFloat16 || dtype == dtypes.Float16 {
		scores = ConvertDType(scores, dtypes.Float32)
	}
	rank := scores.Rank()
	t := scores.Shape().Dimensions[rank-2]
	mask := ExpandLeftToRank(LowerTriangular(g, t), rank)
	masked := Where(BroadcastToShape(mask, scores.Shape()), scores,
		BroadcastToShape(ConstAsDType(g, scores.DType(), -1e30), scores.Shape()))
	probs := Softmax(masked, -1)
	if probs.DType() != dtype {
		probs = ConvertDType(probs, dtype)
	}
	return probs
}

// diagOf returns x[b, r, r] for x [b, t, t] as [b, t]: a strided slice of the flattened
// matrix (every (t+1)-th element), O(b·t) rather than a masked O(b·t²) reduction.
func diagOf(x *Node) *Node {
	d := x.Shape().Dimensions
	b, t := d[0], d[1]
	return Slice(Reshape(x, b, t*t), AxisRange(), AxisRange().Stride(t+1))
}

// diagEmbed returns [b, t, t] with v [b, t] on the diagonal and zeros elsewhere: appending t zeros
// to each element and reading the result as t rows of t puts v_r at (r, r).
func diagEmbed(v *Node) *Node {
	d := v.Shape().Dimensions
	b, t := d[0], d[1]
	padded := Concatenate([]*Node{InsertAxes(v, -1), Zeros(v.Graph(), shapes.Make(v.DType(), b, t, t))}, -1) // [b, t, t+1]
	return Reshape(Slice(Reshape(padded, b, t*(t+1)), AxisRange(), AxisRange(0, t*t)), b, t, t)
}
