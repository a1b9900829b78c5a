package alphatoken

import (
	"math"
	"math/rand/v2"

	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/diag"
	"github.com/alphatoken/alphatoken/model"
)

// SPEC §8 diagnostics that need the model; the statistics on their outputs live in package diag.

// ValuePropagationPairs samples (query r, key c ≤ r) pairs from the attention heads of the last k
// blocks on examples and returns, per pair, the attention weight A_{r,c}, the deviation
// ||v_c − u_r|| and the size of the score-propagation term that the causal path omits (SPEC §4),
// |A_{r,c} (v_c − u_r)·g_r| with g_r = ∂L/∂u_r of the unmasked loss L = Σ_{p∈R} l_p.
// Pairs are drawn uniformly over blocks, heads, examples and causal positions (seeded).
func ValuePropagationPairs(lm *model.LM, examples []data.Example, k, n int, seed uint64) ([]diag.PairStat, error) {
	cfg := lm.Config
	if k < 1 || k > cfg.Layers {
		return nil, BlocksError(k, cfg.Layers)
	}
	if len(examples) == 0 || n <= 0 {
		return nil, errors.New("alphatoken: value-propagation diagnostic needs examples and n > 0")
	}
	idx := make([]int, len(examples))
	longest := 0
	for i := range examples {
		idx[i] = i
		longest = max(longest, len(examples[i].IDs))
	}
	b := data.MakeBatch(examples, idx, len(examples), data.BucketLen(longest, 32, cfg.MaxPositions), max(cfg.PadTokenID, 0))
	nb, t := len(b.Tokens), b.T()
	nh, nk, e := cfg.Heads, cfg.KVHeads, cfg.HeadDim
	exec, err := model.NewStoreExec(lm.Backend, lm.Store, "value_propagation", func(scope *gm.Scope, g *Graph, in []*Node) []*Node {
		tok, tgt, w := in[0], in[1], in[2]
		out := model.Forward(cfg, lm.Weights(g), tok, model.ForwardOptions{TapBlocks: k})
		nll := model.TokenNLL(out.Logits, tgt)
		loss := ReduceAllSum(Mul(nll, ConvertDType(w, nll.DType())))
		var us []*Node
		for _, bt := range out.Taps {
			us = append(us, bt.U)
		}
		gs := Gradient(loss, us...)
		var res []*Node
		for i, bt := range out.Taps {
			gt := &model.BlockTaps{U: gs[i]}
			res = append(res, bt.Probs, bt.Values, bt.HeadOutputs(nb, nk, nh/nk, t, e), gt.HeadOutputs(nb, nk, nh/nk, t, e))
		}
		return res
	})
	if err != nil {
		return nil, err
	}
	outs, err := exec.Call(b.Tokens, b.Targets, b.Weights)
	if err != nil {
		return nil, errors.WithMessage(err, "alphatoken: value-propagation diagnostic")
	}
	vals := make([][]float64, len(outs))
	for i, o := range outs {
		if vals[i], err = model.TensorFloat64(o); err != nil {
			return nil, err
		}
		o.FinalizeAll()
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	pt := pairTaps{vals: vals, t: t, nh: nh, nk: nk, e: e}
	pairs := make([]diag.PairStat, 0, n)
	for len(pairs) < n {
		blk, bi, h := rng.IntN(k), rng.IntN(len(examples)), rng.IntN(nh)
		r := rng.IntN(len(examples[bi].IDs))
		st, _ := pt.pair(blk, bi, h, r, rng.IntN(r+1))
		pairs = append(pairs, st)
	}
	return pairs, nil
}

// pairTaps holds, per tapped block, probs [b,h,t,t], values [b,t,k,e], head outputs and their
// gradients [b,t,h,e], flattened.
type pairTaps struct {
	vals         [][]float64
	t, nh, nk, e int
}

// pair returns the statistics of (block, example, head, query r, key c) and the vector
// A_{r,c}(v_c − u_r) (whose sum over c is 0: the check that the taps line up).
func (pt pairTaps) pair(blk, bi, h, r, c int) (diag.PairStat, []float64) {
	t, nh, nk, e := pt.t, pt.nh, pt.nk, pt.e
	probs, v, u, g := pt.vals[4*blk], pt.vals[4*blk+1], pt.vals[4*blk+2], pt.vals[4*blk+3]
	a := probs[((bi*nh+h)*t+r)*t+c]
	kv := h / (nh / nk)
	weighted := make([]float64, e)
	var dev2, dot float64
	for d := range e {
		diff := v[((bi*t+c)*nk+kv)*e+d] - u[((bi*t+r)*nh+h)*e+d]
		dev2 += diff * diff
		dot += diff * g[((bi*t+r)*nh+h)*e+d]
		weighted[d] = a * diff
	}
	return diag.PairStat{A: a, Dev: math.Sqrt(dev2), Omitted: math.Abs(a * dot)}, weighted
}

// HiddenStates returns the residual stream of every layer boundary (embedding output, each block's
// output: Layers+1 entries) at the requested positions of each sequence: out[l][j] is the d-vector
// of the j-th requested position (sequence-major order).
func HiddenStates(lm *model.LM, seqs [][]int, positions [][]int, batchSize int) ([][][]float64, error) {
	cfg := lm.Config
	if len(positions) != len(seqs) {
		return nil, errors.Errorf("alphatoken: %d sequences but %d position lists", len(seqs), len(positions))
	}
	if batchSize <= 0 {
		batchSize = 16
	}
	exec, err := model.NewStoreExec(lm.Backend, lm.Store, "hidden_states", func(scope *gm.Scope, g *Graph, in []*Node) []*Node {
		return model.Forward(cfg, lm.Weights(g), in[0], model.ForwardOptions{Hidden: true}).Hidden
	})
	if err != nil {
		return nil, err
	}
	out := make([][][]float64, cfg.Layers+1)
	d := cfg.Hidden
	for s0 := 0; s0 < len(seqs); s0 += batchSize {
		s1 := min(s0+batchSize, len(seqs))
		longest := 0
		for i := s0; i < s1; i++ {
			longest = max(longest, len(seqs[i]))
		}
		if longest > cfg.MaxPositions {
			return nil, errors.Errorf("alphatoken: a sequence of %d tokens exceeds max_position_embeddings", longest)
		}
		t := data.BucketLen(longest, 32, cfg.MaxPositions)
		tokens := make([][]int32, batchSize)
		for r := range tokens {
			tokens[r] = make([]int32, t)
			if i := s0 + r; i < s1 {
				for p, id := range seqs[i] {
					tokens[r][p] = int32(id)
				}
			}
		}
		res, err := exec.Call(tokens)
		if err != nil {
			return nil, errors.WithMessage(err, "alphatoken: hidden states")
		}
		for l, h := range res {
			vals, err := model.TensorFloat64(h)
			h.FinalizeAll()
			if err != nil {
				return nil, err
			}
			for i := s0; i < s1; i++ {
				for _, p := range positions[i] {
					if p < 0 || p >= len(seqs[i]) {
						return nil, errors.Errorf("alphatoken: position %d outside sequence %d (length %d)", p, i, len(seqs[i]))
					}
					off := ((i-s0)*t + p) * d
					out[l] = append(out[l], append([]float64(nil), vals[off:off+d]...))
				}
			}
		}
	}
	return out, nil
}

// LayerCKA returns linear CKA (SPEC §8, representation stability) between the hidden states of two
// models with the same architecture, per layer boundary, on all positions of seqs.
func LayerCKA(a, b *model.LM, seqs [][]int) ([]float64, error) {
	positions := make([][]int, len(seqs))
	for i, s := range seqs {
		for p := range s {
			positions[i] = append(positions[i], p)
		}
	}
	ha, err := HiddenStates(a, seqs, positions, 16)
	if err != nil {
		return nil, err
	}
	hb, err := HiddenStates(b, seqs, positions, 16)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(ha))
	for l := range ha {
		if out[l], err = diag.LinearCKA(ha[l], hb[l]); err != nil {
			return nil, errors.WithMessagef(err, "alphatoken: CKA of layer %d", l)
		}
	}
	return out, nil
}
