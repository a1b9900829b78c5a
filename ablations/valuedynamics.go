package ablations

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"
	"github.com/pkg/errors"
	"gonum.org/v1/plot"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/methods"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/plots"
)

// Value dynamics (issue 12, item 5): how AlphaToken's values and its kept set move during training.
// One AlphaToken run is retrained (the suite's configuration and seed); every Every steps (and at
// step 0) the model's weights are copied into a probe copy, whose own valuer refreshes G at those
// weights and values a FIXED probe batch (the first Probe training examples): the four components
// and the combined Φ, and the top-ρ keep decision over the probe batch. Between consecutive
// snapshots the diagnostic reports the Spearman correlation of Φ and of each component, and the share
// of probe tokens whose keep decision flips; against step 0, the same (is the step-0 valuation still
// what later steps would choose?). The training run itself is untouched (its valuer is not shared).

// ValueSnapshot is the probe batch's valuation at one step.
type ValueSnapshot struct {
	Step       int          `json:"step"`
	Components [4][]float64 `json:"-"` // tgt_dir, tgt_cau, prx_dir, prx_cau at the probe's response tokens
	Phi        []float64    `json:"-"`
	Keep       []bool       `json:"-"`
}

// ValueDynamicsPoint compares a snapshot with the previous one and with step 0.
type ValueDynamicsPoint struct {
	Step          int        `json:"step"`
	SpearmanPrev  float64    `json:"spearman_prev"`
	FlipPrev      float64    `json:"flip_share_prev"`
	SpearmanFirst float64    `json:"spearman_step0"`
	FlipFirst     float64    `json:"flip_share_step0"`
	Components    [4]float64 `json:"component_spearman_prev"` // tgt_dir, tgt_cau, prx_dir, prx_cau
}

// ValueDynamicsResult is the diagnostic's output.
type ValueDynamicsResult struct {
	Preset  string               `json:"preset"`
	Label   string               `json:"label"`
	Seed    int                  `json:"seed"`
	Steps   int                  `json:"steps"`
	Every   int                  `json:"every"`
	Tokens  int                  `json:"probe_tokens"`
	Rho     float64              `json:"rho"`
	Points  []ValueDynamicsPoint `json:"points"`
	Seconds float64              `json:"seconds"`
	Command string               `json:"command,omitempty"`
	Commit  string               `json:"commit"`
	Date    string               `json:"date"`
}

// ValueDynamics retrains row (an AlphaToken method) at seed for steps (0: the preset's), taking a
// snapshot of the probe batch's values every every steps.
func (r *Runner) ValueDynamics(row Row, seed, steps, every, probe int) (*ValueDynamicsResult, error) {
	if every < 1 || probe < 1 {
		return nil, errors.Errorf("ablations: value-dynamics needs every ≥ 1 and a probe of ≥ 1 example (got %d, %d)", every, probe)
	}
	start := time.Now()
	cfg, err := r.resolve(row, seed)
	if err != nil {
		return nil, err
	}
	if cfg.Valuation == nil {
		return nil, errors.Errorf("ablations: value-dynamics: method %s has no AlphaToken values", row.Method)
	}
	if steps > 0 {
		cfg.SFT.Steps = steps
	}
	lm, err := r.Ref.Clone()
	if err != nil {
		return nil, err
	}
	m, _, err := r.method(cfg, lm)
	if err != nil {
		return nil, err
	}
	// The probe: its own copy of the model and its own valuer.
	probeLM, err := r.Ref.Clone()
	if err != nil {
		return nil, err
	}
	env := &methods.Env{LM: probeLM, Ref: r.Ref, Valuation: *cfg.Valuation, Val: r.val, Options: cfg.Options, Steps: cfg.SFT.Steps,
		BatchSize: cfg.SFT.Batch, MaxLen: cfg.SFT.MaxLen, Log: r.Log}
	if cfg.Valuation.Stability && cfg.Valuation.Fisher != alphatoken.FisherNone {
		if env.Fisher, _, err = r.Fisher(*cfg.Valuation, cfg.FisherSeed); err != nil {
			return nil, err
		}
	} else {
		env.FisherNone = true
	}
	name := row.Method
	if name == "bottom" || name == "alphatoken-soft" {
		name = "alphatoken"
	}
	v, err := methods.NewValuer(env, name)
	if err != nil {
		return nil, err
	}
	pb := batchOf(r.train, seqIdx(min(probe, len(r.train))), cfg.SFT.MaxLen)
	exec, err := model.NewStoreExec(probeLM.Backend, probeLM.Store, "value_dynamics", func(_ *gm.Scope, g *Graph, in []*Node) []*Node {
		ev := v.Build(probeLM.Weights(g), in[0], in[1], in[2])
		return []*Node{ev.TgtDir, ev.TgtCau, ev.PrxDir, ev.PrxCau, alphatoken.Combine(ev, v.Config)}
	})
	if err != nil {
		return nil, err
	}
	var valid []int
	for i := range pb.Weights {
		for p := range pb.Weights[i] {
			if pb.Weights[i][p] != 0 {
				valid = append(valid, i*pb.T()+p)
			}
		}
	}
	k := alphatoken.KeepCount(cfg.Options.Rho, len(valid))
	var snaps []ValueSnapshot
	snapshot := func(step int) error {
		for _, sp := range lm.Config.ParamSpecs() {
			src := lm.Param(sp.Name)
			if src == nil {
				continue
			}
			t, err := src.Value()
			if err != nil {
				return err
			}
			c, err := model.CloneTensor(t)
			if err != nil {
				return err
			}
			if err := probeLM.Param(sp.Name).SetValue(c); err != nil {
				return err
			}
		}
		if _, err := v.RefreshValidationGradient(); err != nil {
			return err
		}
		outs, err := exec.Call(pb.Tokens, pb.Targets, pb.Weights)
		if err != nil {
			return err
		}
		s := ValueSnapshot{Step: step}
		for i, o := range outs {
			all, err := model.TensorFloat64(o)
			if err != nil {
				return err
			}
			vals := make([]float64, len(valid))
			for j, q := range valid {
				vals[j] = all[q]
			}
			if i < 4 {
				s.Components[i] = vals
			} else {
				s.Phi = vals
			}
		}
		order := make([]int, len(valid)) // top-k by Φ, ties by position (SPEC §6)
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int { return cmpF(s.Phi[b], s.Phi[a]) })
		s.Keep = make([]bool, len(valid))
		for _, i := range order[:k] {
			s.Keep[i] = true
		}
		snaps = append(snaps, s)
		return nil
	}
	if err := snapshot(0); err != nil {
		return nil, err
	}
	tc := train.Config{Steps: cfg.SFT.Steps, BatchSize: cfg.SFT.Batch, MaxLen: cfg.SFT.MaxLen, BucketQuantum: 16, LR: cfg.SFT.LR,
		Seed: cfg.Seed, LogEvery: every, Quiet: true}
	tr, err := train.New(lm, r.Tok, tc, m)
	if err != nil {
		return nil, err
	}
	tr.Log = r.Log
	tr.Hooks = append(tr.Hooks, train.Hook{Name: "value_dynamics", Every: every, Fn: func(step int, _ *train.Record) error { return snapshot(step) }})
	fmt.Fprintf(r.Log, "value-dynamics: %s, seed %d, %d steps, a snapshot every %d\n", row.Label, seed, cfg.SFT.Steps, every)
	if err := tr.Run(r.train); err != nil {
		return nil, err
	}
	res := &ValueDynamicsResult{Preset: r.Preset.Name, Label: row.Label, Seed: seed, Steps: cfg.SFT.Steps, Every: every, Tokens: len(valid),
		Rho: cfg.Options.Rho, Commit: Commit(), Date: time.Now().UTC().Format("2006-01-02")}
	for i := 1; i < len(snaps); i++ {
		a, b, f := snaps[i-1], snaps[i], snaps[0]
		pt := ValueDynamicsPoint{Step: b.Step, FlipPrev: flips(a.Keep, b.Keep), FlipFirst: flips(f.Keep, b.Keep)}
		pt.SpearmanPrev, _ = spearmanPearson(a.Phi, b.Phi)
		pt.SpearmanFirst, _ = spearmanPearson(f.Phi, b.Phi)
		for c := range 4 {
			pt.Components[c], _ = spearmanPearson(a.Components[c], b.Components[c])
		}
		res.Points = append(res.Points, pt)
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

func flips(a, b []bool) float64 {
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return float64(n) / float64(max(len(a), 1))
}

// Markdown renders the result.
func (v *ValueDynamicsResult) Markdown() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "### Value dynamics: %s (preset %s, seed %d, %d steps)\n\n", v.Label, v.Preset, v.Seed, v.Steps)
	fmt.Fprintf(&sb, "Values of a fixed probe batch (%d response tokens), recomputed every %d steps at the run's weights (G refreshed there). "+
		"Spearman of Φ with the previous snapshot and with step 0; share of probe tokens whose top-ρ (ρ %.2g) keep decision flips; "+
		"Spearman of each component with the previous snapshot (NaN: a component that is identically zero, e.g. Φ_prx at step 0, where θ = θ_ref).\n\n",
		v.Tokens, v.Every, v.Rho)
	sb.WriteString("| step | ρ_S(Φ) vs prev | flips vs prev | ρ_S(Φ) vs step 0 | flips vs step 0 | tgt_dir | tgt_cau | prx_dir | prx_cau |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range v.Points {
		fmt.Fprintf(&sb, "| %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |\n", p.Step, p.SpearmanPrev, p.FlipPrev, p.SpearmanFirst, p.FlipFirst,
			p.Components[0], p.Components[1], p.Components[2], p.Components[3])
	}
	fmt.Fprintf(&sb, "\nOne seed (a retrained run with the suite's configuration and seed). Commit %s, %s; %.0f s.\n", v.Commit, v.Date, v.Seconds)
	if v.Command != "" {
		fmt.Fprintf(&sb, "Regenerate: `%s`\n", v.Command)
	}
	return sb.String()
}

// CSV has one line per snapshot after the first.
func (v *ValueDynamicsResult) CSV() string {
	f := func(x float64) string { return fmt.Sprintf("%.4f", x) }
	var recs [][]string
	for _, p := range v.Points {
		recs = append(recs, []string{fmt.Sprint(p.Step), f(p.SpearmanPrev), f(p.FlipPrev), f(p.SpearmanFirst), f(p.FlipFirst),
			f(p.Components[0]), f(p.Components[1]), f(p.Components[2]), f(p.Components[3])})
	}
	return csvText([]string{"step", "spearman_prev", "flip_prev", "spearman_step0", "flip_step0", "tgt_dir", "tgt_cau", "prx_dir", "prx_cau"}, recs)
}

// ValueDynamicsFigure draws the rank correlations and flip shares against the step.
func ValueDynamicsFigure(v *ValueDynamicsResult) (*plot.Plot, error) {
	n := len(v.Points)
	if n == 0 {
		return nil, errors.New("ablations: value dynamics has no snapshot after step 0")
	}
	cols := []struct {
		name string
		get  func(ValueDynamicsPoint) float64
	}{
		{"Spearman of Φ vs previous snapshot", func(p ValueDynamicsPoint) float64 { return p.SpearmanPrev }},
		{"Spearman of Φ vs step 0", func(p ValueDynamicsPoint) float64 { return p.SpearmanFirst }},
		{"keep flips vs previous snapshot", func(p ValueDynamicsPoint) float64 { return p.FlipPrev }},
		{"keep flips vs step 0", func(p ValueDynamicsPoint) float64 { return p.FlipFirst }},
	}
	var series []plots.Series
	for _, c := range cols {
		xs, ys := make([]float64, 0, n), make([]float64, 0, n)
		for _, p := range v.Points {
			if y := c.get(p); !math.IsNaN(y) {
				xs, ys = append(xs, float64(p.Step)), append(ys, y)
			}
		}
		if len(xs) == 0 {
			continue
		}
		xy, err := plots.XYs(xs, ys)
		if err != nil {
			return nil, err
		}
		series = append(series, plots.Series{Name: c.name, XYs: xy})
	}
	return plots.TrainingCurves(fmt.Sprintf("Value dynamics: %s (%s, seed %d, probe of %d tokens)", v.Label, v.Preset, v.Seed, v.Tokens),
		"rank correlation / share of tokens", series)
}

// MarshalJSON writes undefined correlations (NaN: a constant component) as null.
func (p ValueDynamicsPoint) MarshalJSON() ([]byte, error) {
	f := func(x float64) any {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return x
	}
	return json.Marshal(map[string]any{"step": p.Step, "spearman_prev": f(p.SpearmanPrev), "flip_share_prev": p.FlipPrev,
		"spearman_step0": f(p.SpearmanFirst), "flip_share_step0": p.FlipFirst,
		"component_spearman_prev": []any{f(p.Components[0]), f(p.Components[1]), f(p.Components[2]), f(p.Components[3])}})
}
