package methods

import (
	"time"

	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
)

// scope is where a selective method takes its keep count.
type scope int

const (
	perBatch    scope = iota // k = floor(ρN+0.5) of the batch's N response tokens, one threshold (SPEC §6)
	perSequence              // k_b = ⌈ρ·T_b⌉ of each sequence's T_b response tokens
	global                   // the score is a token's rank over a whole set (offline); keep rank < floor(ρN+0.5)
	fixedMask                // the score is an offline keep flag (1 keep); no k
)

// input supplies one extra [b, t] float32 input per step from the batch: a row of an offline
// table per example, or something derived from the batch itself.
type input interface {
	Rows(b *data.Batch) [][]float32
}

// scoreFn builds, inside the step graph, the per-position training loss (nll, with gradient), the
// label positions (valid) and the selection score (higher = keep; for global scope a rank, for
// fixedMask a keep flag), plus any method-specific metrics. ins are the inputs' nodes, in order.
type scoreFn func(lm *model.LM, b train.BatchNodes, ins []*Node) (nll, valid, score *Node, metrics []*Node)

// selective is every hard-mask method: a score per response token, a keep rule (scope, k from the
// ρ schedule), and the masked mean loss Σ m·l / Σ m. Its metrics are tokens, kept (the realised
// keep count), full_loss (the unmasked response loss), nonfinite (scores that are NaN or ±Inf:
// training stops), rho (the step's scheduled ratio; 0 for a threshold mask, which has none), then
// the score's own.
type selective struct {
	name   string
	scope  scope
	sel    alphatoken.Selection // perBatch: top, bottom or random (noise)
	sched  rhoSchedule
	inputs []input
	// stepInputs are scalar inputs of a step (after the inputs' rows), e.g. a warm-up switch.
	stepInputs func(step int) []any
	score      scoreFn
	metrics    []string // the score's own metric names
	// total is the number of tokens a global rank runs over at a step (global scope).
	total func(step int) int
	// keepAll, when it reports true for a step, keeps every token (ρ = 1) at that step.
	keepAll func(step int) bool
	// before runs on the host before each step (e.g. the validation-gradient refresh); plan before
	// the first (offline scoring); resumed after a checkpoint was restored.
	before  func(step int) error
	plan    func(examples []data.Example, batchAt func(int) []int, steps int) error
	resumed func(step int)
	// valLoss, when set, reports J_tgt at the last validation-gradient refresh.
	valLoss func() float64
	// valuer is the AlphaToken valuer of a valuation method (nil otherwise).
	valuer *alphatoken.Valuer
	// offline is the time spent scoring training examples outside the step graph (Plan, and any
	// scoring a hook does between steps).
	offline time.Duration
	// packs: the method trains on packed rows (train.PackingSupport): its score comes from the
	// training forward alone (forwardNLL, which keeps attention inside each example), with no
	// per-example inputs.
	packs bool
	// classes (Env.Classes) adds the metrics kept_class and tokens_class, from one more input.
	classes *TokenTable
}

// SupportsPacking implements train.PackingSupport.
func (m *selective) SupportsPacking() bool { return m.packs }

func (m *selective) Name() string { return m.name }

func (m *selective) MetricNames() []string {
	names := append([]string{"tokens", "kept", "full_loss", "nonfinite", "rho"}, m.metrics...)
	if m.classes != nil {
		names = append(names, "kept_class", "tokens_class")
	}
	return names
}

// Plan implements train.Planner.
func (m *selective) Plan(examples []data.Example, batchAt func(int) []int, steps int) error {
	if m.plan == nil {
		return nil
	}
	start := time.Now()
	defer func() { m.offline += time.Since(start) }()
	return m.plan(examples, batchAt, steps)
}

// OfflineSeconds is the time spent so far scoring training examples outside the step graph
// (offline passes before step 0, token-cleaning-self's chunk scoring): the ablation runner reports
// it apart from the step time.
func (m *selective) OfflineSeconds() float64 { return m.offline.Seconds() }

// UseAdam (train.OptimizerAware) passes the trainer's AdamW state to the valuer when the values are
// Adam-preconditioned (SPEC §4); other methods ignore it.
func (m *selective) UseAdam(st train.AdamState) error { return useAdam(m.valuer, st) }

func useAdam(v *alphatoken.Valuer, st train.AdamState) error {
	if v == nil || !v.Config.Precondition.Adam() {
		return nil
	}
	return v.UseAdam(alphatoken.AdamMoments{Scope: st.Scope, Beta2: st.Beta2, Eps: st.Eps, DType: st.DType})
}

// Resumed is called by the trainer after it restored a checkpoint at step.
func (m *selective) Resumed(step int) {
	if m.resumed != nil {
		m.resumed(step)
	}
}

// LastValLoss is J_tgt at the last validation-gradient refresh (ok false for methods without one).
func (m *selective) LastValLoss() (float64, bool) {
	if m.valLoss == nil {
		return 0, false
	}
	return m.valLoss(), true
}

// Prepare computes the step's keep count on the host and feeds it with ρ and the inputs' rows.
func (m *selective) Prepare(step int, b *data.Batch) ([]any, error) {
	if m.before != nil {
		if err := m.before(step); err != nil {
			return nil, err
		}
	}
	rho := m.sched.at(step)
	if m.keepAll != nil && m.keepAll(step) {
		rho = 1
	}
	var k any
	switch m.scope {
	case perBatch:
		k = int32(alphatoken.KeepCount(rho, b.NumTokens))
	case perSequence:
		k = rowKeepCounts(rho, b.Weights)
	case global:
		k = int32(alphatoken.KeepCount(rho, m.total(step)))
	case fixedMask:
		k, rho = int32(0), 0
	}
	extra := []any{k, float32(rho)}
	for _, in := range m.inputs {
		extra = append(extra, in.Rows(b))
	}
	if m.stepInputs != nil {
		extra = append(extra, m.stepInputs(step)...)
	}
	if m.classes != nil {
		extra = append(extra, m.classes.Rows(b))
	}
	return extra, nil
}

func (m *selective) Loss(_ *gm.Scope, lm *model.LM, b train.BatchNodes) (*Node, []*Node) {
	rho := b.Extra[1]
	var class *Node
	if m.classes != nil {
		class, b.Extra = b.Extra[len(b.Extra)-1], b.Extra[:len(b.Extra)-1]
	}
	nll, valid, score, own := m.score(lm, b, b.Extra[2:])
	mask := m.mask(b, score, valid)
	wt := ConvertDType(b.Weights, nll.DType())
	tokens := ReduceAllSum(wt)
	kept := ReduceAllSum(ConvertDType(mask, nll.DType()))
	full := Div(ReduceAllSum(Mul(nll, wt)), MaxScalar(tokens, 1))
	nonfinite := ReduceAllSum(ConvertDType(And(valid, LogicalNot(IsFinite(score))), nll.DType()))
	metrics := append([]*Node{tokens, kept, full, nonfinite, ConvertDType(rho, nll.DType())}, own...)
	if class != nil {
		c := Mul(ConvertDType(class, nll.DType()), ConvertDType(valid, nll.DType()))
		metrics = append(metrics, ReduceAllSum(Mul(c, ConvertDType(mask, nll.DType()))), ReduceAllSum(c))
	}
	return MaskedMeanLoss(nll, mask), metrics
}

// mask is the keep rule: the positions of score that keep their loss, given the step's k (Extra[0]).
func (m *selective) mask(b train.BatchNodes, score, valid *Node) *Node {
	k := b.Extra[0]
	switch m.scope {
	case perSequence:
		return SelectPerRow(score, valid, k)
	case global:
		return And(valid, LessThan(score, ConvertDType(k, score.DType())))
	case fixedMask:
		return And(valid, GreaterThan(score, ScalarZero(score.Graph(), score.DType())))
	}
	return alphatoken.SelectK(score, valid, b.Noise, k, m.sel)
}

// offlineSelective is a method whose score is an offline table over the training examples,
// computed by compute in Plan (with the model as it was when the method was built: π_0), and fed
// to the step graph: per batch or per sequence, the score itself; global, its rank over the whole
// set; fixedMask, a keep flag.
func offlineSelective(env *Env, name string, sc scope, compute func(examples []data.Example) (*TokenTable, error)) *selective {
	lt := &lazyTable{}
	m := &selective{name: name, scope: sc, sel: alphatoken.SelectTop, sched: env.schedule(), inputs: []input{lt},
		score: func(lm *model.LM, b train.BatchNodes, ins []*Node) (*Node, *Node, *Node, []*Node) {
			_, nll, valid := forwardNLL(lm, b, model.ForwardOptions{})
			return nll, valid, ConvertDType(ins[0], nll.DType()), nil
		}}
	m.plan = func(examples []data.Example, _ func(int) []int, _ int) error {
		start := time.Now()
		tt, err := compute(examples)
		if err != nil {
			return err
		}
		if err := m.useTable(tt, examples); err != nil {
			return err
		}
		env.logf("%s: offline scores of %d training examples ready in %s", name, len(examples), time.Since(start).Round(time.Millisecond))
		return nil
	}
	return m
}

// useTable makes tt the offline score table of an offlineSelective method (ranked over the
// examples for the global scope).
func (m *selective) useTable(tt *TokenTable, examples []data.Example) error {
	if m.scope == global {
		rt, n, err := rankTable(m.name+" rank", tt, examples, nil)
		if err != nil {
			return err
		}
		tt, m.total = rt, func(int) int { return n }
	}
	m.inputs[0].(*lazyTable).tt = tt
	return nil
}

// frozenCopy is a copy of the model being trained as it is now (at Build: π_0), for offline
// passes that run later (Plan runs after a resume has moved the weights).
func frozenCopy(env *Env) (*model.LM, error) { return env.LM.Clone() }

// forwardNLL is the plain training forward: per-position loss and the label positions. Packed rows
// (b.Segments) keep attention inside each example.
func forwardNLL(lm *model.LM, b train.BatchNodes, opts model.ForwardOptions) (*model.Output, *Node, *Node) {
	opts.Segments = b.Segments
	out := model.Forward(lm.Config, lm.Weights(b.Tokens.Graph()), b.Tokens, opts)
	nll := model.TokenNLL(out.Logits, b.Targets)
	valid := NotEqual(b.Weights, ZerosLike(b.Weights))
	return out, nll, valid
}
