package model

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/compute/dtypes/float16"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	gm "github.com/gomlx/gomlx/ml/model"
	"github.com/pkg/errors"
)

// LM is a decoder-only language model: its architecture and its weights, held as variables of a
// GoMLX store under paths derived from the HF tensor names (VarPath), so a checkpoint maps by rule.
type LM struct {
	Config  *Config
	Store   *gm.Store
	Backend compute.Backend
	// DType is the storage dtype of the weights: the store's variables, which the optimizer updates
	// and Save writes (float32 by default, also under mixed precision).
	DType dtypes.DType
	// Compute is the dtype the graphs compute in (see Precision); the zero value means DType.
	Compute dtypes.DType
}

// VarPath maps an HF tensor name to its store path: "model.layers.0.mlp.up_proj.weight" ->
// "/model/layers/0/mlp/up_proj/weight".
func VarPath(hfName string) string { return "/" + strings.ReplaceAll(hfName, ".", "/") }

// HFName is the inverse of VarPath.
func HFName(varPath string) string {
	return strings.ReplaceAll(strings.TrimPrefix(varPath, "/"), "/", ".")
}

// InitStd is the standard deviation of the normal initialisation of embeddings and linear
// weights (HF's initializer_range default).
const InitStd = 0.02

// New builds a randomly initialised model (HF's scheme: linear and embedding weights ~ N(0, 0.02²),
// norm scales 1 (weights 1, or 0 for Gemma's x·(1+w)), biases 0), deterministic in seed and
// independent of the backend.
func New(backend compute.Backend, cfg *Config, dtype dtypes.DType, seed uint64) (*LM, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lm := &LM{Config: cfg, Store: gm.NewStore(), Backend: backend, DType: dtype}
	rng := rand.New(rand.NewPCG(seed, 0x616c706861746f6b)) // "alphatok"
	for _, spec := range cfg.ParamSpecs() {
		n := 1
		for _, d := range spec.Shape {
			n *= d
		}
		vals := make([]float64, n)
		switch {
		case strings.HasSuffix(spec.Name, "norm.weight"):
			for i := range vals {
				vals[i] = cfg.family().normOne
			}
		case strings.HasSuffix(spec.Name, ".bias"):
		default:
			for i := range vals {
				vals[i] = rng.NormFloat64() * InitStd
			}
		}
		t, err := fromFloat64(vals, dtype, spec.Shape...)
		if err != nil {
			return nil, err
		}
		if _, err := lm.Store.CreateVariable(VarPath(spec.Name), t); err != nil {
			return nil, errors.WithMessagef(err, "model: creating %s", spec.Name)
		}
	}
	return lm, nil
}

// Param returns the variable holding an HF-named parameter, or nil.
func (lm *LM) Param(hfName string) *gm.Variable { return lm.Store.GetVariable(VarPath(hfName)) }

// Weights returns the nodes of every parameter in graph g (see Forward), converted to the compute
// dtype (a differentiable ConvertDType: gradients reach the stored variables in their dtype).
func (lm *LM) Weights(g *Graph) *Weights {
	compute := lm.ComputeDType()
	return WeightsFrom(lm.Config, func(name string) *Node {
		v := lm.Param(name)
		if v == nil {
			panic(errors.Errorf("model: variable for %q missing from the store", name))
		}
		return ConvertDType(v.NodeValue(g), compute)
	})
}

// WeightsFrom assembles Weights by asking get for every HF-named parameter of cfg. It lets the
// same forward pass run on store variables (LM.Weights) or on plain graph parameters (tests).
func WeightsFrom(cfg *Config, get func(hfName string) *Node) *Weights {
	w := &Weights{Embed: get("model.embed_tokens.weight"), Norm: get("model.norm.weight")}
	if cfg.TieEmbeddings {
		w.LMHead = w.Embed
	} else {
		w.LMHead = get("lm_head.weight")
	}
	w.Blocks = make([]BlockWeights, cfg.Layers)
	for i := range cfg.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		bw := &w.Blocks[i]
		bw.InputNorm = get(p + "input_layernorm.weight")
		bw.PostAttnNorm = get(p + "post_attention_layernorm.weight")
		if cfg.family().ffnNorms {
			bw.PreFFNNorm = get(p + "pre_feedforward_layernorm.weight")
			bw.PostFFNNorm = get(p + "post_feedforward_layernorm.weight")
		}
		for k := range NumLinearKinds {
			bw.Linear[k] = get(LinearName(i, k))
		}
		if cfg.QKVBias() {
			bw.QBias = get(p + "self_attn.q_proj.bias")
			bw.KBias = get(p + "self_attn.k_proj.bias")
			bw.VBias = get(p + "self_attn.v_proj.bias")
		}
		if cfg.OBias() {
			bw.OBias = get(p + "self_attn.o_proj.bias")
		}
		if cfg.QKNorm() {
			bw.QNorm = get(p + "self_attn.q_norm.weight")
			bw.KNorm = get(p + "self_attn.k_norm.weight")
		}
	}
	return w
}

// ParamTensors returns every parameter as a host tensor, in ParamSpecs order (for saving).
func (lm *LM) ParamTensors() ([]NamedTensor, error) {
	var out []NamedTensor
	for _, spec := range lm.Config.ParamSpecs() {
		v := lm.Param(spec.Name)
		if v == nil {
			return nil, errors.Errorf("model: parameter %s missing", spec.Name)
		}
		t, err := v.Value()
		if err != nil {
			return nil, errors.WithMessagef(err, "model: reading %s", spec.Name)
		}
		out = append(out, NamedTensor{Name: spec.Name, Tensor: t})
	}
	return out, nil
}

// Clone returns a deep copy of the model's parameters in a new store (e.g. a frozen reference θ_ref).
func (lm *LM) Clone() (*LM, error) {
	named, err := lm.ParamTensors()
	if err != nil {
		return nil, err
	}
	c := &LM{Config: lm.Config, Store: gm.NewStore(), Backend: lm.Backend, DType: lm.DType, Compute: lm.Compute}
	for _, nt := range named {
		vals, err := toFloat64(nt.Tensor)
		if err != nil {
			return nil, err
		}
		t, err := fromFloat64(vals, nt.Tensor.Shape().DType, nt.Tensor.Shape().Dimensions...)
		if err != nil {
			return nil, err
		}
		if _, err := c.Store.CreateVariable(VarPath(nt.Name), t); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// TokenNLL returns the per-position negative log-likelihood l[b,p] = −log softmax(logits[b,p])[targets[b,p]]
// for logits [b, t, V] and int32 targets [b, t]. Half-precision logits are upcast to float32.
// It gathers the target logit (no one-hot of size V) and uses a max-shifted log-sum-exp.
func TokenNLL(logits, targets *Node) *Node {
	dims := logits.Shape().Dimensions
	b, t, v := dims[0], dims[1], dims[2]
	if logits.DType() == dtypes.BFloat16 || logits.DType() == dtypes.Float16 {
		logits = ConvertDType(logits, dtypes.Float32)
	}
	flat := Reshape(logits, b*t, v)
	maxes := StopGradient(ReduceAndKeep(flat, ReduceMax, -1))                  // [n, 1]
	lse := Add(Log(ReduceSum(Exp(Sub(flat, maxes)), -1)), Reshape(maxes, b*t)) // [n]
	idx := Concatenate([]*Node{
		Iota(logits.Graph(), shapes.Make(dtypes.Int32, b*t, 1), 0),
		Reshape(ConvertDType(targets, dtypes.Int32), b*t, 1),
	}, 1) // [n, 2]
	picked := Gather(flat, idx) // [n]
	return Reshape(Sub(lse, picked), b, t)
}

// LogProbs returns log softmax over the vocabulary for logits [.., V], upcasting half precision.
func LogProbs(logits *Node) *Node {
	if logits.DType() == dtypes.BFloat16 || logits.DType() == dtypes.Float16 {
		logits = ConvertDType(logits, dtypes.Float32)
	}
	return LogSoftmax(logits, -1)
}

func halfToFloat64(flat any) ([]float64, error) {
	switch v := flat.(type) {
	case []bfloat16.BFloat16:
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = x.Float64()
		}
		return out, nil
	case []float16.Float16:
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = x.Float64()
		}
		return out, nil
	}
	return nil, errors.Errorf("model: cannot convert %T to float64", flat)
}

func float64ToHalf(vals []float64, flat any) error {
	switch v := flat.(type) {
	case []bfloat16.BFloat16:
		for i, x := range vals {
			v[i] = bfloat16.FromFloat64(x)
		}
		return nil
	case []float16.Float16:
		for i, x := range vals {
			v[i] = float16.FromFloat64(x)
		}
		return nil
	}
	return errors.Errorf("model: cannot convert float64 to %T", flat)
}

// SetFrozen stores t under path as a non-trainable variable of store, creating the variable or
// replacing its value (for optimizer state, reference weights, Fisher factors and the like).
func SetFrozen(store *gm.Store, path string, t *tensors.Tensor) error {
	if v := store.GetVariable(path); v != nil {
		if err := v.SetValue(t); err != nil {
			return errors.WithMessagef(err, "model: setting %s", path)
		}
		v.SetTrainable(false)
		return nil
	}
	v, err := store.CreateVariable(path, t)
	if err != nil {
		return errors.WithMessagef(err, "model: creating %s", path)
	}
	v.SetTrainable(false)
	return nil
}
