package methods

import (
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
)

// AlphaToken (SPEC §4, §6) and the ablations that are the same formula with terms removed: the
// valuation, the batch's top-ρ mask and the masked loss run in one step graph. "bottom" keeps the
// bottom ρ of the same values (the ranking test).

func init() {
	needs := []Need{NeedVal, NeedFisher, NeedRef}
	for _, v := range []struct {
		name, summary string
		needs         []Need
	}{
		{"alphatoken", "AlphaToken: top-ρ of each batch by Φ = N(Φ_tgt) + λ·N(Φ_prx), direct and causal paths (SPEC §4)", needs},
		{"adaptation-only", "AlphaToken ablation: top-ρ by the target terms Φ_tgt only", []Need{NeedVal}},
		{"stability-only", "AlphaToken ablation: top-ρ by the Fisher-drift terms Φ_prx only", needs},
		{"direct-only", "AlphaToken ablation: the direct path only (no causal value propagation)", needs},
		{"causal-only", "AlphaToken ablation: the causal path only", needs},
		{"bottom", "Bottom-ρ: the ρ share of each batch with the LOWEST AlphaToken values (the ranking test)", needs},
	} {
		name := v.name
		Register(Info{Name: name, Summary: v.summary, Needs: v.needs, Selects: true, Valuation: true,
			Build: func(env *Env) (train.Method, error) { return newAlphaToken(env, name) }})
	}
}

// NewValuer builds the AlphaToken valuer of a registered valuation method (the variant's switches
// on env.Valuation) for env.LM. Without a Fisher (env.FisherNone) the stability terms are off,
// which it logs as a warning; stability-only then has nothing to rank by and is an error.
func NewValuer(env *Env, name string) (*alphatoken.Valuer, error) {
	in, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	if !in.Valuation {
		return nil, errors.Errorf("methods: method %q does not rank by AlphaToken values", name)
	}
	if err := env.check(in); err != nil {
		return nil, err
	}
	variant := name
	if name == "alphatoken-soft" {
		variant = "alphatoken"
	}
	cfg, ref, err := variantConfig(env, name, variant, func() (*model.LM, error) {
		if env.Ref != nil {
			return env.Ref, nil
		}
		return env.LM.Clone()
	})
	if err != nil {
		return nil, err
	}
	return alphatoken.NewValuer(env.LM, ref, env.Fisher, env.Val, cfg, env.BatchSize*env.MaxLen)
}

// variantConfig is the valuation configuration of method name, AlphaToken's variant on
// env.Valuation, with the Fisher's kind, and θ_ref from anchor when the stability term is on.
// Without a Fisher (env.FisherNone) the stability terms are off, which it logs as a warning; a
// variant that ranks by them alone is then an error.
func variantConfig(env *Env, name, variant string, anchor func() (*model.LM, error)) (alphatoken.Config, *model.LM, error) {
	cfg, err := alphatoken.Variant(variant, env.Valuation)
	if err != nil {
		return cfg, nil, err
	}
	var ref *model.LM
	cfg.Fisher = alphatoken.FisherNone
	if cfg.Stability {
		switch {
		case env.Fisher != nil:
			cfg.Fisher = env.Fisher.Kind
			if ref, err = anchor(); err != nil {
				return cfg, nil, err
			}
		case !cfg.Adaptation:
			return cfg, nil, errors.Errorf("methods: method %q ranks by the stability term alone, so it needs a Fisher (%s FILE), not none", name, NeedFisher.Flag())
		default:
			env.logf("warning: %s none: the stability (Fisher-drift) term is off; %s ranks by the adaptation terms only", NeedFisher.Flag(), name)
		}
	}
	return cfg, ref, nil
}

// valuerHooks are the host steps of a method that owns a valuer: the validation gradient is
// refreshed every ValRefresh steps (SPEC §3) and, after a resume, comes back from the checkpoint
// until the next refresh.
type valuerHooks struct {
	v           *alphatoken.Valuer
	restored    bool
	lastValLoss float64
	// refreshedAt is 1 + the step of the last refresh (0: none): the micro-batches of one step
	// (gradient accumulation) share its refresh.
	refreshedAt int
}

func (h *valuerHooks) before(step int) error {
	refresh := h.v.Config.ValRefresh
	if h.refreshedAt == step+1 || (h.restored && step%refresh != 0) {
		return nil // G of the last refresh before the checkpoint is in the restored state
	}
	j, err := h.v.RefreshValidationGradient()
	if err != nil {
		return err
	}
	h.lastValLoss, h.restored, h.refreshedAt = j, true, step+1
	return nil
}

func (h *valuerHooks) resumed(int) {
	h.v.MarkRestored()
	h.restored = true
}

func newAlphaToken(env *Env, name string) (train.Method, error) {
	v, err := NewValuer(env, name)
	if err != nil {
		return nil, err
	}
	sel := alphatoken.SelectTop
	if name == "bottom" {
		sel = alphatoken.SelectBottom
	}
	h := &valuerHooks{v: v}
	return &selective{name: name, scope: perBatch, sel: sel, sched: env.schedule(), valuer: v,
		before: h.before, resumed: h.resumed, valLoss: func() float64 { return h.lastValLoss },
		score: func(lm *model.LM, b train.BatchNodes, _ []*Node) (*Node, *Node, *Node, []*Node) {
			ev := v.Build(lm.Weights(b.Tokens.Graph()), b.Tokens, b.Targets, b.Weights)
			return ev.NLL, ev.Valid, alphatoken.Combine(ev, v.Config), nil
		}}, nil
}
