package train

import (
	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"

	"github.com/alphatoken/alphatoken/model"
)

// BatchNodes are the graph inputs of one step (see data.Batch for the layout).
type BatchNodes struct {
	Tokens  *Node // [b, t] int32
	Targets *Node // [b, t] int32: Tokens shifted left
	Weights *Node // [b, t] float32: 1 at label positions of the response
	Noise   *Node // [b, t] float32 uniform in [0,1), a pure function of (seed, step): for random masks
}

// Method decides which tokens keep their loss. It builds the loss of one batch inside the step
// graph; the trainer then differentiates it, clips and applies AdamW.
type Method interface {
	// Name is the method's name, as on the command line.
	Name() string
	// MetricNames names the scalar metrics Loss returns (in order).
	MetricNames() []string
	// Prepare runs on the host before the step's graph (e.g. refreshing the validation gradient).
	Prepare(step int) error
	// Loss returns the scalar loss to minimise and the metrics.
	Loss(scope *gm.Scope, lm *model.LM, b BatchNodes) (loss *Node, metrics []*Node)
}

// Full is plain training: every label position counts, loss = Σ w·l / Σ w.
type Full struct{}

func (Full) Name() string          { return "full" }
func (Full) MetricNames() []string { return []string{"tokens"} }
func (Full) Prepare(int) error     { return nil }
func (Full) Loss(_ *gm.Scope, lm *model.LM, b BatchNodes) (*Node, []*Node) {
	out := model.Forward(lm.Config, lm.Weights(b.Tokens.Graph()), b.Tokens, model.ForwardOptions{})
	nll := model.TokenNLL(out.Logits, b.Targets)
	w := ConvertDType(b.Weights, nll.DType())
	n := ReduceAllSum(w)
	return Div(ReduceAllSum(Mul(nll, w)), MaxScalar(n, 1)), []*Node{n}
}

// MaskedMeanLoss is Σ m·l / Σ m for a mask m (0/1, no gradient) and per-position losses l.
func MaskedMeanLoss(nll, mask *Node) *Node {
	mask = StopGradient(ConvertDType(mask, nll.DType()))
	return Div(ReduceAllSum(Mul(nll, mask)), MaxScalar(ReduceAllSum(mask), 1))
}
