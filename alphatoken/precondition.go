package alphatoken

import (
	"path"
	"slices"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	. "github.com/gomlx/gomlx/support/exceptions"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/model"
)

// Optimizer-aware values (SPEC §4, this project's extension). An AdamW step on one token moves a
// weight matrix by −η (1−β1) g ⊘ (√v̂ + ε) to first order, so the value that predicts it contracts the
// token's rank-one gradient with G ⊘ (√v̂ + ε) and P ⊘ (√v̂ + ε) instead of G and P:
//
//	Φ^adam = ⟨e aᵀ, M ⊘ (√v̂ + ε)⟩,   v̂ = v / (1 − β2^s)
//
// with v the optimizer's second moment after the s steps taken so far. At s = 0 there is no v̂ and
// the plain (SGD) value is used. Only the materialised form exists: the element-wise division does
// not factorise through the ghost form's Σ_s (e·e')(a·a').

// Precondition selects the geometry the values predict a step in.
type Precondition string

const (
	PrecondNone Precondition = "none" // an SGD step (the paper's values); "" means none
	PrecondAdam Precondition = "adam" // the trainer's AdamW step: M ⊘ (√v̂ + ε)
)

// Preconditions lists the valid Precondition values, default first.
var Preconditions = []Precondition{PrecondNone, PrecondAdam}

// Adam reports whether the values are Adam-preconditioned.
func (p Precondition) Adam() bool { return p == PrecondAdam }

// AdamMoments says where the trainer's AdamW keeps its state in the model's store (GoMLX's
// optimizer.Adam layout): the second moment of parameter /S/N at /Scope/S/N_2nd_moment and the
// number of steps taken at /Scope/step, both in DType.
type AdamMoments struct {
	Scope      string // "AdamOptimizer" for the trainer's
	Beta2, Eps float64
	DType      dtypes.DType
}

func (m AdamMoments) stepPath() string { return path.Join("/", m.Scope, "step") }

// momentPath is where Adam keeps the second moment of the model parameter at store path p.
func (m AdamMoments) momentPath(p string) string {
	return path.Join("/", m.Scope, path.Dir(p), path.Base(p)+"_2nd_moment")
}

// UseAdam tells a valuer with Precondition adam where the optimizer's moments are (the trainer
// calls it through the method before the first step). Moments and the step counter that do not
// exist yet are created, zero, on the host: the optimizer adopts them on its first step, and until
// then (step 0) the values are the plain ones.
func (v *Valuer) UseAdam(m AdamMoments) error {
	if !(m.Beta2 >= 0 && m.Beta2 < 1) || !(m.Eps > 0) || m.Scope == "" {
		return errors.Errorf("alphatoken: invalid AdamW state (scope %q, β2 %g, ε %g)", m.Scope, m.Beta2, m.Eps)
	}
	if m.DType != dtypes.Float32 && m.DType != dtypes.Float64 {
		return errors.Errorf("alphatoken: AdamW state in %s: want float32 or float64", m.DType)
	}
	ensure := func(p string, dims ...int) error {
		if old := v.LM.Store.GetVariable(p); old != nil {
			if old.Shape().DType != m.DType || !slices.Equal(old.Shape().Dimensions, dims) {
				return errors.Errorf("alphatoken: optimizer state %s is %s, want %s%v", p, old.Shape(), m.DType, dims)
			}
			return nil
		}
		n := 1
		for _, d := range dims {
			n *= d
		}
		t, err := model.TensorFromFloat64(make([]float64, n), m.DType, dims...)
		if err != nil {
			return err
		}
		return model.SetFrozen(v.LM.Store, p, t)
	}
	if err := ensure(m.stepPath()); err != nil {
		return err
	}
	for _, l := range v.Layers {
		if err := ensure(m.momentPath(model.VarPath(l.Name)), l.Out, l.In); err != nil {
			return err
		}
	}
	v.adam = &m
	return nil
}

// adamDenominator returns √v̂ + ε of a scored layer's weight ([o, i], in the optimizer's dtype), or
// ones before the optimizer's first step.
func (v *Valuer) adamDenominator(g *Graph, name string) *Node {
	m := v.adam
	if m == nil {
		Panicf("alphatoken: Precondition adam needs the optimizer's state: call UseAdam (the trainer does it for its method)")
	}
	get := func(p string) *Node {
		vr := v.LM.Store.GetVariable(p)
		if vr == nil {
			Panicf("alphatoken: optimizer state %s missing from the store", p)
		}
		return vr.NodeValue(g)
	}
	mom := get(m.momentPath(model.VarPath(name)))
	step := get(m.stepPath())
	dt := mom.DType()
	bias := OneMinus(Pow(Scalar(g, dt, m.Beta2), step))                            // 1 − β2^s
	den := AddScalar(Sqrt(Div(mom, MaxScalar(bias, 1e-30))), m.Eps)                // √v̂ + ε
	started := BroadcastToShape(GreaterThan(step, ScalarZero(g, dt)), den.Shape()) // s > 0
	return Where(started, den, OnesLike(den))
}

// precondition returns M ⊘ (√v̂ + ε) in M's dtype (M itself without Precondition adam).
func (v *Valuer) precondition(mat *Node, name string) *Node {
	if !v.Config.Precondition.Adam() {
		return mat
	}
	den := v.adamDenominator(mat.Graph(), name)
	return ConvertDType(Div(ConvertDType(mat, den.DType()), den), mat.DType())
}
