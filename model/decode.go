package model

import (
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	gm "github.com/gomlx/gomlx/ml/model"
	"github.com/pkg/errors"
)

// Incremental decoding with a key/value cache. The go backend has no DynamicSlice or
// DynamicUpdateSlice, so the cache lives on the host: each step takes the caches [b, S, k, e] of
// every block as inputs, computes one new token per row at its own position, and returns its keys
// and values, which the host writes into the caches. The new token attends to cached positions
// < pos and to itself: the new key/value is merged into the cache view with a one-hot Where, never
// by an update of the cache inside the graph.

// decodeStep computes, for one new token per row (tokens [b], positions pos [b]), the logits [b, V]
// and every block's new key and value [b, k, e], given the caches cacheK/cacheV ([b, S, k, e] per
// block; positions ≥ pos are ignored).
func decodeStep(cfg *Config, w *Weights, tokens, pos *Node, cacheK, cacheV []*Node) (logits *Node, newK, newV []*Node) {
	g := tokens.Graph()
	b := tokens.Shape().Dimensions[0]
	s := cacheK[0].Shape().Dimensions[1]
	nh, nk, e := cfg.Heads, cfg.KVHeads, cfg.HeadDim
	ng := nh / nk
	dtype := w.Embed.DType()
	table := newRoPE(g, cfg, s, dtype)
	idx := Reshape(pos, b, 1)
	cos := Reshape(Gather(table.cos, idx), b, 1, 1, e) // [b, 1, 1, e]
	sin := Reshape(Gather(table.sin, idx), b, 1, 1, e)
	rot := func(x *Node) *Node { // rotate-half RoPE at each row's position, x [b, 1, n, e]
		x1 := Slice(x, AxisRange(), AxisRange(), AxisRange(), AxisRange(0, e/2))
		x2 := Slice(x, AxisRange(), AxisRange(), AxisRange(), AxisRange(e/2, e))
		return Add(Mul(x, cos), Mul(Concatenate([]*Node{Neg(x2), x1}, 3), sin))
	}
	// at[b, s] marks the new token's slot; visible[b, s] the positions it attends to.
	slots := Iota(g, shapes.Make(dtypes.Int32, b, s), 1)
	at := Equal(slots, BroadcastToShape(idx, slots.Shape()))
	visible := LessOrEqual(slots, BroadcastToShape(idx, slots.Shape()))
	merge := func(cache, fresh *Node) *Node { // [b, S, k, e] with row b's slot pos_b replaced by fresh [b, 1, k, e]
		if cache.DType() != dtype {
			cache = ConvertDType(cache, dtype)
		}
		mask := BroadcastToShape(Reshape(at, b, s, 1, 1), cache.Shape())
		return Where(mask, BroadcastToShape(fresh, cache.Shape()), cache)
	}

	x := Gather(w.Embed, Reshape(tokens, b, 1, 1)) // [b, 1, d]
	for i := range cfg.Layers {
		bw := &w.Blocks[i]
		a := rmsNorm(x, bw.InputNorm, cfg.RMSNormEps)
		q := Reshape(linear(a, bw.Linear[QProj], bw.QBias), b, 1, nh, e)
		k := Reshape(linear(a, bw.Linear[KProj], bw.KBias), b, 1, nk, e)
		v := Reshape(linear(a, bw.Linear[VProj], bw.VBias), b, 1, nk, e)
		if bw.QNorm != nil {
			q = rmsNorm(q, bw.QNorm, cfg.RMSNormEps)
			k = rmsNorm(k, bw.KNorm, cfg.RMSNormEps)
		}
		q, k = rot(q), rot(k)
		newK, newV = append(newK, Reshape(k, b, nk, e)), append(newV, Reshape(v, b, nk, e))
		keys := TransposeAllAxes(merge(cacheK[i], k), 0, 2, 1, 3) // [b, k, S, e]
		vals := TransposeAllAxes(merge(cacheV[i], v), 0, 2, 1, 3)
		qh := Reshape(q, b, nk, ng, e) // h = kv·g + i
		// Q:[b, k, g, e] x K:[b, k, S, e] -> [b, k, g, S]
		scores := MulScalar(DotGeneral(qh, []int{3}, []int{0, 1}, keys, []int{3}, []int{0, 1}), 1/math.Sqrt(float64(e)))
		sd := scores.DType()
		if sd == dtypes.BFloat16 || sd == dtypes.Float16 {
			scores = ConvertDType(scores, dtypes.Float32)
		}
		vis := BroadcastToShape(Reshape(visible, b, 1, 1, s), scores.Shape())
		probs := Softmax(Where(vis, scores, BroadcastToShape(ConstAsDType(g, scores.DType(), -1e30), scores.Shape())), -1)
		probs = ConvertDType(probs, dtype)
		// A:[b, k, g, S] x V:[b, k, S, e] -> [b, k, g, e]
		u := Reshape(DotGeneral(probs, []int{3}, []int{0, 1}, vals, []int{2}, []int{0, 1}), b, 1, nh*e)
		x = Add(x, linear(u, bw.Linear[OProj], bw.OBias))
		x = Add(x, mlp(bw, rmsNorm(x, bw.PostAttnNorm, cfg.RMSNormEps), nil))
	}
	logits = Reshape(head(cfg, w, x), b, cfg.VocabSize)
	return ConvertDType(logits, dtypes.Float32), newK, newV
}

// kvCache holds the host caches of one generation batch: per block, keys and values [b, S, k, e].
type kvCache struct {
	b, s, k, e int
	keys, vals []*tensors.Tensor
}

func newKVCache(cfg *Config, dtype dtypes.DType, b, s int) *kvCache {
	c := &kvCache{b: b, s: s, k: cfg.KVHeads, e: cfg.HeadDim}
	for range cfg.Layers {
		c.keys = append(c.keys, tensors.FromShape(shapes.Make(dtype, b, s, c.k, c.e)))
		c.vals = append(c.vals, tensors.FromShape(shapes.Make(dtype, b, s, c.k, c.e)))
	}
	return c
}

// fill copies prefill keys/values [b, t, k, e] into positions [0, t) of the caches.
func (c *kvCache) fill(layer int, k, v *tensors.Tensor) error {
	t := k.Shape().Dimensions[1]
	return c.copyRows(layer, k, v, t, func(bi int) int { return 0 })
}

// write stores new keys/values [b, k, e] of a block at each row's position.
func (c *kvCache) write(layer int, pos []int32, k, v *tensors.Tensor) error {
	return c.copyRows(layer, k, v, 1, func(bi int) int { return int(pos[bi]) })
}

// copyRows copies, for every batch row bi, n positions of k and v ([b, n, k, e] in memory order)
// into the caches starting at position at(bi).
func (c *kvCache) copyRows(layer int, k, v *tensors.Tensor, n int, at func(bi int) int) error {
	row := c.k * c.e
	for _, pair := range [][2]*tensors.Tensor{{c.keys[layer], k}, {c.vals[layer], v}} {
		var err error
		cerr := pair[1].ConstBytes(func(src []byte) {
			err = pair[0].MutableBytes(func(dst []byte) {
				el := len(src) / (c.b * n * row) // bytes per element
				for bi := range c.b {
					p := at(bi)
					copy(dst[(bi*c.s+p)*row*el:(bi*c.s+p+n)*row*el], src[bi*n*row*el:(bi+1)*n*row*el])
				}
			})
		})
		if cerr != nil {
			return cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// cachedGenerator runs prefill and decode steps for Generator.
type cachedGenerator struct {
	lm      *LM
	prefill *gm.Exec
	decode  *gm.Exec
}

func newCachedGenerator(lm *LM) (*cachedGenerator, error) {
	cfg := lm.Config
	prefill, err := NewStoreExec(lm.Backend, lm.Store, "prefill", func(scope *gm.Scope, g *Graph, in []*Node) []*Node {
		tokens, last := in[0], in[1]
		out := Forward(cfg, lm.Weights(tokens.Graph()), tokens, ForwardOptions{KV: true})
		b := tokens.Shape().Dimensions[0]
		idx := Concatenate([]*Node{Iota(tokens.Graph(), shapes.Make(dtypes.Int32, b, 1), 0), Reshape(last, b, 1)}, 1)
		res := []*Node{ConvertDType(Gather(out.Logits, idx), dtypes.Float32)}
		for i := range out.Keys {
			res = append(res, out.Keys[i], out.Values[i])
		}
		return res
	})
	if err != nil {
		return nil, err
	}
	decode, err := NewStoreExec(lm.Backend, lm.Store, "decode", func(scope *gm.Scope, g *Graph, in []*Node) []*Node {
		n := cfg.Layers
		logits, ks, vs := decodeStep(cfg, lm.Weights(in[0].Graph()), in[0], in[1], in[2:2+n], in[2+n:2+2*n])
		res := []*Node{logits}
		for i := range ks {
			res = append(res, ks[i], vs[i])
		}
		return res
	})
	if err != nil {
		return nil, err
	}
	prefill.SetMaxCache(32)
	decode.SetMaxCache(32)
	return &cachedGenerator{lm: lm, prefill: prefill, decode: decode}, nil
}

// run generates for one batch of prompts; see Generator.Generate.
func (cg *cachedGenerator) run(prompts [][]int, out [][]int, pickFn func(row int, logits []float64) int, stop func(row, tok int) bool, opts GenerateOptions) error {
	cfg := cg.lm.Config
	b := len(prompts)
	longest := 0
	for _, p := range prompts {
		longest = max(longest, len(p))
	}
	tp := min((longest+opts.Quantum-1)/opts.Quantum*opts.Quantum, cfg.MaxPositions)
	s := min((longest+opts.MaxNewTokens+63)/64*64, cfg.MaxPositions)
	tokens := make([][]int32, b)
	last := make([]int32, b)
	for i, p := range prompts {
		tokens[i] = make([]int32, tp)
		for j, id := range p {
			tokens[i][j] = int32(id)
		}
		last[i] = int32(len(p) - 1)
	}
	res, err := cg.prefill.Call(tokens, last)
	if err != nil {
		return errors.WithMessage(err, "model: prefill")
	}
	cache := newKVCache(cfg, res[1].Shape().DType, b, s) // the dtype keys and values are computed in
	for l := range cfg.Layers {
		if err := cache.fill(l, res[1+2*l], res[2+2*l]); err != nil {
			return err
		}
	}
	logits, err := takeLogits(res)
	if err != nil {
		return err
	}
	v := cfg.VocabSize
	pos := make([]int32, b)
	next := make([]int32, b)
	done := make([]bool, b)
	active := 0
	for i := range b {
		pos[i] = int32(len(prompts[i]))
		tok := pickFn(i, logits[i*v:(i+1)*v])
		out[i] = append(out[i], tok)
		next[i] = int32(tok)
		done[i] = stop(i, tok) || int(pos[i]) >= s
		if !done[i] {
			active++
		}
	}
	for step := 1; step < opts.MaxNewTokens && active > 0; step++ {
		args := []any{next, pos}
		for _, t := range cache.keys {
			args = append(args, t)
		}
		for _, t := range cache.vals {
			args = append(args, t)
		}
		res, err := cg.decode.Call(args...)
		if err != nil {
			return errors.WithMessage(err, "model: decode step")
		}
		for l := range cfg.Layers {
			if err := cache.write(l, pos, res[1+2*l], res[2+2*l]); err != nil {
				return err
			}
		}
		logits, err := takeLogits(res)
		if err != nil {
			return err
		}
		for i := range b {
			if done[i] {
				continue
			}
			pos[i]++
			tok := pickFn(i, logits[i*v:(i+1)*v])
			out[i] = append(out[i], tok)
			next[i] = int32(tok)
			if stop(i, tok) || int(pos[i]) >= s {
				done[i] = true
				active--
			}
		}
	}
	return nil
}

// takeLogits copies the logits (res[0]) to the host and frees every result
// tensor of a prefill or decode call (the caches have been copied by then).
func takeLogits(res []*tensors.Tensor) ([]float64, error) {
	logits, err := TensorFloat64(res[0])
	for _, r := range res {
		r.FinalizeAll()
	}
	return logits, err
}
