package methods

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	gm "github.com/gomlx/gomlx/ml/model"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
)

// Offline token scores: one value per label position of every training example, computed in a
// pass before training (offline caches) and fed to the step graph row by row.

// TokenTable holds one value per position of every example of a set: Values[i][p] for label
// position p of example i (0 at prompt positions). It is an input of the step graph: Rows gives
// the batch's rows.
type TokenTable struct {
	Name   string
	Values [][]float32
}

// Rows returns the table's [b, t] rows for a batch (zeros for padding rows and beyond an example).
func (tt *TokenTable) Rows(b *data.Batch) [][]float32 {
	out := make([][]float32, len(b.Tokens))
	for r := range out {
		out[r] = make([]float32, b.T())
		if i := b.Index[r]; i >= 0 {
			copy(out[r], tt.Values[i])
		}
	}
	return out
}

// labelValues calls fn for every label position of every example: fn(i, p).
func labelValues(examples []data.Example, fn func(i, p int)) {
	for i := range examples {
		for _, p := range examples[i].LabelPositions() {
			fn(i, p)
		}
	}
}

// newTable allocates a table shaped like examples.
func newTable(name string, examples []data.Example) *TokenTable {
	tt := &TokenTable{Name: name, Values: make([][]float32, len(examples))}
	for i := range examples {
		tt.Values[i] = make([]float32, len(examples[i].IDs))
	}
	return tt
}

// passOutputs runs a per-batch graph over every example in chunks of batchSize and hands each
// output's [b, t] values back with the batch (progress on the log every few seconds).
func passOutputs(env *Env, what string, lm *model.LM, examples []data.Example, fn model.GraphFn,
	extra func(b *data.Batch) []any, each func(b *data.Batch, outs [][]float64)) error {
	exec, err := model.NewStoreExec(lm.Backend, lm.Store, what, fn)
	if err != nil {
		return err
	}
	exec.SetMaxCache(64)
	bs := max(env.BatchSize, 1)
	pad := max(lm.Config.PadTokenID, 0)
	start, last := time.Now(), time.Now()
	for b0 := 0; b0 < len(examples); b0 += bs {
		idx := make([]int, 0, bs)
		longest := 0
		for i := b0; i < min(b0+bs, len(examples)); i++ {
			idx = append(idx, i)
			longest = max(longest, len(examples[i].IDs))
		}
		if longest > lm.Config.MaxPositions {
			return errors.Errorf("methods: %s: example %s has %d tokens > max_position_embeddings %d", what,
				examples[idx[0]].Source, longest, lm.Config.MaxPositions)
		}
		b := data.MakeBatch(examples, idx, bs, data.BucketLen(longest, 32, lm.Config.MaxPositions), pad)
		args := []any{b.Tokens, b.Targets, b.Weights}
		if extra != nil {
			args = append(args, extra(&b)...)
		}
		res, err := exec.Call(args...)
		if err != nil {
			return errors.WithMessagef(err, "methods: %s", what)
		}
		outs := make([][]float64, len(res))
		for i, r := range res {
			outs[i], err = model.TensorFloat64(r)
			r.FinalizeAll()
			if err != nil {
				return err
			}
		}
		each(&b, outs)
		if done := min(b0+bs, len(examples)); time.Since(last) > 5*time.Second || done == len(examples) {
			el := time.Since(start)
			eta := time.Duration(float64(el) * float64(len(examples)-done) / float64(done)).Round(time.Second)
			env.logf("%s: %d/%d examples | %s | ETA %s", what, done, len(examples), el.Round(time.Second), eta)
			last = time.Now()
		}
	}
	return nil
}

// frozenNLL is ℓ_M(p) = −log p_M(x_{p+1} | x_≤p) at every label position of every example, under a
// frozen model M, cached in env.Cache by a hash of M's weights and the examples.
func frozenNLL(env *Env, what string, lm *model.LM, examples []data.Example) (*TokenTable, error) {
	return cachedTable(env, "nll", lm, examples, func() (*TokenTable, error) {
		tt := newTable(what, examples)
		err := passOutputs(env, what, lm, examples, func(_ *gm.Scope, g *Graph, in []*Node) []*Node {
			out := model.Forward(lm.Config, lm.Weights(g), in[0], model.ForwardOptions{})
			return []*Node{model.TokenNLL(out.Logits, in[1])}
		}, nil, func(b *data.Batch, outs [][]float64) {
			t := b.T()
			for r, i := range b.Index {
				if i < 0 {
					continue
				}
				for _, p := range examples[i].LabelPositions() {
					tt.Values[i][p] = float32(outs[0][r*t+p])
				}
			}
		})
		return tt, err
	})
}

// cachedTable returns compute()'s table, read from or written to env.Cache (when set) under a key
// of kind, the model's weights and the examples' tokens.
func cachedTable(env *Env, kind string, lm *model.LM, examples []data.Example, compute func() (*TokenTable, error)) (*TokenTable, error) {
	if env.Cache == "" {
		return compute()
	}
	key, err := tableKey(kind, lm, examples)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(env.Cache, fmt.Sprintf("%s-%s.safetensors", kind, key))
	if st, _, err := model.ReadSafetensors(path); err == nil {
		if tt, err := tableFrom(st["values"], examples); err == nil {
			tt.Name = kind
			env.logf("%s: reusing %s", kind, path)
			return tt, nil
		}
	}
	tt, err := compute()
	if err != nil {
		return nil, err
	}
	var flat []float32
	for _, v := range tt.Values {
		flat = append(flat, v...)
	}
	if err := os.MkdirAll(env.Cache, 0o755); err != nil {
		return nil, errors.Wrap(err, "methods: offline cache")
	}
	t := tensors.FromFlatDataAndDimensions(flat, len(flat))
	if err := model.WriteSafetensors(path, []model.NamedTensor{{Name: "values", Tensor: t}}, map[string]string{"kind": kind}); err != nil {
		return nil, err
	}
	return tt, nil
}

func tableFrom(t *tensors.Tensor, examples []data.Example) (*TokenTable, error) {
	if t == nil || t.DType() != dtypes.Float32 {
		return nil, errors.New("methods: cached table has no float32 values")
	}
	flat := t.Value().([]float32)
	tt := &TokenTable{Values: make([][]float32, len(examples))}
	off := 0
	for i, ex := range examples {
		if off+len(ex.IDs) > len(flat) {
			return nil, errors.New("methods: cached table is shorter than the examples")
		}
		tt.Values[i] = flat[off : off+len(ex.IDs)]
		off += len(ex.IDs)
	}
	if off != len(flat) {
		return nil, errors.New("methods: cached table is longer than the examples")
	}
	return tt, nil
}

// tableKey hashes kind, every weight of lm and the examples' tokens and prompt lengths.
func tableKey(kind string, lm *model.LM, examples []data.Example) (string, error) {
	h := sha256.New()
	h.Write([]byte(kind + "\n" + string(lm.Config.Arch) + "\n"))
	named, err := lm.ParamTensors()
	if err != nil {
		return "", err
	}
	var buf [8]byte
	for _, nt := range named {
		h.Write([]byte(nt.Name))
		vals, err := model.TensorFloat64(nt.Tensor)
		if err != nil {
			return "", err
		}
		for _, v := range vals {
			binary.LittleEndian.PutUint64(buf[:], math.Float64bits(v))
			h.Write(buf[:])
		}
	}
	for _, ex := range examples {
		binary.LittleEndian.PutUint64(buf[:], uint64(ex.PromptLen))
		h.Write(buf[:])
		for _, id := range ex.IDs {
			binary.LittleEndian.PutUint64(buf[:], uint64(id))
			h.Write(buf[:])
		}
		h.Write([]byte{0xff})
	}
	return hex.EncodeToString(h.Sum(nil)[:8]), nil
}

// rankTable ranks every label-position score of the examples (higher first, ties by example then
// position): Values holds each token's 0-based rank, so "rank < k" is the global top-k. It returns
// the number of ranked tokens. Only examples with include(i) true (all for nil) are ranked; the
// others get rank 0. Ranks are float32 inputs of the step graph, exact up to 2²⁴ tokens.
func rankTable(name string, scores *TokenTable, examples []data.Example, include func(i int) bool) (*TokenTable, int, error) {
	type tok struct {
		i, p int
		v    float32
	}
	var all []tok
	labelValues(examples, func(i, p int) {
		if include == nil || include(i) {
			all = append(all, tok{i, p, scores.Values[i][p]})
		}
	})
	sort.SliceStable(all, func(a, b int) bool { return all[a].v > all[b].v })
	if len(all) > 1<<24 {
		return nil, 0, errors.Errorf("methods: %s: %d tokens to rank globally, more than float32 ranks hold exactly (2²⁴)", name, len(all))
	}
	rt := newTable(name, examples)
	for r, t := range all {
		rt.Values[t.i][t.p] = float32(r)
	}
	return rt, len(all), nil
}

// lazyTable is an input whose table is filled in later (by Plan).
type lazyTable struct{ tt *TokenTable }

func (l *lazyTable) Rows(b *data.Batch) [][]float32 { return l.tt.Rows(b) }
