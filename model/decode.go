package model

import (
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	gm "github.com/gomlx/gomlx/ml/model"
	"github.com/pkg/errors"
)

// Incremental decoding with the key/value cache kept on the device.
//
// A batch of b prompts is left-padded to tp slots, so every row writes its next token at the same
// cache slot: row i's prompt occupies slots [pad_i, tp), its n-th new token is fed at slot tp+n−1, and
// slot c holds position c − pad_i. Each block's cache is [b, k, S, e] (keys after q/k-norm and RoPE,
// values), S = tp + room for the new tokens.
//
//	prefill: tokens [b, tp] at slot 0 → the caches, and the first new token of every row
//	decode:  the last tokens [b] at slot tp+n−1 → the updated caches, and the next tokens
//
// Both are one compiled graph each (forwardAt) that runs the same blocks as training (block,
// attention.go) with a context of per-row positions and visibility (query at slot r sees slots
// pad_i ≤ c ≤ r), writes the new keys and values with DynamicUpdateSlice, and samples in the graph
// (sample.go). The caches are outputs of one step and donated inputs of the next, so they never
// leave the device; per token only the ids [b] (and the sampling keys [b, 2]) cross. (The go backend
// updates a donated buffer in place; XLA copies the cache inside the step, since GoMLX compiles
// without input/output aliasing: device memory bandwidth, not a transfer.)

// forwardAt runs the decoder blocks over tokens [b, t] placed at cache slots [slot, slot+t) of every
// row, whose first real slot is pad [b] (int32): slot c has position c − pad_i, and the query at slot
// r sees the keys at slots pad_i ≤ c ≤ r (and itself, so a padding query is never fully masked;
// on sliding_attention layers only those with r − c < sliding_window).
// Every block writes its new keys and values into its cache (updated in place in caches[i]). It
// returns the last block's output [b, t, d] (before the final norm; see lastLogits).
func forwardAt(cfg *Config, w *Weights, tokens, slot, pad *Node, caches []*kvCache) *Node {
	g := tokens.Graph()
	b, t := tokens.Shape().Dimensions[0], tokens.Shape().Dimensions[1]
	s := caches[0].Slots
	i32 := dtypes.Int32
	query := Add(BroadcastToShape(slot, shapes.Make(i32, 1, t)), Iota(g, shapes.Make(i32, 1, t), 1)) // [1, t]: slot of each query
	first := Reshape(pad, b, 1)
	pos := Max(Sub(BroadcastToShape(query, shapes.Make(i32, b, t)), BroadcastToShape(first, shapes.Make(i32, b, t))), ZerosLike(Iota(g, shapes.Make(i32, b, t), 1)))
	grid := shapes.Make(i32, b, t, s)
	key := Iota(g, grid, 2)
	r := BroadcastToShape(Reshape(query, 1, t, 1), grid)
	visible := Or(And(GreaterOrEqual(key, BroadcastToShape(Reshape(first, b, 1, 1), grid)), LessOrEqual(key, r)), Equal(key, r))
	dtype := w.Embed.DType()
	ctx := &attnContext{rope: newRoPE(g, cfg, s, dtype).at(pos), visible: visible}
	if cfg.HasSlidingLayers() { // slots differ from positions by the row's offset: the window is the same
		ctx.sliding = &attnContext{rope: ropeTable(g, cfg.LocalInvFrequencies(), s, dtype).at(pos),
			visible: And(visible, inWindow(r, key, cfg.SlidingWindow))}
	}
	for _, c := range caches {
		c.slot = slot
	}
	fam := cfg.family()
	x := fam.embed(cfg, w, tokens) // [b, t, d]
	for i := range cfg.Layers {
		x = fam.block(cfg, &w.Blocks[i], x, ctx.layer(cfg, i), false, nil, caches[i])
	}
	return x
}

// lastLogits returns the logits [b, V] at the last slot of forwardAt's output x [b, t, d] (the
// only slot whose logits generation needs: the LM head is not applied to the others).
func lastLogits(cfg *Config, w *Weights, x *Node) *Node {
	b, t := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
	last := Slice(x, AxisRange(), AxisRange(t-1, t)) // [b, 1, d]
	return Reshape(head(cfg, w, last), b, cfg.VocabSize)
}

// sampling is what a compiled prefill or decode graph bakes in.
type sampling struct {
	slots             int // S (prefill only: decode reads it from the caches)
	temperature, topP float64
}

// cachedGenerator holds the compiled prefill and decode graphs of a Generator.
type cachedGenerator struct {
	lm              *LM
	prefill, decode map[sampling]*gm.Exec
}

func newCachedGenerator(lm *LM) *cachedGenerator {
	return &cachedGenerator{lm: lm, prefill: map[sampling]*gm.Exec{}, decode: map[sampling]*gm.Exec{}}
}

// execs returns (compiling lazily) the prefill graph for S slots and the decode graph of opts's sampling.
func (cg *cachedGenerator) execs(slots int, opts GenerateOptions) (prefill, decode *gm.Exec, err error) {
	cfg := cg.lm.Config
	pk := sampling{slots: slots, temperature: opts.Temperature, topP: opts.TopP}
	dk := sampling{temperature: opts.Temperature, topP: opts.TopP}
	if prefill = cg.prefill[pk]; prefill == nil {
		prefill, err = NewStoreExec(cg.lm.Backend, cg.lm.Store, "prefill", func(scope *gm.Scope, g *Graph, in []*Node) []*Node {
			tokens, pad, keys := in[0], in[1], in[2]
			caches := make([]*kvCache, cfg.Layers)
			for i := range caches {
				caches[i] = &kvCache{Slots: slots}
			}
			w := cg.lm.Weights(g)
			logits := lastLogits(cfg, w, forwardAt(cfg, w, tokens, ScalarZero(g, dtypes.Int32), pad, caches))
			return append([]*Node{sampleTokens(logits, keys, opts.Temperature, opts.TopP)}, cacheNodes(caches)...)
		})
		if err != nil {
			return nil, nil, err
		}
		prefill.SetMaxCache(16)
		cg.prefill[pk] = prefill
	}
	if decode = cg.decode[dk]; decode == nil {
		decode, err = NewStoreExec(cg.lm.Backend, cg.lm.Store, "decode", func(scope *gm.Scope, g *Graph, in []*Node) []*Node {
			last, slot, pad, keys := in[0], in[1], in[2], in[3]
			caches := make([]*kvCache, cfg.Layers)
			for i := range caches {
				caches[i] = &kvCache{k: in[4+2*i], v: in[5+2*i], Slots: in[4+2*i].Shape().Dimensions[2]}
			}
			b := last.Shape().Dimensions[0]
			w := cg.lm.Weights(g)
			logits := lastLogits(cfg, w, forwardAt(cfg, w, Reshape(last, b, 1), slot, pad, caches))
			return append([]*Node{sampleTokens(logits, keys, opts.Temperature, opts.TopP)}, cacheNodes(caches)...)
		})
		if err != nil {
			return nil, nil, err
		}
		decode.SetMaxCache(16)
		cg.decode[dk] = decode
	}
	return prefill, decode, nil
}

// cacheNodes lists every block's keys and values, in the order the decode graph takes them.
func cacheNodes(caches []*kvCache) []*Node {
	var out []*Node
	for _, c := range caches {
		out = append(out, c.k, c.v)
	}
	return out
}

// run generates for one batch of rows (see Generator.Generate): a prefill, then one decode step per
// new token until every row has stopped.
func (cg *cachedGenerator) run(rows []*genRow, opts GenerateOptions) error {
	cfg := cg.lm.Config
	b := len(rows)
	longest := 0
	for _, r := range rows {
		longest = max(longest, len(r.prompt))
	}
	tp := min(roundUp(longest, opts.Quantum), cfg.MaxPositions)
	slots := tp + roundUp(max(opts.MaxNewTokens-1, 1), opts.Quantum)
	prefill, decode, err := cg.execs(slots, opts)
	if err != nil {
		return err
	}
	tokens := make([][]int32, b)
	padding := make([]int32, b)
	for i, r := range rows {
		tokens[i] = make([]int32, tp)
		padding[i] = int32(tp - len(r.prompt))
		for j, id := range r.prompt {
			tokens[i][int(padding[i])+j] = int32(id)
		}
	}
	pad := tensors.FromValue(padding)
	defer pad.FinalizeAll()
	res, err := prefill.Call(tokens, pad, sampleKeys(rows, opts.Seed, 0))
	if err != nil {
		return errors.WithMessage(err, "model: prefill")
	}
	ids, caches := res[0], res[1:]
	defer func() {
		ids.FinalizeAll()
		for _, c := range caches {
			if c != nil {
				c.FinalizeAll()
			}
		}
	}()
	for step := 0; ; step++ {
		next, err := tensors.CopyFlatData[int32](ids)
		if err != nil {
			return errors.WithMessage(err, "model: reading sampled ids")
		}
		active := 0
		for i, r := range rows {
			if r.take(int(next[i]), opts) {
				active++
			}
		}
		if active == 0 || step+1 >= opts.MaxNewTokens {
			return nil
		}
		args := []any{ids, int32(tp + step), pad, sampleKeys(rows, opts.Seed, step+1)}
		for i, c := range caches {
			d, err := DonateTensorBuffer(c, cg.lm.Backend, 0)
			if err != nil {
				return errors.WithMessage(err, "model: donating the key/value cache")
			}
			caches[i] = nil
			args = append(args, d)
		}
		res, err := decode.Call(args...)
		if err != nil {
			return errors.WithMessage(err, "model: decode step")
		}
		ids.FinalizeAll()
		ids, caches = res[0], res[1:]
	}
}

// sampleKeys returns the sampling keys [b, 2] of every row's step-th new token.
func sampleKeys(rows []*genRow, seed uint64, step int) [][]uint32 {
	keys := make([][]uint32, len(rows))
	for i, r := range rows {
		k := SampleKey(seed, r.index, step)
		keys[i] = k[:]
	}
	return keys
}

func roundUp(n, q int) int { return (n + q - 1) / q * q }
