package methods

import (
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
)

// alphatoken-soft (beyond the paper, its "future work"): no hard mask; every response token keeps
// its loss with a weight that grows with its value,
//
//	w_p = N · softmax_p(z_p / τ),   z = the z-score of Φ over the batch's N response tokens,
//	loss = Σ_p w_p l_p / N,
//
// so the weights average 1 over the batch (Σ w = N: the loss has full fine-tuning's scale) and are
// detached (no gradient flows into the valuation). Standardising Φ first makes τ scale-free —
// Φ's raw scale drifts over training by orders of magnitude — so τ = 1 means a token one standard
// deviation above the mean weighs e ≈ 2.7 times one at the mean; τ → ∞ is full fine-tuning and
// τ → 0 puts all the weight on the batch's best token. A batch whose Φ is constant gets uniform
// weights. Metrics: weight_max, the largest weight, and ess, the effective share of tokens
// (Σw)²/(N·Σw²) ∈ (0, 1].

func init() {
	Register(Info{Name: "alphatoken-soft", Valuation: true, Needs: []Need{NeedVal, NeedFisher, NeedRef},
		Summary: "AlphaToken soft weights: every token's loss weighted by N·softmax(z(Φ)/τ) over the batch (mean 1, detached)",
		Params:  []Param{{Name: "temperature", Default: 1, Usage: "τ of alphatoken-soft: weights N·softmax(z(Φ)/τ); larger is closer to full fine-tuning"}},
		Build:   newSoft})
}

type soft struct {
	h   *valuerHooks
	tau float64
}

func newSoft(env *Env) (train.Method, error) {
	tau := env.Param("temperature")
	if !(tau > 0) {
		return nil, errors.Errorf("methods: alphatoken-soft: --temperature must be > 0, got %g", tau)
	}
	v, err := NewValuer(env, "alphatoken-soft")
	if err != nil {
		return nil, err
	}
	return &soft{h: &valuerHooks{v: v}, tau: tau}, nil
}

func (m *soft) Name() string { return "alphatoken-soft" }
func (m *soft) MetricNames() []string {
	return []string{"tokens", "full_loss", "nonfinite", "weight_max", "ess"}
}
func (m *soft) Prepare(step int, _ *data.Batch) ([]any, error) { return nil, m.h.before(step) }
func (m *soft) Resumed(step int)                               { m.h.resumed(step) }
func (m *soft) UseAdam(st train.AdamState) error               { return useAdam(m.h.v, st) }
func (m *soft) LastValLoss() (float64, bool)                   { return m.h.lastValLoss, true }

// SoftWeights returns w = N·softmax(z(values)/τ) over the valid positions (0 elsewhere).
func SoftWeights(values, valid *Node, tau float64) *Node {
	z := alphatoken.Normalize(values, valid)
	logits := Where(valid, DivScalar(z, tau), BroadcastToShape(Infinity(values.Graph(), values.DType(), -1), values.Shape()))
	mx := ReduceAllMax(logits)
	e := Where(valid, Exp(Sub(logits, mx)), ZerosLike(values))
	n := ReduceAllSum(ConvertDType(valid, values.DType()))
	return Mul(Div(e, ReduceAllSum(e)), n)
}

func (m *soft) Loss(_ *gm.Scope, lm *model.LM, b train.BatchNodes) (*Node, []*Node) {
	v := m.h.v
	ev := v.Build(lm.Weights(b.Tokens.Graph()), b.Tokens, b.Targets, b.Weights)
	nll, valid := ev.NLL, ev.Valid
	values := alphatoken.Combine(ev, v.Config)
	w := StopGradient(SoftWeights(values, valid, m.tau))
	wt := ConvertDType(b.Weights, nll.DType())
	tokens := ReduceAllSum(wt)
	full := Div(ReduceAllSum(Mul(nll, wt)), MaxScalar(tokens, 1))
	nonfinite := ReduceAllSum(ConvertDType(And(valid, LogicalNot(IsFinite(values))), nll.DType()))
	wd := ConvertDType(w, dtypes.Float64)
	ess := Div(Square(ReduceAllSum(wd)), MaxScalar(Mul(ConvertDType(tokens, dtypes.Float64), ReduceAllSum(Square(wd))), 1e-300))
	return WeightedMeanLoss(nll, w, valid), []*Node{tokens, full, nonfinite,
		ConvertDType(ReduceAllMax(w), nll.DType()), ConvertDType(ess, nll.DType())}
}
