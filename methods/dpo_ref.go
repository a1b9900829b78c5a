package methods

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	gm "github.com/gomlx/gomlx/ml/model"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
)

// Reference (and oracle) log-probabilities of preference data: one float64 per label position of
// every example, computed by a pass before training and cached under Env.Cache, keyed by a hash of
// the model's weights and the examples' tokens (TRL's precompute_ref_log_probs; float64, so that a
// float64 run compares exactly with an independent implementation).

// PositionNLL is −log p_M(x_{p+1} | x_≤p) of a frozen model M at every label position of every
// example (0 elsewhere), cached in env.Cache under kind.
func PositionNLL(env *Env, kind string, lm *model.LM, examples []data.Example) ([][]float64, error) {
	return cachedF64(env, kind, lm, examples, func() ([][]float64, error) {
		out := make([][]float64, len(examples))
		for i := range examples {
			out[i] = make([]float64, len(examples[i].IDs))
		}
		err := passOutputs(env, kind, lm, examples, func(_ *gm.Scope, g *Graph, in []*Node) []*Node {
			o := model.Forward(lm.Config, lm.Weights(g), in[0], model.ForwardOptions{})
			return []*Node{ConvertDType(model.TokenNLL(o.Logits, in[1]), dtypes.Float64)}
		}, nil, func(b *data.Batch, outs [][]float64) {
			t := b.T()
			for r, i := range b.Index {
				if i < 0 {
					continue
				}
				for _, p := range examples[i].LabelPositions() {
					out[i][p] = outs[0][r*t+p]
				}
			}
		})
		return out, err
	})
}

// cachedF64 is cachedTable for float64 tables.
func cachedF64(env *Env, kind string, lm *model.LM, examples []data.Example, compute func() ([][]float64, error)) ([][]float64, error) {
	if env.Cache == "" {
		return compute()
	}
	key, err := tableKey(kind, lm, examples)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(env.Cache, fmt.Sprintf("%s-%s.safetensors", kind, key))
	if st, _, err := model.ReadSafetensors(path); err == nil {
		if tt, err := f64TableFrom(st["values"], examples); err == nil {
			env.logf("%s: reusing %s", kind, path)
			return tt, nil
		}
	}
	tt, err := compute()
	if err != nil {
		return nil, err
	}
	var flat []float64
	for _, v := range tt {
		flat = append(flat, v...)
	}
	if err := os.MkdirAll(env.Cache, 0o755); err != nil {
		return nil, errors.Wrap(err, "methods: offline cache")
	}
	t := tensors.FromFlatDataAndDimensions(flat, len(flat))
	if err := model.WriteSafetensors(path, []model.NamedTensor{{Name: "values", Tensor: t}}, map[string]string{"kind": kind}); err != nil {
		return nil, err
	}
	env.logf("%s: cached in %s", kind, path)
	return tt, nil
}

func f64TableFrom(t *tensors.Tensor, examples []data.Example) ([][]float64, error) {
	if t == nil || t.DType() != dtypes.Float64 {
		return nil, errors.New("methods: cached table has no float64 values")
	}
	flat := t.Value().([]float64)
	out := make([][]float64, len(examples))
	off := 0
	for i, ex := range examples {
		if off+len(ex.IDs) > len(flat) {
			return nil, errors.New("methods: cached table is shorter than the examples")
		}
		out[i] = flat[off : off+len(ex.IDs)]
		off += len(ex.IDs)
	}
	if off != len(flat) {
		return nil, errors.New("methods: cached table is longer than the examples")
	}
	return out, nil
}

// onlineNLL computes a frozen model's per-position loss on a batch, at every step.
type onlineNLL struct {
	lm   *model.LM
	exec *gm.Exec
}

func newOnlineNLL(lm *model.LM, name string) (*onlineNLL, error) {
	exec, err := model.NewStoreExec(lm.Backend, lm.Store, name, func(_ *gm.Scope, g *Graph, in []*Node) []*Node {
		o := model.Forward(lm.Config, lm.Weights(g), in[0], model.ForwardOptions{})
		return []*Node{ConvertDType(model.TokenNLL(o.Logits, in[1]), dtypes.Float64)}
	})
	if err != nil {
		return nil, err
	}
	exec.SetMaxCache(32)
	return &onlineNLL{lm: lm, exec: exec}, nil
}

// rows returns [rows][t] per-position losses of tokens/targets (0 where weights is 0).
func (o *onlineNLL) rows(tokens, targets [][]int32, weights [][]float32) ([][]float64, error) {
	res, err := o.exec.Call(tokens, targets)
	if err != nil {
		return nil, errors.WithMessage(err, "methods: reference forward")
	}
	flat, err := model.TensorFloat64(res[0])
	res[0].FinalizeAll()
	if err != nil {
		return nil, err
	}
	t := len(tokens[0])
	out := make([][]float64, len(tokens))
	for r := range out {
		out[r] = make([]float64, t)
		for p := range t {
			if weights[r][p] != 0 {
				out[r][p] = flat[r*t+p]
			}
		}
	}
	return out, nil
}
