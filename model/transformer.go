package model

import (
	"math"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	. "github.com/gomlx/gomlx/support/exceptions"
)

// Shape legend used in this file:
//
//	b: batch, t: positions (queries r), s: positions as keys (c), d: hidden size,
//	h: query heads, k: key/value heads, g: query heads per KV head (h = k·g), e: head dim, V: vocabulary.

// Weights holds the graph nodes of every parameter, named after the HF checkpoint (see ParamSpecs).
// Linear weights keep HF's [d_out, d_in] layout: z = a Wᵀ (+ bias).
type Weights struct {
	Embed  *Node // model.embed_tokens.weight [V, d]
	Norm   *Node // model.norm.weight [d]
	LMHead *Node // lm_head.weight [V, d]; equals Embed when embeddings are tied
	Blocks []BlockWeights
}

// BlockWeights are the parameters of decoder block model.layers.N.
type BlockWeights struct {
	InputNorm, PostAttnNorm *Node                 // [d]
	PreFFNNorm, PostFFNNorm *Node                 // [d]; nil unless the family has them (Gemma 3)
	Linear                  [NumLinearKinds]*Node // indexed by LinearKind, [d_out, d_in]
	QBias, KBias, VBias     *Node                 // [h·e], [k·e], [k·e]; nil unless Config.QKVBias
	OBias                   *Node                 // [d]; nil unless Config.OBias
	QNorm, KNorm            *Node                 // [e]; nil unless Config.QKNorm
}

// ForwardOptions selects what Forward records besides the logits.
type ForwardOptions struct {
	// TapBlocks records, for the last TapBlocks blocks, every linear layer's input and output, the
	// attention probabilities, values and head outputs (SPEC §4). 0 records nothing.
	TapBlocks int
	// Diagonal also runs the diagonal-gradient copy of the tapped blocks (SPEC §4, direct path): same
	// forward values, but attention passes gradient only along its diagonal, so one backward pass of
	// Σ_p l_p through DiagLogits yields each token's own e_p = ∂l_p/∂z_p at every tapped layer.
	Diagonal bool
	// Hidden returns the residual stream entering every block and the final one (Layers+1 nodes).
	Hidden bool
	// Segments, for packed rows (several examples per row, data.MakePackedBatch), is [b, t] int32:
	// the example each position belongs to, numbered along the row. Attention then stays inside each
	// example (a block-diagonal causal mask) and RoPE positions restart at 0 with every example, so
	// each example's logits are those it gets alone. nil: one sequence per row.
	Segments *Node
}

// Output is what Forward returns.
type Output struct {
	Logits *Node   // [b, t, V]: logits[b,p] predict tokens[b,p+1]
	Hidden []*Node // [b, t, d] per block input, then the final block's output (before the final norm)
	Taps   []*BlockTaps
	// DiagLogits and DiagTaps come from the diagonal-gradient copy (ForwardOptions.Diagonal).
	DiagLogits *Node
	DiagTaps   []*BlockTaps
}

// LinearTap holds a linear layer's input a [b,t,d_in] and output z [b,t,d_out] (bias included).
type LinearTap struct{ A, Z *Node }

// BlockTaps holds what SPEC §4 reads inside one decoder block.
type BlockTaps struct {
	Block  int
	Linear [NumLinearKinds]LinearTap
	Probs  *Node // attention probabilities A [b, h, t(query r), s(key c)]
	Values *Node // v after projection (and bias) [b, s, k, e]
	U      *Node // head outputs u_r = Σ_c A_{r,c} v_c, before o_proj: [b·k, g·t, e] (see HeadOutputs)
}

// HeadOutputs reshapes the U tap to [b, t, h, e].
func (bt *BlockTaps) HeadOutputs(b, k, g, t, e int) *Node {
	u := Reshape(bt.U, b, k, g, t, e)
	return Reshape(TransposeAllAxes(u, 0, 3, 1, 2, 4), b, t, k*g, e)
}

// Forward runs the decoder on tokens [b, t] (int32, right-padded: attention is causal, so padding
// after a sequence never changes its positions) with the given weights.
func Forward(cfg *Config, w *Weights, tokens *Node, opts ForwardOptions) *Output {
	g := tokens.Graph()
	if tokens.Rank() != 2 {
		Panicf("model.Forward: tokens must be [batch, positions], got %s", tokens.Shape())
	}
	t := tokens.Shape().Dimensions[1]
	if t > cfg.MaxPositions {
		Panicf("model.Forward: %d positions exceed max_position_embeddings=%d", t, cfg.MaxPositions)
	}
	if opts.TapBlocks < 0 || opts.TapBlocks > cfg.Layers {
		Panicf("model.Forward: TapBlocks=%d must be in [0, %d]", opts.TapBlocks, cfg.Layers)
	}
	if opts.Diagonal && opts.TapBlocks == 0 {
		Panicf("model.Forward: Diagonal needs TapBlocks > 0")
	}
	ctx := causalContext(g, cfg, t, w.Embed.DType())
	if opts.Segments != nil {
		ctx = packedContext(cfg, opts.Segments, w.Embed.DType())
	}
	fam := cfg.family()
	x := fam.embed(cfg, w, tokens) // [b, t, d]
	out := &Output{}
	firstTapped := cfg.Layers - opts.TapBlocks
	var tappedInput *Node
	for i := range cfg.Layers {
		if opts.Hidden {
			out.Hidden = append(out.Hidden, x)
		}
		if i == firstTapped {
			tappedInput = x
		}
		var taps *BlockTaps
		if i >= firstTapped {
			taps = &BlockTaps{Block: i}
			out.Taps = append(out.Taps, taps)
		}
		x = fam.block(cfg, &w.Blocks[i], x, ctx.layer(cfg, i), false, taps, nil)
	}
	if opts.Hidden {
		out.Hidden = append(out.Hidden, x)
	}
	out.Logits = head(cfg, w, x)
	if opts.Diagonal {
		// The copy starts from the same residual stream; nothing below it needs a gradient.
		x := StopGradient(tappedInput)
		for i := firstTapped; i < cfg.Layers; i++ {
			taps := &BlockTaps{Block: i}
			out.DiagTaps = append(out.DiagTaps, taps)
			x = fam.block(cfg, &w.Blocks[i], x, ctx.layer(cfg, i), true, taps, nil)
		}
		out.DiagLogits = head(cfg, w, x)
	}
	return out
}

// head applies the final norm and the LM head: [b,t,d] -> [b,t,V].
func head(cfg *Config, w *Weights, x *Node) *Node {
	return linear(cfg.family().norm(x, w.Norm, cfg.RMSNormEps), w.LMHead, nil)
}

// preNormBlock is the Llama and Qwen decoder block: x + attn(norm(x)), then + mlp(norm(·)). The
// context and the optional key/value cache are attention's (attention.go).
func preNormBlock(cfg *Config, w *BlockWeights, x *Node, ctx *attnContext, diagonal bool, taps *BlockTaps, cache *kvCache) *Node {
	x = Add(x, attention(cfg, w, rmsNorm(x, w.InputNorm, cfg.RMSNormEps), ctx, diagonal, taps, cache))
	return Add(x, mlp(w, rmsNorm(x, w.PostAttnNorm, cfg.RMSNormEps), taps))
}

// mlp is SwiGLU: down(silu(gate(a)) ⊙ up(a)).
func mlp(w *BlockWeights, a *Node, taps *BlockTaps) *Node {
	gate := tappedLinear(a, w.Linear[GateProj], nil, taps, GateProj)
	up := tappedLinear(a, w.Linear[UpProj], nil, taps, UpProj)
	hidden := Mul(Mul(gate, Sigmoid(gate)), up)
	return tappedLinear(hidden, w.Linear[DownProj], nil, taps, DownProj)
}

// tappedLinear is linear() that records its input and output in taps (if not nil).
func tappedLinear(a, weight, bias *Node, taps *BlockTaps, kind LinearKind) *Node {
	z := linear(a, weight, bias)
	if taps != nil {
		taps.Linear[kind] = LinearTap{A: a, Z: z}
	}
	return z
}

// rmsNorm is x / sqrt(mean(x²) + eps) ⊙ weight over the last axis. Half-precision inputs are
// normalised in float32, as HF does. (Div/Sqrt rather than Rsqrt: GoMLX has no Rsqrt gradient.)
func rmsNorm(x, weight *Node, eps float64) *Node {
	dtype := x.DType()
	if dtype == dtypes.BFloat16 || dtype == dtypes.Float16 {
		x = ConvertDType(x, dtypes.Float32)
	}
	ms := ReduceAndKeep(Square(x), ReduceMean, -1)
	y := Div(x, Sqrt(AddScalar(ms, eps)))
	if y.DType() != dtype {
		y = ConvertDType(y, dtype)
	}
	return Mul(y, ExpandLeftToRank(weight, y.Rank()))
}

// rope holds the cos/sin tables [t, e] (frequencies repeated twice, HF's rotate-half convention).
type rope struct{ cos, sin *Node }

// newRoPE is the table of positions 0..t−1 with the model's (full-attention) frequencies.
func newRoPE(g *Graph, cfg *Config, t int, dtype dtypes.DType) *rope {
	return ropeTable(g, cfg.InvFrequencies(), t, dtype)
}

// ropeTable is the table of positions 0..t−1 for inverse frequencies inv (computed in float64).
func ropeTable(g *Graph, inv []float64, t int, dtype dtypes.DType) *rope {
	half := len(inv)
	e := 2 * half
	cos := make([]float64, t*e)
	sin := make([]float64, t*e)
	for p := range t {
		for i, f := range inv {
			angle := float64(p) * f
			c, s := math.Cos(angle), math.Sin(angle)
			cos[p*e+i], cos[p*e+i+half] = c, c
			sin[p*e+i], sin[p*e+i+half] = s, s
		}
	}
	mk := func(v []float64) *Node {
		n := Const(g, v)
		n = Reshape(n, t, e)
		return ConvertDType(n, dtype)
	}
	return &rope{cos: mk(cos), sin: mk(sin)}
}

// apply rotates x [b, t, n, e]: x·cos + rotate_half(x)·sin, rotate_half(x) = [-x2, x1]. The tables
// are [t, e] (the same positions for every row) or [b, t, e] (per-row positions, see rope.at).
func (r *rope) apply(x *Node) *Node {
	e := x.Shape().Dimensions[3]
	x1 := Slice(x, AxisRange(), AxisRange(), AxisRange(), AxisRange(0, e/2))
	x2 := Slice(x, AxisRange(), AxisRange(), AxisRange(), AxisRange(e/2, e))
	rotated := Concatenate([]*Node{Neg(x2), x1}, 3)
	var cos, sin *Node
	if r.cos.Rank() == 3 {
		cos, sin = InsertAxes(r.cos, 2), InsertAxes(r.sin, 2) // [b, t, 1, e]
	} else {
		// [1, t, n, e]: broadcasting over the leading axis only is a plain loop on the go backend,
		// where [1, t, 1, e] against [b, t, n, e] goes through its generic broadcast iterator.
		dims := x.Shape().Dimensions
		full := func(tab *Node) *Node { return InsertAxes(BroadcastToDims(InsertAxes(tab, 1), dims[1], dims[2], e), 0) }
		cos, sin = full(r.cos), full(r.sin)
	}
	return Add(Mul(x, cos), Mul(rotated, sin))
}
