package train

import (
	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/model"
)

// Selected trains on a ρ share of each batch's response tokens: the top (AlphaToken and its
// ablations) or bottom values of a Valuer, or a random share. Valuation, mask and masked loss are
// part of the step graph, so one compiled graph does valuation + mask + update.
type Selected struct {
	name      string
	Valuer    *alphatoken.Valuer // nil for random selection
	Rho       float64
	Selection alphatoken.Selection
	restored  bool // the validation gradient came back with a resumed checkpoint
	// LastValLoss is J_tgt at the last refresh of the validation gradient.
	LastValLoss float64
}

// MethodNames lists the SFT methods selectable by name.
var MethodNames = []string{"full", "alphatoken", "adaptation-only", "stability-only", "direct-only", "causal-only", "random", "bottom"}

// NewSelected builds the method called name ("alphatoken", an ablation such as "direct-only", or
// "bottom") on a valuer; its Selection is top except for "bottom".
func NewSelected(name string, v *alphatoken.Valuer) (*Selected, error) {
	if v == nil {
		return nil, errors.Errorf("train: method %q needs a valuer", name)
	}
	sel := alphatoken.SelectTop
	if name == "bottom" {
		sel = alphatoken.SelectBottom
	}
	return &Selected{name: name, Valuer: v, Rho: v.Config.Rho, Selection: sel}, nil
}

// NewRandom keeps a uniformly random ρ share of each batch's response tokens.
func NewRandom(rho float64) (*Selected, error) {
	if !(rho > 0 && rho <= 1) {
		return nil, errors.Errorf("train: ρ must be in (0, 1], got %g", rho)
	}
	return &Selected{name: "random", Rho: rho, Selection: alphatoken.SelectRandom}, nil
}

func (m *Selected) Name() string { return m.name }

func (m *Selected) MetricNames() []string {
	return []string{"tokens", "kept", "full_loss", "nonfinite"}
}

// Prepare refreshes the validation gradient every ValRefresh steps (SPEC §3).
func (m *Selected) Prepare(step int) error {
	if m.Valuer == nil {
		return nil
	}
	refresh := m.Valuer.Config.ValRefresh
	if m.restored && step%refresh != 0 {
		return nil // G of the last refresh before the checkpoint is in the restored state
	}
	if step%refresh == 0 || !m.restored {
		j, err := m.Valuer.RefreshValidationGradient()
		if err != nil {
			return err
		}
		m.LastValLoss = j
		m.restored = true
	}
	return nil
}

// Resumed tells the method that the trainer restored its state at step.
func (m *Selected) Resumed(step int) {
	if m.Valuer != nil {
		m.Valuer.MarkRestored()
		m.restored = true
	}
}

func (m *Selected) Loss(_ *gm.Scope, lm *model.LM, b BatchNodes) (*Node, []*Node) {
	w := lm.Weights(b.Tokens.Graph())
	var nll, valid, values *Node
	if m.Valuer == nil {
		out := model.Forward(lm.Config, w, b.Tokens, model.ForwardOptions{})
		nll = model.TokenNLL(out.Logits, b.Targets)
		valid = NotEqual(b.Weights, ZerosLike(b.Weights))
		values = ZerosLike(nll)
	} else {
		ev := m.Valuer.Build(w, b.Tokens, b.Targets, b.Weights)
		nll, valid = ev.NLL, ev.Valid
		values = alphatoken.Combine(ev, m.Valuer.Config)
	}
	mask := alphatoken.Select(values, valid, b.Noise, m.Rho, m.Selection)
	wt := ConvertDType(b.Weights, nll.DType())
	tokens := ReduceAllSum(wt)
	kept := ReduceAllSum(ConvertDType(mask, nll.DType()))
	full := Div(ReduceAllSum(Mul(nll, wt)), MaxScalar(tokens, 1))
	nonfinite := ReduceAllSum(ConvertDType(And(valid, LogicalNot(IsFinite(values))), nll.DType()))
	return MaskedMeanLoss(nll, mask), []*Node{tokens, kept, full, nonfinite}
}
