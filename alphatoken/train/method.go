package train

import (
	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
)

// BatchNodes are the graph inputs of one step (see data.Batch for the layout).
type BatchNodes struct {
	Tokens  *Node // [b, t] int32
	Targets *Node // [b, t] int32: Tokens shifted left
	Weights *Node // [b, t] float32: 1 at label positions of the response
	Noise   *Node // [b, t] float32 uniform in [0,1), a pure function of (seed, step): for random masks
	// Segments, with Config.Packing, numbers the examples of each packed row ([b, t] int32); pass it
	// to every forward pass (model.ForwardOptions.Segments). nil without packing.
	Segments *Node
	// Extra are the inputs the method's Prepare returned for this step, in the same order.
	Extra []*Node
}

// Method decides which tokens keep their loss (or how much each one weighs). It builds the loss of
// one batch inside the step graph; the trainer then differentiates it, clips and applies AdamW.
// The methods themselves live in package methods (a registry); Full, the plain causal-LM loss, is
// here because pre-training uses it.
type Method interface {
	// Name is the method's name, as on the command line.
	Name() string
	// MetricNames names the scalar metrics Loss returns (in order). A metric named "nonfinite"
	// that is positive stops training with a NaNError.
	MetricNames() []string
	// Prepare runs on the host before the step's graph, with the step's batch: it refreshes what
	// the method recomputes (e.g. the validation gradient) and returns the step graph's extra
	// inputs (BatchNodes.Extra), such as a scheduled keep count or the batch's rows of offline
	// token scores. Their shapes may depend on the batch shape only (one graph per shape).
	Prepare(step int, batch *data.Batch) (extra []any, err error)
	// Loss returns the scalar loss to minimise and the metrics.
	Loss(scope *gm.Scope, lm *model.LM, b BatchNodes) (loss *Node, metrics []*Node)
}

// Planner is implemented by methods that need the training stream before the first step, e.g. to
// score every training example offline or to follow the data order in chunks. The trainer calls
// Plan at the start of Run with the examples and batchAt(step), the example indices of any step's
// batch (a pure function of the seed, so the same after a resume), and the run's total steps.
type Planner interface {
	Plan(examples []data.Example, batchAt func(step int) []int, steps int) error
}

// PackingSupport is implemented by methods that train on packed rows (Config.Packing): every
// forward pass of their Loss passes BatchNodes.Segments, and nothing they compute crosses from one
// example of a row to the next (e.g. a per-batch keep count over response tokens is fine; offline
// tables indexed by Batch.Index are not). The trainer refuses packing for other methods.
type PackingSupport interface{ SupportsPacking() bool }

// Full is plain training: every label position counts, loss = Σ w·l / Σ w.
type Full struct{}

func (Full) Name() string                            { return "full" }
func (Full) MetricNames() []string                   { return []string{"tokens"} }
func (Full) Prepare(int, *data.Batch) ([]any, error) { return nil, nil }
func (Full) SupportsPacking() bool                   { return true }
func (Full) Loss(_ *gm.Scope, lm *model.LM, b BatchNodes) (*Node, []*Node) {
	out := model.Forward(lm.Config, lm.Weights(b.Tokens.Graph()), b.Tokens, model.ForwardOptions{Segments: b.Segments})
	nll := model.TokenNLL(out.Logits, b.Targets)
	w := ConvertDType(b.Weights, nll.DType())
	n := ReduceAllSum(w)
	return Div(ReduceAllSum(Mul(nll, w)), MaxScalar(n, 1)), []*Node{n}
}
