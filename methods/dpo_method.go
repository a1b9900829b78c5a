package methods

import (
	"time"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/dpo"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
)

// The generic DPO method: reference log-probabilities (precomputed or online), the step's keep
// counts per branch from the ρ schedule, the method's loss over the pair batch, and the metrics
// every DPO run logs (among them how the mask treats the pairs' shared response prefix and the
// fork after it: dpo.CountTwins). Step-graph inputs after the batch: Extra[0] the reference's per-position
// loss [2n, t] (float64), Extra[1], Extra[2] the chosen and rejected keep counts (int32; shared
// thresholds: the batch's count and 0), Extra[3] ρ (float32), then the method's own inputs.

// dpoKeep are the step's keep counts and ρ.
type dpoKeep struct{ chosen, rejected, rho *Node }

// dpoOut is what a DPO method's loss builder returns: the loss, the policy's per-position loss
// nll (with gradient; for the reward metrics), the keep mask (nil: every token) and its own
// metrics; nonfinite counts token scores that are NaN or ±Inf (training stops).
type dpoOut struct {
	loss, nll, keep, nonfinite *Node
	own                        []*Node
}

type dpoLossFn func(lm *model.LM, b train.BatchNodes, ref *Node, k dpoKeep, ins []*Node) dpoOut

type dpoMethod struct {
	name    string
	c       dpo.Config
	sched   rhoSchedule
	selects bool // keep counts come from ρ
	noRho   bool // a threshold mask: ρ is logged as 0
	// refFree: the loss does not read the reference (SePO, ConfPO's SimPO form); its log-probs
	// only feed the logged rewards, so they are always precomputed, never a per-step forward.
	refFree bool
	// refMode: precompute (a table filled by Plan) or online (a reference forward per step).
	refMode  RefLogps
	refLM    *model.LM
	cacheEnv *Env
	refTable [][]float64
	refExec  *onlineNLL
	// inputs are per-row [2n, t] inputs of the step graph; stepInputs any further ones, computed
	// from the step's batch (e.g. TI-DPO's sampled anchors).
	inputs     []input
	stepInputs func(step int, b *data.Batch, ref [][]float64) ([]any, error)
	build      dpoLossFn
	metrics    []string
	before     func(step int) error
	plan       func(examples []data.Example) error
	resumed    func(step int)
	valLoss    func() float64
	offline    time.Duration
}

// newDPOMethod is a DPO method named name over env, with loss builder build.
func newDPOMethod(env *DPOEnv, name string, build dpoLossFn) *dpoMethod {
	m := &dpoMethod{name: name, c: env.DPO, sched: env.schedule(), refMode: env.RefLogps, refLM: env.Ref,
		cacheEnv: &env.Env, build: build}
	// A threshold mask (ConfPO's) has no k unless budget matched; its logged ρ is then 0.
	m.selects = env.info.Selects && (!env.info.Threshold || env.Options.BudgetMatched)
	m.noRho = env.info.Threshold && !env.Options.BudgetMatched
	return m
}

func (m *dpoMethod) Name() string { return m.name }

func (m *dpoMethod) MetricNames() []string {
	return append([]string{"tokens_chosen", "tokens_rejected", "kept_chosen", "kept_rejected", "reward_accuracy",
		"reward_chosen", "reward_rejected", "reward_margin", "nonfinite", "rho",
		"twin_tokens", "twin_kept_chosen", "twin_kept_rejected", "twin_onesided", "fork_tokens", "fork_kept_chosen", "fork_kept_rejected"}, m.metrics...)
}

// Plan implements train.Planner: the reference table (precompute) and the method's offline work.
func (m *dpoMethod) Plan(examples []data.Example, _ func(int) []int, _ int) error {
	start := time.Now()
	defer func() { m.offline += time.Since(start) }()
	if m.refMode == RefOnline && !m.refFree {
		var err error
		if m.refExec, err = newOnlineNLL(m.refLM, "ref_logps"); err != nil {
			return err
		}
	} else {
		t, err := PositionNLL(m.cacheEnv, "ref-logps", m.refLM, examples)
		if err != nil {
			return err
		}
		m.refTable = t
		m.cacheEnv.logf("%s: reference log-probabilities of %d pairs ready in %s", m.name, len(examples)/2, time.Since(start).Round(time.Millisecond))
	}
	if m.plan != nil {
		return m.plan(examples)
	}
	return nil
}

// OfflineSeconds is the time spent outside the step graph before training (reference and
// method tables).
func (m *dpoMethod) OfflineSeconds() float64 { return m.offline.Seconds() }

// Resumed is called by the trainer after it restored a checkpoint at step.
func (m *dpoMethod) Resumed(step int) {
	if m.resumed != nil {
		m.resumed(step)
	}
}

// LastValLoss is J_tgt at the last validation-gradient refresh (ok false without one).
func (m *dpoMethod) LastValLoss() (float64, bool) {
	if m.valLoss == nil {
		return 0, false
	}
	return m.valLoss(), true
}

// refRows is the reference's per-position loss of the batch's rows.
func (m *dpoMethod) refRows(b *data.Batch) ([][]float64, error) {
	if m.refExec != nil {
		return m.refExec.rows(b.Tokens, b.Targets, b.Weights)
	}
	return dpo.Rows(m.refTable, b), nil
}

func (m *dpoMethod) Prepare(step int, b *data.Batch) ([]any, error) {
	if m.before != nil {
		if err := m.before(step); err != nil {
			return nil, err
		}
	}
	ref, err := m.refRows(b)
	if err != nil {
		return nil, err
	}
	var kc, kr int32
	rho := 1.0
	if m.noRho {
		rho = 0
	}
	if m.selects {
		rho = m.sched.at(step)
		kc, kr = dpo.KeepCounts(rho, b.Weights, m.c.Threshold)
	}
	extra := []any{ref, kc, kr, float32(rho)}
	for _, in := range m.inputs {
		extra = append(extra, in.Rows(b))
	}
	if m.stepInputs != nil {
		more, err := m.stepInputs(step, b, ref)
		if err != nil {
			return nil, err
		}
		extra = append(extra, more...)
	}
	return extra, nil
}

func (m *dpoMethod) Loss(_ *gm.Scope, lm *model.LM, b train.BatchNodes) (*Node, []*Node) {
	ref := b.Extra[0]
	out := m.build(lm, b, ref, dpoKeep{chosen: b.Extra[1], rejected: b.Extra[2], rho: b.Extra[3]}, b.Extra[4:])
	dt := out.nll.DType()
	valid := NotEqual(b.Weights, ZerosLike(b.Weights))
	tc, tr := dpo.BranchCounts(valid, out.nll)
	keep := out.keep
	if keep == nil {
		keep = valid
	}
	kept := And(keep, valid)
	kc, kr := dpo.BranchCounts(kept, out.nll)
	st := m.c.BatchMetrics(out.nll, ref, b.Weights)
	nonfinite := out.nonfinite
	if nonfinite == nil {
		nonfinite = ScalarZero(b.Tokens.Graph(), dt)
	}
	tw := dpo.CountTwins(b.Targets, b.Weights, kept, out.nll)
	metrics := []*Node{tc, tr, kc, kr, st.Accuracy, st.ChosenReward, st.RejectedReward, st.Margin,
		ConvertDType(nonfinite, dt), ConvertDType(b.Extra[3], dt), tw.Twins, tw.TwinsKeptChosen, tw.TwinsKeptRejected, tw.OneSided,
		tw.Forks, tw.ForksKeptChosen, tw.ForksKeptRejected}
	for _, o := range out.own {
		metrics = append(metrics, ConvertDType(o, dt))
	}
	return out.loss, metrics
}

// countNonFinite counts the valid positions whose score is NaN or ±Inf.
func countNonFinite(score, valid *Node) *Node {
	return ReduceAllSum(ConvertDType(And(valid, LogicalNot(IsFinite(score))), dtypes.Float32))
}

// plainForward is the policy's forward pass on the batch: per-position loss and response mask.
func plainForward(lm *model.LM, b train.BatchNodes) (nll, valid *Node) {
	_, nll, valid = forwardNLL(lm, b, model.ForwardOptions{})
	return nll, valid
}
