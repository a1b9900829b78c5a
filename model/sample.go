package model

import (
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
)

// Sampling on the device: each new token is drawn inside the compiled graph from its row's logits z,
// so only the ids [b] leave the device.
//
//	greedy (Temperature ≤ 0):  argmax_j z_j                         (ties: the smallest id)
//	sampled:                   argmax_{j ∈ N} (z_j/T + G_j),  G_j = −log(−log U_j)
//
// The second line is the Gumbel-max trick: it draws j with probability softmax(z/T)_j renormalised
// over N, with no sort and no cumulative sum over the vocabulary. N is the whole vocabulary, or with
// 0 < TopP < 1 the nucleus {j : p_j ≥ τ} for the largest τ with Σ_{p_j ≥ τ} p_j ≥ TopP (p =
// softmax(z/T)), found by bisection on τ: the smallest set of most likely tokens whose mass reaches
// TopP (every token tied with the last one included).
//
// The uniforms U_j (24 bits) are a counter-based hash of (Seed, prompt index, step, j): the host
// derives a 64-bit key per (Seed, prompt index, step) with SplitMix64 (SampleKey), and the graph mixes
// it with the token id j by two rounds of MurmurHash3's 32-bit finaliser. A sampled continuation is
// therefore a pure function of (Seed, prompt index): it does not depend on the batch it was drawn in
// or on the other prompts.

// SampleKey is the 64-bit key, as [lo, hi] words, of the uniforms of one prompt's step-th new token.
func SampleKey(seed uint64, prompt, step int) [2]uint32 {
	h := splitMix64(splitMix64(splitMix64(seed)^uint64(prompt)) ^ uint64(step))
	return [2]uint32{uint32(h), uint32(h >> 32)}
}

// splitMix64 is one step of SplitMix64 (Steele, Lea and Flood 2014) applied to x.
func splitMix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// fmix32 is MurmurHash3's 32-bit finaliser on uint32 nodes (a bijection that mixes every bit).
func fmix32(h *Node) *Node {
	h = BitwiseXor(h, BitwiseShiftRightLogicalScalar(h, 16))
	h = Mul(h, Scalar(h.Graph(), dtypes.Uint32, uint32(0x85ebca6b)))
	h = BitwiseXor(h, BitwiseShiftRightLogicalScalar(h, 13))
	h = Mul(h, Scalar(h.Graph(), dtypes.Uint32, uint32(0xc2b2ae35)))
	return BitwiseXor(h, BitwiseShiftRightLogicalScalar(h, 16))
}

// sampleUniforms returns U [b, v] in (0, 1) (float32) from keys [b, 2] (uint32): U_j =
// (fmix32(fmix32(lo + j·0x9e3779b9) ⊕ hi) >> 8 + ½) / 2²⁴.
func sampleUniforms(keys *Node, v int) *Node {
	g := keys.Graph()
	b := keys.Shape().Dimensions[0]
	lo := Slice(keys, AxisRange(), AxisRange(0, 1)) // [b, 1]
	hi := Slice(keys, AxisRange(), AxisRange(1, 2))
	full := shapes.Make(dtypes.Uint32, b, v)
	j := Iota(g, full, 1)
	h := fmix32(Add(BroadcastToShape(lo, full), Mul(j, Scalar(g, dtypes.Uint32, uint32(0x9e3779b9)))))
	h = fmix32(BitwiseXor(h, BroadcastToShape(hi, full)))
	bits := ConvertDType(BitwiseShiftRightLogicalScalar(h, 8), dtypes.Float32)
	return MulScalar(AddScalar(bits, 0.5), 1.0/(1<<24))
}

// sampleTokens draws one token per row from logits [b, V] (see the comment above): greedy when
// temperature ≤ 0, otherwise Gumbel-max at that temperature over the TopP nucleus (TopP ≤ 0 or ≥ 1:
// the whole vocabulary), with the uniforms of keys [b, 2] (uint32, SampleKey). It returns ids [b]
// (int32).
func sampleTokens(logits, keys *Node, temperature, topP float64) *Node {
	if logits.DType() == dtypes.BFloat16 || logits.DType() == dtypes.Float16 {
		logits = ConvertDType(logits, dtypes.Float32)
	}
	if temperature <= 0 {
		return ArgMax(logits, -1, dtypes.Int32)
	}
	dims := logits.Shape().Dimensions
	b, v := dims[0], dims[1]
	z := DivScalar(logits, temperature)
	gumbel := Neg(Log(Neg(Log(sampleUniforms(keys, v)))))
	scores := Add(z, ConvertDType(gumbel, z.DType()))
	if topP > 0 && topP < 1 {
		keep := nucleus(Softmax(z, -1), topP)
		scores = Where(keep, scores, BroadcastToShape(Infinity(logits.Graph(), z.DType(), -1), shapes.Make(z.DType(), b, v)))
	}
	return ArgMax(scores, -1, dtypes.Int32)
}

// nucleus returns keep [b, V] = p ≥ τ_b, with τ_b the largest threshold whose kept mass Σ_{p ≥ τ} p
// is still ≥ topP, found by bisection on [0, max p] (mass(τ) only falls as τ grows). Each halving
// keeps mass(lo) ≥ topP; after n halvings lo is within max p · 2⁻ⁿ of τ, below the float resolution
// of p for n = 40 (float64) or 30 (float32).
func nucleus(p *Node, topP float64) *Node {
	g := p.Graph()
	shape := p.Shape()
	b := shape.Dimensions[0]
	lo := Zeros(g, shapes.Make(shape.DType, b, 1))
	hi := ReduceAndKeep(p, ReduceMax, -1)
	zeros := ZerosLike(p)
	steps := 30
	if shape.DType == dtypes.Float64 {
		steps = 40
	}
	for range steps {
		mid := MulScalar(Add(lo, hi), 0.5)
		mass := ReduceAndKeep(Where(GreaterOrEqual(p, BroadcastToShape(mid, shape)), p, zeros), ReduceSum, -1)
		ok := GreaterOrEqual(mass, Scalar(g, shape.DType, topP))
		lo = Where(ok, mid, lo)
		hi = Where(ok, hi, mid)
	}
	return GreaterOrEqual(p, BroadcastToShape(lo, shape))
}
