package alphatoken

import (
	"fmt"
	"slices"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
)

// Store layout. FrozenScope holds inputs of the valuation that never change during training (θ_ref
// and the Fisher of the scored layers); StateScope holds what the valuation recomputes (G, or the
// validation ghost vectors), which checkpoints save. Both are kept in model.AccumDType of the
// model's storage dtype (float32, or float64 for a float64 model), whatever the compute dtype: a
// bfloat16 θ_ref would round the drift W − W_ref away.
const (
	FrozenScope = "/frozen"
	StateScope  = "/alphatoken"
)

func refPath(name string) string     { return FrozenScope + "/ref" + model.VarPath(name) }
func fisherPath(name string) string  { return FrozenScope + "/fisher" + model.VarPath(name) }
func fisherAPath(name string) string { return FrozenScope + "/fisher_A" + model.VarPath(name) }
func fisherSPath(name string) string { return FrozenScope + "/fisher_S" + model.VarPath(name) }
func gradPath(name string) string    { return StateScope + "/val_grad" + model.VarPath(name) }
func ghostEPath(name string) string  { return StateScope + "/val_ghost_e" + model.VarPath(name) }
func ghostAPath(name string) string  { return StateScope + "/val_ghost_a" + model.VarPath(name) }

// Layer is one scored linear map (SPEC §2).
type Layer struct {
	Block   int
	Kind    model.LinearKind
	Name    string // HF name of its weight
	Out, In int    // d_out, d_in
	Ghost   bool   // contract with G in the ghost form
}

// ScoredLayers lists every linear map of the last k blocks, in block then kind order.
func ScoredLayers(cfg *model.Config, k int) []Layer {
	var out []Layer
	for b := cfg.Layers - k; b < cfg.Layers; b++ {
		for kind := range model.NumLinearKinds {
			s := cfg.LinearShape(kind)
			out = append(out, Layer{Block: b, Kind: kind, Name: model.LinearName(b, kind), Out: s[0], In: s[1]})
		}
	}
	return out
}

// Valuer computes AlphaToken values for a model being fine-tuned. It keeps its inputs in the
// model's store: θ_ref and the Fisher under FrozenScope, G (or the validation ghost vectors) under
// StateScope.
type Valuer struct {
	Config Config
	LM     *model.LM
	Layers []Layer

	objective Objective
	valExec   *gm.Exec
	refreshed bool
	mVal      int          // validation positions (batch × length): the s axis of the ghost vectors
	adam      *AdamMoments // the optimizer's state (Precondition adam; see UseAdam)
}

// NewValuer prepares the valuation of lm. ref is θ_ref (needed when the stability term is on and
// the Fisher kind is not none; nil otherwise). val holds the validation examples behind G (the
// first Config.ValExamples are used). batchTokens, the number of positions of a training batch,
// decides per layer between the ghost and the materialised form (Config.Ghost = auto).
func NewValuer(lm *model.LM, ref *model.LM, fisher *Fisher, val []data.Example, cfg Config, batchTokens int) (*Valuer, error) {
	if len(val) == 0 {
		return nil, errors.New("alphatoken: no validation examples")
	}
	if len(val) > cfg.ValExamples {
		val = val[:cfg.ValExamples]
	}
	idx := make([]int, len(val))
	longest, tokens := 0, 0
	for i := range val {
		idx[i] = i
		longest = max(longest, len(val[i].IDs))
		tokens += len(val[i].IDs) - val[i].PromptLen
	}
	if tokens == 0 {
		return nil, errors.Errorf("alphatoken: the validation examples (%s …) have no response tokens", val[0].Source)
	}
	t := data.BucketLen(longest, 32, lm.Config.MaxPositions)
	pad := max(lm.Config.PadTokenID, 0)
	obj := Objective{Batch: data.MakeBatch(val, idx, len(val), t, pad), Loss: MeanTokenLoss}
	return NewValuerFor(lm, ref, fisher, obj, cfg, batchTokens)
}

// Objective is the target objective J_tgt of SPEC §3 on a fixed validation batch: Loss maps the
// batch's per-position loss l [b, t] (with gradient) and its response weights [b, t] to the scalar
// J_tgt. SFT's is MeanTokenLoss; DPO's is the mean DPO loss of validation pairs (package dpo).
type Objective struct {
	Batch data.Batch
	Loss  func(nll, weights *Node) *Node
}

// MeanTokenLoss is SFT's J_tgt: Σ w·l / Σ w, pooled over every response token (SPEC §3).
func MeanTokenLoss(nll, weights *Node) *Node {
	wt := ConvertDType(weights, nll.DType())
	return Div(ReduceAllSum(Mul(nll, wt)), ReduceAllSum(wt))
}

// NewValuerFor is NewValuer with the target objective given: its validation batch and loss.
func NewValuerFor(lm *model.LM, ref *model.LM, fisher *Fisher, obj Objective, cfg Config, batchTokens int) (*Valuer, error) {
	if cfg.Ghost == "" {
		cfg.Ghost = GhostAuto
	}
	if err := cfg.Validate(lm.Config.Layers); err != nil {
		return nil, err
	}
	if obj.Loss == nil || len(obj.Batch.Tokens) == 0 || obj.Batch.NumTokens == 0 {
		return nil, errors.New("alphatoken: the target objective needs a validation batch with response tokens and a loss")
	}
	v := &Valuer{Config: cfg, LM: lm, Layers: ScoredLayers(lm.Config, cfg.Blocks), objective: obj}
	mVal := len(obj.Batch.Tokens) * obj.Batch.T()
	for i := range v.Layers {
		l := &v.Layers[i]
		switch cfg.Ghost {
		case GhostAlways:
			l.Ghost = true
		case GhostAuto:
			l.Ghost = GhostCheaper(l.Out, l.In, mVal) && !cfg.Precondition.Adam()
		}
		_ = batchTokens // the n factor is common to both forms
	}
	if cfg.Stability && cfg.Fisher != FisherNone {
		if ref == nil {
			return nil, errors.New("alphatoken: the stability term needs the reference model θ_ref")
		}
		if !ref.Config.Equal(lm.Config) {
			return nil, errors.New("alphatoken: the reference model's config differs from the model's")
		}
		if fisher == nil {
			return nil, errors.Errorf("alphatoken: Fisher kind %q needs a Fisher (estimate one with EstimateFisher or load a file)", cfg.Fisher)
		}
		if fisher.Kind != cfg.Fisher {
			return nil, errors.Errorf("alphatoken: the Fisher is %q but the config asks for %q", fisher.Kind, cfg.Fisher)
		}
		if err := fisher.Check(lm.Config, cfg.Blocks); err != nil {
			return nil, err
		}
		if err := v.setFrozen(ref, fisher); err != nil {
			return nil, err
		}
	}
	if err := v.createState(mVal); err != nil {
		return nil, err
	}
	exec, err := model.NewStoreExec(lm.Backend, lm.Store, "validation_gradient", func(scope *gm.Scope, g *Graph, in []*Node) []*Node {
		return []*Node{v.valGraph(in[0], in[1], in[2])}
	})
	if err != nil {
		return nil, err
	}
	v.valExec = exec
	return v, nil
}

// setFrozen copies θ_ref and the Fisher of the scored layers into the store (converted to
// stateDType).
func (v *Valuer) setFrozen(ref *model.LM, f *Fisher) error {
	put := func(path string, name string, get func() (*model.NamedTensor, error)) error {
		nt, err := get()
		if err != nil {
			return err
		}
		t, err := model.ConvertTensor(nt.Tensor, v.stateDType())
		if err == nil && t == nt.Tensor {
			t, err = model.CloneTensor(t) // the store must own its copy
		}
		if err != nil {
			return errors.WithMessagef(err, "alphatoken: converting %s", name)
		}
		return model.SetFrozen(v.LM.Store, path, t)
	}
	for _, l := range v.Layers {
		name := l.Name
		if err := put(refPath(name), name, func() (*model.NamedTensor, error) {
			p := ref.Param(name)
			if p == nil {
				return nil, errors.Errorf("alphatoken: θ_ref has no %s", name)
			}
			t, err := p.Value()
			return &model.NamedTensor{Name: name, Tensor: t}, err
		}); err != nil {
			return err
		}
		switch f.Kind {
		case FisherDiag:
			if err := put(fisherPath(name), name, func() (*model.NamedTensor, error) {
				return &model.NamedTensor{Name: name, Tensor: f.Diag[name]}, nil
			}); err != nil {
				return err
			}
		case FisherKFAC:
			if err := put(fisherAPath(name), name+".A", func() (*model.NamedTensor, error) {
				return &model.NamedTensor{Name: name, Tensor: f.A[name]}, nil
			}); err != nil {
				return err
			}
			if err := put(fisherSPath(name), name+".S", func() (*model.NamedTensor, error) {
				return &model.NamedTensor{Name: name, Tensor: f.S[name]}, nil
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// statePaths lists the StateScope variables (path and shape) the validation graph writes.
func (v *Valuer) statePaths(mVal int) (paths []string, dims [][]int) {
	for _, l := range v.Layers {
		if l.Ghost {
			paths = append(paths, ghostEPath(l.Name), ghostAPath(l.Name))
			dims = append(dims, []int{mVal, l.Out}, []int{mVal, l.In})
		} else {
			paths = append(paths, gradPath(l.Name))
			dims = append(dims, []int{l.Out, l.In})
		}
	}
	return paths, dims
}

// createState creates the StateScope variables on the host, zero-valued, before any graph uses them.
// (Creating a variable inside a graph that only writes it makes GoMLX v0.28.8's go backend index
// past its node table; see valGraph.)
func (v *Valuer) createState(mVal int) error {
	paths, dims := v.statePaths(mVal)
	for i, p := range paths {
		if old := v.LM.Store.GetVariable(p); old != nil && slices.Equal(old.Shape().Dimensions, dims[i]) {
			old.SetTrainable(false)
			continue
		}
		n := 1
		for _, d := range dims[i] {
			n *= d
		}
		t, err := model.TensorFromFloat64(make([]float64, n), v.stateDType(), dims[i]...)
		if err != nil {
			return err
		}
		if err := model.SetFrozen(v.LM.Store, p, t); err != nil {
			return err
		}
	}
	v.mVal = mVal
	return nil
}

// stateDType is the dtype of the valuation's stored inputs and state (see FrozenScope).
func (v *Valuer) stateDType() dtypes.DType { return model.AccumDType(v.LM.DType) }

// MarkRestored declares that the validation gradient was restored from a checkpoint's state.
func (v *Valuer) MarkRestored() { v.refreshed = true }

// needsStability reports whether the proxy terms are computed.
func (v *Valuer) needsStability() bool { return v.Config.Stability && v.Config.Fisher != FisherNone }

// RefreshValidationGradient recomputes G = ∂J_tgt/∂W (or the ghost vectors) at the current weights
// and returns J_tgt (SPEC §3).
func (v *Valuer) RefreshValidationGradient() (float64, error) {
	if !v.Config.Adaptation {
		v.refreshed = true
		return 0, nil
	}
	b := v.objective.Batch
	outs, err := v.valExec.Call(b.Tokens, b.Targets, b.Weights)
	if err != nil {
		return 0, model.ExplainOOM(errors.WithMessagef(err, "alphatoken: validation gradient (%d examples × %d tokens; --val-examples sets the count)", len(b.Tokens), b.T()))
	}
	vals, err := model.TensorFloat64(outs[0])
	if err != nil {
		return 0, err
	}
	v.refreshed = true
	return vals[0], nil
}

// valGraph: J_tgt (the objective's loss; SFT: Σ w·l / Σ w) over the validation batch; G^l = ∂J/∂W^l
// for materialised layers, e'_s = ∂J/∂z'_s and a'_s for ghost layers — written into StateScope
// variables.
func (v *Valuer) valGraph(tokens, targets, weights *Node) *Node {
	g := tokens.Graph()
	lm := v.LM
	// The state variables' parameters must exist before the nodes computing them: the go backend
	// sizes its execution table by the last node an output needs, and a parameter created after that
	// (and never read) would fall outside it.
	paths, _ := v.statePaths(v.mVal)
	for _, p := range paths {
		_ = lm.Store.GetVariable(p).NodeValue(g)
	}
	w := lm.Weights(g)
	anyGhost := false
	for _, l := range v.Layers {
		anyGhost = anyGhost || l.Ghost
	}
	opts := model.ForwardOptions{}
	if anyGhost {
		opts.TapBlocks = v.Config.Blocks
	}
	out := model.Forward(lm.Config, w, tokens, opts)
	nll := model.TokenNLL(out.Logits, targets)
	j := v.objective.Loss(nll, weights)
	var wrt []*Node
	for _, l := range v.Layers {
		if l.Ghost {
			wrt = append(wrt, v.tap(out.Taps, l).Z)
		} else {
			wrt = append(wrt, w.Blocks[l.Block].Linear[l.Kind])
		}
	}
	grads := Gradient(j, wrt...)
	store := lm.Store
	set := func(path string, value *Node) {
		store.GetVariable(path).SetNodeValue(ConvertDType(value, v.stateDType()))
	}
	for i, l := range v.Layers {
		if l.Ghost {
			set(ghostEPath(l.Name), flatten2(grads[i]))
			set(ghostAPath(l.Name), flatten2(v.tap(out.Taps, l).A))
		} else {
			set(gradPath(l.Name), grads[i])
		}
	}
	return j
}

func (v *Valuer) tap(taps []*model.BlockTaps, l Layer) model.LinearTap {
	return taps[l.Block-(v.LM.Config.Layers-v.Config.Blocks)].Linear[l.Kind]
}

// Evaluation is what the valuation graph returns for one batch.
type Evaluation struct {
	Out   *model.Output // the forward pass (with taps of the scored blocks)
	NLL   *Node         // [b, t] per-position loss l_p of the unmodified model
	Valid *Node         // [b, t] bool: ω ≠ 0, the label positions R
	// The four components at label positions p ([b, t], 0 elsewhere and where switched off).
	TgtDir, TgtCau, PrxDir, PrxCau *Node
}

// Build computes the four components for a batch inside a graph (SPEC §4). omega [b, t] is the
// per-token loss weight (1 at SFT response positions; sign and pair weight for DPO branches): the
// direct errors are e_p = ω_p ∂l_p/∂z_p and the causal path differentiates L = Σ_p ω_p l_p.
// w are the weights the forward pass runs with (LM.Weights: in the compute dtype); the drift
// W − W_ref of the stability proxy is taken from the stored weights (the float32 master weights
// under mixed precision). The components come in model.AccumDType of the compute dtype.
func (v *Valuer) Build(w *model.Weights, tokens, targets, omega *Node) *Evaluation {
	return v.BuildWith(w, tokens, targets, func(*Node) *Node { return omega })
}

// BuildWith is Build with ω computed from the batch's per-position loss l [b, t] of the same
// forward pass (detached): a DPO branch's ω depends on the pair's log-ratio (package dpo).
func (v *Valuer) BuildWith(w *model.Weights, tokens, targets *Node, omegaOf func(nll *Node) *Node) *Evaluation {
	g := tokens.Graph()
	cfg, lmc := v.Config, v.LM.Config
	if cfg.Adaptation && !v.refreshed {
		Panicf("alphatoken: the validation gradient was never computed: call RefreshValidationGradient first")
	}
	needDirect, needCausal := cfg.Direct, cfg.Causal
	out := model.Forward(lmc, w, tokens, model.ForwardOptions{TapBlocks: cfg.Blocks, Diagonal: needDirect})
	nll := model.TokenNLL(out.Logits, targets)
	om := StopGradient(ConvertDType(omegaOf(StopGradient(nll)), nll.DType()))
	ev := &Evaluation{Out: out, NLL: nll, Valid: NotEqual(om, ZerosLike(om))}

	// One backward pass yields both: e_p from the diagonal copy, g_r from the unmodified blocks.
	var loss *Node
	var wrt []*Node
	first := lmc.Layers - cfg.Blocks
	if needDirect {
		loss = ReduceAllSum(Mul(model.TokenNLL(out.DiagLogits, targets), om))
		for _, l := range v.Layers {
			wrt = append(wrt, out.DiagTaps[l.Block-first].Linear[l.Kind].Z)
		}
	}
	if needCausal {
		lc := ReduceAllSum(Mul(nll, om))
		if loss == nil {
			loss = lc
		} else {
			loss = Add(loss, lc)
		}
		for _, bt := range out.Taps {
			wrt = append(wrt, bt.U)
		}
	}
	grads := Gradient(loss, wrt...)
	var eDirect, gU []*Node
	if needDirect {
		eDirect, grads = grads[:len(v.Layers)], grads[len(v.Layers):]
	}
	if needCausal {
		gU = grads
	}

	dims := tokens.Shape().Dimensions
	b, t := dims[0], dims[1]
	zero := Zeros(g, shapes.Make(nll.DType(), b, t))
	ev.TgtDir, ev.TgtCau, ev.PrxDir, ev.PrxCau = zero, zero, zero, zero
	p := map[string]*Node{}
	if v.needsStability() {
		for _, l := range v.Layers {
			if l.Kind == model.VProj || needDirect {
				p[l.Name] = v.precondition(v.proxyGradient(g, l.Name), l.Name)
			}
		}
	}
	if needDirect {
		for i, l := range v.Layers {
			e := flatten2(eDirect[i])
			a := flatten2(v.tap(out.Taps, l).A)
			if cfg.Adaptation {
				ev.TgtDir = Add(ev.TgtDir, Reshape(v.targetContract(l, e, a), b, t))
			}
			if v.needsStability() {
				ev.PrxDir = Add(ev.PrxDir, Reshape(Contract(e, p[l.Name], a), b, t))
			}
		}
	}
	if needCausal {
		for i, bt := range out.Taps {
			l := v.Layers[i*int(model.NumLinearKinds)+int(model.VProj)]
			e := flatten2(CausalErrors(bt.Probs, gU[i], lmc.KVHeads, cfg.Window))
			x := flatten2(bt.Linear[model.VProj].A)
			// Values at context position c belong to the token predicted at p = c−1.
			if cfg.Adaptation {
				ev.TgtCau = Add(ev.TgtCau, ShiftLeft(Reshape(v.targetContract(l, e, x), b, t), 1, 0))
			}
			if v.needsStability() {
				ev.PrxCau = Add(ev.PrxCau, ShiftLeft(Reshape(Contract(e, p[l.Name], x), b, t), 1, 0))
			}
		}
	}
	valid := ConvertDType(ev.Valid, nll.DType())
	ev.TgtDir, ev.TgtCau = Mul(ev.TgtDir, valid), Mul(ev.TgtCau, valid)
	ev.PrxDir, ev.PrxCau = Mul(ev.PrxDir, valid), Mul(ev.PrxCau, valid)
	return ev
}

// targetContract contracts rank-one token gradients e aᵀ with G^l (G^l ⊘ (√v̂+ε) with Precondition
// adam), in the layer's chosen form.
func (v *Valuer) targetContract(l Layer, e, a *Node) *Node {
	g := e.Graph()
	store := v.LM.Store
	get := func(path string) *Node {
		vr := store.GetVariable(path)
		if vr == nil {
			Panicf("alphatoken: %s missing: call RefreshValidationGradient first", path)
		}
		return vr.NodeValue(g)
	}
	if l.Ghost {
		return GhostDot(e, a, get(ghostEPath(l.Name)), get(ghostAPath(l.Name)))
	}
	return Contract(e, v.precondition(get(gradPath(l.Name)), l.Name), a)
}

// proxyGradient is P^l = ∂J_prx/∂W^l (SPEC §3): F ⊙ (W − W_ref) or S (W − W_ref) A, in stateDType,
// from the stored weight W (the float32 master under mixed precision, not its bfloat16 copy).
// Build divides it by √v̂+ε with Precondition adam.
func (v *Valuer) proxyGradient(g *Graph, name string) *Node {
	store := v.LM.Store
	get := func(path string) *Node {
		vr := store.GetVariable(path)
		if vr == nil {
			Panicf("alphatoken: %s missing from the store", path)
		}
		return vr.NodeValue(g)
	}
	weight := v.LM.Param(name)
	if weight == nil {
		Panicf("alphatoken: %s missing from the model", name)
	}
	drift := Sub(ConvertDType(StopGradient(weight.NodeValue(g)), v.stateDType()), get(refPath(name)))
	switch v.Config.Fisher {
	case FisherDiag:
		return Mul(get(fisherPath(name)), drift)
	case FisherKFAC:
		sd := DotGeneral(get(fisherSPath(name)), []int{1}, nil, drift, []int{0}, nil) // [o, i]
		return DotGeneral(sd, []int{1}, nil, get(fisherAPath(name)), []int{0}, nil)
	}
	Panicf("alphatoken: no proxy gradient for Fisher kind %q", v.Config.Fisher)
	return nil
}

// CausalErrors returns, for every context position c, the value-propagation error of SPEC §4,
//
//	ẽ_c = Σ_{h in c's KV group} Σ_{r=c}^{min(c+W−1, T−1)} A^h_{r,c} g^h_r,
//
// laid out like the value projection's output [b, t, k·e], so that C_p = ẽ_c ⊗ x_c. probs is the
// [b, h, t, s] attention tap and gU = ∂L/∂u in the tap's [b·k, g·t, e] layout. With W ≥ T, ẽ_c is
// exactly ∂L/∂v_c.
func CausalErrors(probs, gU *Node, kvHeads, window int) *Node {
	d := probs.Shape().Dimensions
	b, h, t := d[0], d[1], d[2]
	grp := h / kvHeads
	e := gU.Shape().Dimensions[2]
	gU.AssertDims(b*kvHeads, grp*t, e)
	g := probs.Graph()
	// Window mask [t(r), s(c)]: 0 ≤ r − c ≤ W − 1.
	rows := Iota(g, shapes.Make(dtypes.Int32, t, t), 0)
	cols := Iota(g, shapes.Make(dtypes.Int32, t, t), 1)
	diff := Sub(rows, cols)
	inWindow := And(GreaterOrEqual(diff, ZerosLike(diff)), LessThan(diff, Scalar(g, dtypes.Int32, window)))
	p := Reshape(probs, b*kvHeads, grp, t, t)
	p = Mul(p, ExpandLeftToRank(ConvertDType(inWindow, p.DType()), 4))
	p = Reshape(p, b*kvHeads, grp*t, t)
	// Aᵀ:[b·k, (g·t), s] x g:[b·k, (g·t), e] -> [b·k, s, e]: sums over r and the heads of the group.
	ec := DotGeneral(p, []int{1}, []int{0}, ConvertDType(gU, p.DType()), []int{1}, []int{0})
	ec = TransposeAllAxes(Reshape(ec, b, kvHeads, t, e), 0, 2, 1, 3)
	return Reshape(ec, b, t, kvHeads*e)
}

func (l Layer) String() string { return fmt.Sprintf("%s [%d×%d]", l.Name, l.Out, l.In) }
