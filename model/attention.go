package model

import (
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	. "github.com/gomlx/gomlx/support/exceptions"
)

// The attention core, shared by training (Forward), prefill and decoding (decode.go).
//
// A block's queries sit at t positions; what they may attend to comes from an attnContext: the RoPE
// table at the queries' positions and a visibility mask over the s keys. Training uses positions
// 0..t−1 for every row and the causal mask (s = t); decoding with a key/value cache (kvCache) writes
// the t new keys and values into the cache at a slot and attends over all of its s slots, with
// per-row positions and masks (left-padded prompts, see decode.go). A sliding-window layer
// (Config.LayerTypes) has a context of its own: the same positions with its RoPE base, and a mask
// that also hides keys more than sliding_window − 1 positions back.

// attnContext says where a forward pass's queries sit and which keys each of them sees.
type attnContext struct {
	rope *rope // cos/sin at the query positions: [t, e] (shared by every row) or [b, t, e]
	// visible [1 or b, t, s] (bool): query r may attend to key c.
	visible *Node
	// sliding is the context of sliding_attention layers (nil if the model has none).
	sliding *attnContext
}

// layer returns the context of block i: the sliding one on a sliding_attention layer.
func (c *attnContext) layer(cfg *Config, i int) *attnContext {
	if c.sliding != nil && cfg.LayerTypes[i] == SlidingAttention {
		return c.sliding
	}
	return c
}

// causalContext is the training context: positions 0..t−1 for every row and the causal mask c ≤ r.
func causalContext(g *Graph, cfg *Config, t int, dtype dtypes.DType) *attnContext {
	ctx := &attnContext{rope: newRoPE(g, cfg, t, dtype), visible: InsertAxes(LowerTriangular(g, t), 0)}
	if cfg.HasSlidingLayers() {
		grid := shapes.Make(dtypes.Int32, 1, t, t)
		r, c := Iota(g, grid, 1), Iota(g, grid, 2)
		ctx.sliding = &attnContext{rope: ropeTable(g, cfg.LocalInvFrequencies(), t, dtype),
			visible: And(ctx.visible, inWindow(r, c, cfg.SlidingWindow))}
	}
	return ctx
}

// inWindow is the sliding-window overlay r − c < W (HF masking_utils: kv_idx > q_idx −
// sliding_window) over query and key positions (or cache slots, which differ from positions by the
// same offset) r, c of one shape: a query sees itself and the W − 1 keys before it.
func inWindow(r, c *Node, w int) *Node {
	return LessThan(Sub(r, c), Scalar(r.Graph(), r.DType(), w))
}

// packedContext is the context of packed rows: segments [b, t] (int32) numbers the examples along
// each row. Query r sees key c when both belong to the same example and c ≤ r (a block-diagonal
// causal mask), and its RoPE position is r minus the first position of its example.
func packedContext(cfg *Config, segments *Node, dtype dtypes.DType) *attnContext {
	g := segments.Graph()
	segments.AssertDims(-1, -1)
	b, t := segments.Shape().Dimensions[0], segments.Shape().Dimensions[1]
	segments = ConvertDType(segments, dtypes.Int32)
	grid := shapes.Make(dtypes.Int32, b, t, t)
	query, key := Iota(g, grid, 1), Iota(g, grid, 2)
	same := Equal(BroadcastToShape(Reshape(segments, b, t, 1), grid), BroadcastToShape(Reshape(segments, b, 1, t), grid))
	visible := And(same, LessOrEqual(key, query)) // [b, t, s=t]
	// The first position of each query's example: the smallest key position in its segment.
	first := ReduceMin(Where(same, key, BroadcastToShape(Scalar(g, dtypes.Int32, t), grid)), 2) // [b, t]
	pos := Sub(Iota(g, shapes.Make(dtypes.Int32, b, t), 1), first)                              // [b, t]
	ctx := &attnContext{rope: newRoPE(g, cfg, t, dtype).at(pos), visible: visible}
	if cfg.HasSlidingLayers() {
		ctx.sliding = &attnContext{rope: ropeTable(g, cfg.LocalInvFrequencies(), t, dtype).at(pos),
			visible: And(visible, inWindow(query, key, cfg.SlidingWindow))}
	}
	return ctx
}

// kvCache is one block's key/value cache inside a graph: keys and values in head layout [b, k, s, e]
// and the slot (int32 scalar) where this forward pass's t positions are written. Before the block
// runs, k and v hold the cache (nil: s empty slots); after it, the updated cache. s = Slots.
type kvCache struct {
	k, v  *Node
	slot  *Node
	Slots int
}

// attention is grouped-query self-attention with RoPE, on the normalised input a [b, t, d]: the
// scores q·k are scaled by Config.AttnScale (1/√e, or Gemma's query_pre_attn_scalar^−½), q and k
// normalised first by the family's norm where it has q/k norms.
//
// Query head h = kv·g + i uses key/value head kv (HF's repeat_kv order). Internally the heads are laid
// out as [b·k, g·t, e] (queries) and [b·k, s, e] (keys, values) so each score and value product is one
// batched matmul over b·k. With cache set, the block's keys and values go into the cache at its slot
// first and the queries attend over every cache slot the context makes visible.
//
// With diagonal set (training only), it computes the same values, but keys and values at positions
// c ≠ r reach query r through a stop-gradient (SPEC §4, direct path):
//
//	s_{r,c} = q_r·sg(k_c) + δ_{rc} q_r·(k_r − sg(k_r))      u_r = Σ_c A_{r,c} sg(v_c) + A_{r,r} (v_r − sg(v_r))
func attention(cfg *Config, w *BlockWeights, a *Node, ctx *attnContext, diagonal bool, taps *BlockTaps, cache *kvCache) *Node {
	dims := a.Shape().Dimensions
	b, t := dims[0], dims[1]
	nh, nk, e := cfg.Heads, cfg.KVHeads, cfg.HeadDim
	ng := nh / nk
	if diagonal && cache != nil {
		Panicf("model: the diagonal-gradient copy runs without a key/value cache")
	}

	q := tappedLinear(a, w.Linear[QProj], w.QBias, taps, QProj) // [b, t, h·e]
	k := tappedLinear(a, w.Linear[KProj], w.KBias, taps, KProj) // [b, t, k·e]
	v := tappedLinear(a, w.Linear[VProj], w.VBias, taps, VProj) // [b, t, k·e]
	q = Reshape(q, b, t, nh, e)
	k = Reshape(k, b, t, nk, e)
	v = Reshape(v, b, t, nk, e)
	if w.QNorm != nil {
		norm := cfg.family().norm
		q = norm(q, w.QNorm, cfg.RMSNormEps)
		k = norm(k, w.KNorm, cfg.RMSNormEps)
	}
	q = ctx.rope.apply(q)
	k = ctx.rope.apply(k)
	if taps != nil {
		taps.Values = v
	}

	// [b, t, k·g, e] -> [b, t, k, g, e] -> [b, k, g, t, e] -> [b·k, g·t, e]
	qh := Reshape(TransposeAllAxes(Reshape(q, b, t, nk, ng, e), 0, 2, 3, 1, 4), b*nk, ng*t, e)
	// [b, t, k, e] -> [b, k, t, e]
	kt := TransposeAllAxes(k, 0, 2, 1, 3)
	vt := TransposeAllAxes(v, 0, 2, 1, 3)
	s := t
	if cache != nil {
		kt, vt = cache.write(kt, vt) // [b, k, s, e]
		s = cache.Slots
	}
	kh := Reshape(kt, b*nk, s, e) // [b·k, s, e]
	vh := Reshape(vt, b*nk, s, e)

	kScores := kh
	if diagonal {
		kScores = StopGradient(kh)
	}
	// Q:[b·k, g·t, e] x K:[b·k, s, e] -> [b·k, g·t, s]
	scores := batchMatmul(qh, kScores, true)
	if diagonal {
		// + δ_{rc} q_r·(k_r − sg(k_r)): zero in value, carries the diagonal key gradient.
		dk := Sub(kh, StopGradient(kh))                                           // [b·k, t, e]
		qdk := ReduceSum(Mul(Reshape(qh, b*nk, ng, t, e), InsertAxes(dk, 1)), -1) // [b·k, g, t]
		scores = Add(scores, Reshape(diagEmbed(Reshape(qdk, b*nk*ng, t)), b*nk, ng*t, t))
	}
	scores = Reshape(scores, b*nk, ng, t, s)
	scores = MulScalar(scores, cfg.AttnScale())
	probs := maskedSoftmax(scores, ctx.visible, b) // [b·k, g, t, s]
	if taps != nil {
		taps.Probs = Reshape(probs, b, nh, t, s)
	}
	probs = Reshape(probs, b*nk, ng*t, s)

	vValues := vh
	if diagonal {
		vValues = StopGradient(vh)
	}
	// A:[b·k, g·t, s] x V:[b·k, s, e] -> [b·k, g·t, e]
	u := batchMatmul(probs, vValues, false)
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

// write stores new keys and values [b, k, t, e] at slots [slot, slot+t) of the cache (creating an
// empty cache of Slots slots if there is none yet, in the dtype the keys are computed in: the compute
// dtype, bfloat16 under --dtype bfloat16's float32 storage) and returns the updated cache.
func (c *kvCache) write(k, v *Node) (*Node, *Node) {
	dims := k.Shape().Dimensions
	g := k.Graph()
	if c.k == nil {
		empty := shapes.Make(k.DType(), dims[0], dims[1], c.Slots, dims[3])
		c.k, c.v = Zeros(g, empty), Zeros(g, empty)
	}
	zero := ScalarZero(g, c.slot.DType())
	at := []*Node{zero, zero, c.slot, zero}
	c.k = DynamicUpdateSlice(c.k, ConvertDType(k, c.k.DType()), at)
	c.v = DynamicUpdateSlice(c.v, ConvertDType(v, c.v.DType()), at)
	return c.k, c.v
}

// maskedSoftmax normalises scores [b·k, g, t(query), s(key)] over the keys visible [1 or b, t, s]
// lets each query see (half precision in float32).
func maskedSoftmax(scores, visible *Node, b int) *Node {
	g := scores.Graph()
	dtype := scores.DType()
	if dtype == dtypes.BFloat16 || dtype == dtypes.Float16 {
		scores = ConvertDType(scores, dtypes.Float32)
	}
	shape := scores.Shape()
	d := shape.Dimensions
	bk, ng, t, s := d[0], d[1], d[2], d[3]
	var mask *Node
	if visible.Shape().Dimensions[0] == 1 {
		mask = BroadcastToShape(InsertAxes(visible, 0), shape) // [1, 1, t, s]
	} else {
		// [b, 1, t, s] over [b, k·g, t, s]
		perRow := shapes.Make(dtypes.Bool, b, bk/b*ng, t, s)
		mask = Reshape(BroadcastToShape(Reshape(visible, b, 1, t, s), perRow), shape.Dimensions...)
	}
	masked := Where(mask, scores, BroadcastToShape(ConstAsDType(g, scores.DType(), -1e30), shape))
	probs := Softmax(masked, -1)
	if probs.DType() != dtype {
		probs = ConvertDType(probs, dtype)
	}
	return probs
}

// at returns the RoPE table rows at per-row positions pos [b, t] (int32): cos/sin [b, t, e].
func (r *rope) at(pos *Node) *rope {
	idx := InsertAxes(pos, -1) // [b, t, 1]
	return &rope{cos: Gather(r.cos, idx), sin: Gather(r.sin, idx)}
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
