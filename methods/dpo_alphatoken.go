package methods

import (
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/dpo"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
)

// AlphaToken for DPO (SPEC §6) and its ablations: each branch's tokens are valued with the
// branch's per-token loss (chosen −log π(y_w,t), rejected +log π(y_l,t), scaled by the pair's
// detached w from the unmasked δ); J_tgt is the mean DPO loss of B_val validation pairs; the
// Fisher term is SFT's. The mask keeps the top ρ of each branch's tokens (--dpo-threshold
// separate, the default) or of the batch's (shared); the loss is the masked DPO loss with the
// coefficient from the unmasked (default) or the masked logit (--dpo-coefficient masked).

func init() {
	needs := []Need{NeedVal, NeedFisher}
	for _, v := range []struct {
		name, summary string
		needs         []Need
	}{
		{"alphatoken", "AlphaToken for DPO: top-ρ of each branch by Φ = N(Φ_tgt) + λ·N(Φ_prx) of the branch's loss, J_tgt the validation DPO loss (SPEC §6)", needs},
		{"adaptation-only", "AlphaToken DPO ablation: top-ρ by the target terms Φ_tgt only", []Need{NeedVal}},
		{"stability-only", "AlphaToken DPO ablation: top-ρ by the Fisher-drift terms Φ_prx only", needs},
		{"direct-only", "AlphaToken DPO ablation: the direct path only", needs},
		{"causal-only", "AlphaToken DPO ablation: the causal path only", needs},
		{"bottom", "Bottom-ρ: the ρ share of each branch with the LOWEST AlphaToken values (the ranking test)", needs},
	} {
		name := v.name
		RegisterDPO(DPOInfo{Info: Info{Name: name, Summary: v.summary, Needs: v.needs, Selects: true, Valuation: true},
			Build: func(env *DPOEnv) (train.Method, error) { return newDPOAlphaToken(env, name) }})
	}
}

// NewDPOValuer builds the AlphaToken valuer of DPO valuation method name: the variant's switches
// on env.Valuation, J_tgt the mean DPO loss (env.DPO's loss type) of the first B_val validation
// pairs, θ_ref = env.Ref. Without a Fisher (env.FisherNone) the stability terms are off (logged);
// stability-only then has nothing to rank by and is an error.
func NewDPOValuer(env *DPOEnv, name string) (*alphatoken.Valuer, error) {
	in, err := LookupDPO(name)
	if err != nil {
		return nil, err
	}
	if !in.Valuation {
		return nil, errors.Errorf("methods: DPO method %q does not rank by AlphaToken values", name)
	}
	if err := env.check(in); err != nil {
		return nil, err
	}
	cfg, ref, err := variantConfig(&env.Env, name, name, func() (*model.LM, error) {
		if !env.Ref.Config.Equal(env.LM.Config) {
			return nil, errors.Errorf("methods: method %q: the stability term anchors at --ref, whose config differs from --model's", name)
		}
		return env.Ref, nil
	})
	if err != nil {
		return nil, err
	}
	val := env.ValPairs
	if n := 2 * cfg.ValExamples; len(val) > n {
		val = val[:n]
	}
	refNLL, err := PositionNLL(&env.Env, "ref-logps-val", env.Ref, val)
	if err != nil {
		return nil, err
	}
	maxLen := env.MaxLen
	if maxLen == 0 {
		maxLen = env.LM.Config.MaxPositions
	}
	obj, err := dpo.Objective(env.DPO, val, refNLL, cfg.ValExamples, maxLen, max(env.LM.Config.PadTokenID, 0))
	if err != nil {
		return nil, err
	}
	return alphatoken.NewValuerFor(env.LM, ref, env.Fisher, obj, cfg, 0)
}

func newDPOAlphaToken(env *DPOEnv, name string) (train.Method, error) {
	v, err := NewDPOValuer(env, name)
	if err != nil {
		return nil, err
	}
	sel := alphatoken.SelectTop
	if name == "bottom" {
		sel = alphatoken.SelectBottom
	}
	c := env.DPO
	h := &valuerHooks{v: v}
	m := newDPOMethod(env, name, func(lm *model.LM, b train.BatchNodes, ref *Node, k dpoKeep, _ []*Node) dpoOut {
		ev := v.BuildWith(lm.Weights(b.Tokens.Graph()), b.Tokens, b.Targets, func(nll *Node) *Node {
			omega, _ := c.TokenWeights(nll, ref, b.Weights)
			return omega
		})
		values := alphatoken.Combine(ev, v.Config)
		valid := NotEqual(b.Weights, ZerosLike(b.Weights))
		keep := dpo.Select(values, valid, b.Noise, k.chosen, k.rejected, c.Threshold, sel)
		loss, _ := c.MaskedLoss(ev.NLL, ref, b.Weights, keep, dpo.RealPairs(b.Weights))
		return dpoOut{loss: loss, nll: ev.NLL, keep: keep, nonfinite: countNonFinite(values, valid)}
	})
	m.before, m.resumed, m.valLoss = h.before, h.resumed, func() float64 { return h.lastValLoss }
	return m, nil
}
