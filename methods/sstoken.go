package methods

import (
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
)

// sstoken, self-modulated and semantic-aware token selection (Qin et al., ICLR 2026, arXiv
// 2510.18250, github.com/jianke0604/ssToken):
//
//	Score_p = γ · minmax_seq(ℓ_his(p) − ℓ_θ(p)) + (1−γ) · Σ_{c ∈ prompt} Ā_{p+1, c}
//
// The retrospective excess loss uses the model before fine-tuning as θ_his (the code's default;
// ℓ_π0 cached offline) and the training forward's own ℓ_θ, min-max normalised within each
// sequence's response. The attention score is the last decoder block's attention of the CURRENT
// model, averaged over heads, summed over the prompt's key columns, read on the query row of the
// token's own position (c = p+1 for the token predicted at label position p: the code's "label
// token t uses query row t"); it lies in [0, 1] and comes from the training forward (a tap, no
// extra pass). Per sequence, the top ⌈ρ·T⌉ of its T response tokens keep their loss (ρ = 0.6, the
// 3B–8B setting); γ = 0.5. Budget-matched: the top ρ of the batch by the same score.
//
// Warm-up: the released code uses γ = 0 (attention only) for the first 10,000 training samples,
// because early in training θ ≈ θ_his makes the excess loss uninformative. That count is absolute;
// here it is the share --gamma-warmup of the training steps, default 0.2 = 10,000 of a 50,000-example
// pool (the data scale of Token Cleaning's setting, which ssToken's experiments are assumed to
// share; the paper's pool size was not read).

func init() {
	Register(Info{Name: "sstoken", Selects: true, Native: 0.6,
		Summary: "ssToken: per sequence top-60% by γ·minmax(ℓ_π0 − ℓ_θ) + (1−γ)·attention to the prompt (last block)",
		Params: []Param{
			{Name: "gamma", Default: 0.5, Usage: "γ of sstoken: weight of the excess loss against the attention score"},
			{Name: "gamma-warmup", Default: 0.2, Usage: "share of the training steps sstoken runs with γ = 0 (attention only)"},
		},
		Build: newSSToken})
}

func newSSToken(env *Env) (train.Method, error) {
	gamma, warm := env.Param("gamma"), env.Param("gamma-warmup")
	if gamma < 0 || gamma > 1 || warm < 0 || warm > 1 {
		return nil, errors.Errorf("methods: sstoken: --gamma and --gamma-warmup must be in [0, 1], got %g and %g", gamma, warm)
	}
	base, err := frozenCopy(env)
	if err != nil {
		return nil, err
	}
	sc := perSequence
	if env.Options.BudgetMatched {
		sc = perBatch
	}
	his := &lazyTable{}
	warmSteps := int(warm*float64(env.Steps) + 0.5)
	m := &selective{name: "sstoken", scope: sc, sel: alphatoken.SelectTop, sched: env.schedule(),
		inputs:  []input{his, promptKeys{}},
		metrics: []string{"gamma"},
		stepInputs: func(step int) []any {
			if step < warmSteps {
				return []any{float32(0)}
			}
			return []any{float32(gamma)}
		},
		score: func(lm *model.LM, b train.BatchNodes, ins []*Node) (*Node, *Node, *Node, []*Node) {
			out, nll, valid := forwardNLL(lm, b, model.ForwardOptions{TapBlocks: 1})
			g := ConvertDType(ins[2], nll.DType())
			rel := MinMaxPerRow(Sub(ConvertDType(ins[0], nll.DType()), StopGradient(nll)), valid)
			attn := PromptAttention(out.Taps[0].Probs, ins[1])
			score := Add(Mul(g, rel), Mul(OneMinus(g), ConvertDType(attn, nll.DType())))
			return nll, valid, score, []*Node{g}
		}}
	m.plan = func(examples []data.Example, _ func(int) []int, _ int) error {
		var err error
		his.tt, err = frozenNLL(env, "sstoken: ℓ_π0", base, examples)
		return err
	}
	return m, nil
}

// promptKeys is an input of 1 at every prompt position c < PromptLen of each row.
type promptKeys struct{}

func (promptKeys) Rows(b *data.Batch) [][]float32 {
	out := make([][]float32, len(b.Tokens))
	for r := range out {
		out[r] = make([]float32, b.T())
		// The first label position is PromptLen−1: the prompt is every position up to it.
		for p, w := range b.Weights[r] {
			out[r][p] = 1
			if w != 0 {
				break
			}
		}
		if b.Index[r] < 0 {
			clear(out[r])
		}
	}
	return out
}

// PromptAttention is ssToken's attention score at label positions: for the token predicted at p,
// the head-averaged attention probability mass that query row p+1 puts on the prompt's key
// columns (prompt [b, t]: 1 at prompt positions). probs is one block's A [b, h, t(query), s(key)].
// The result is indexed by label position (row p+1 lands at p; the last position gets 0).
func PromptAttention(probs, prompt *Node) *Node {
	b := probs.Shape().Dimensions[0]
	mean := ReduceMean(probs, 1)                                                        // [b, t, s]
	mass := ReduceSum(Mul(mean, InsertAxes(ConvertDType(prompt, mean.DType()), 1)), -1) // [b, t]: per query row
	shifted := Slice(mass, AxisRange(), AxisRange(1))                                   // rows 1 … t−1 → label positions 0 … t−2
	return Concatenate([]*Node{shifted, Zeros(mass.Graph(), shapes.Make(mass.DType(), b, 1))}, 1)
}
