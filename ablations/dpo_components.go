package ablations

import (
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/dpo"
	"github.com/alphatoken/alphatoken/methods"
	"github.com/alphatoken/alphatoken/model"
)

// How much the stability term weighs in AlphaToken-DPO's mask (README, "Results on the preference
// MiniBench"). With the paper's raw sum, Φ = Φ_tgt + λ·Φ_prx, and Φ_prx contracts the token
// gradients with P = F(θ − θ_ref) (SPEC §4), which is zero at the warm-start (θ = θ_ref) and grows
// only as far as DPO moves the policy. This diagnostic values the first test pairs with the
// suite's AlphaToken configuration at two points, the warm-start and the end of the cached
// AlphaToken run of a seed, and reports each component's mean |Φ|, the ratio
// λ·mean|Φ_prx| / mean|Φ_tgt|, and the share of keep decisions that equal adaptation-only's
// (the same values with the stability term dropped).

// ComponentsRow is one point's component scales, in nats per unit learning rate.
type ComponentsRow struct {
	Point      string  `json:"point"`
	DirTgt     float64 `json:"mean_abs_dir_tgt"`
	CauTgt     float64 `json:"mean_abs_cau_tgt"`
	DirPrx     float64 `json:"mean_abs_dir_prx"`
	CauPrx     float64 `json:"mean_abs_cau_prx"`
	ProxyRatio float64 `json:"proxy_ratio"`       // λ·mean|Φ_prx^dir + Φ_prx^cau| / mean|Φ_tgt^dir + Φ_tgt^cau|
	SameKeep   float64 `json:"same_keep_pct"`     // tokens whose keep decision equals adaptation-only's, %
	Drift      float64 `json:"drift_rel"`         // ‖θ − θ_ref‖ / ‖θ_ref‖ over the scored blocks' parameters
	Tokens     int     `json:"tokens"`            // response tokens valued (both branches)
	Kept       int     `json:"kept"`              // kept by AlphaToken
	KeptDiffer int     `json:"kept_differ_count"` // tokens kept by exactly one of AlphaToken and adaptation-only
}

// ComponentsResult is the diagnostic's output.
type ComponentsResult struct {
	Preset    string          `json:"preset"`
	Design    string          `json:"design"`
	Seed      int             `json:"seed"`
	Pairs     int             `json:"pairs"`
	Lambda    float64         `json:"lambda"`
	Normalize string          `json:"normalize"`
	Run       string          `json:"run"` // the cached AlphaToken run read at the end point
	Rows      []ComponentsRow `json:"rows"`
	Seconds   float64         `json:"seconds"`
	Command   string          `json:"command,omitempty"`
	Commit    string          `json:"commit"`
	Date      string          `json:"date"`
}

// Components values the first pairs test pairs at the warm-start and at the end of the cached
// AlphaToken run of seed (an error names the command that trains it when it is not cached).
func (d *DPORunner) Components(seed, pairs int) (*ComponentsResult, error) {
	if pairs < 1 || 2*pairs > len(d.test) {
		return nil, errors.Errorf("ablations: dpo-components --pairs must be 1 … %d (the test pairs), got %d", len(d.test)/2, pairs)
	}
	start := time.Now()
	row := DPORow{Label: "AlphaToken", Method: "alphatoken"}
	cfg, err := d.resolve(row, seed)
	if err != nil {
		return nil, err
	}
	dir := d.runDir(cfg)
	cached, err := cachedRun[DPORunConfig, DPORunResult](dir, "cached DPO run", row.Label, cfg)
	if err != nil {
		return nil, err
	}
	if cached == nil {
		return nil, errors.Errorf("ablations: dpo-components: the AlphaToken run of seed %d is not in the cache (%s): "+
			"train it with `alphatoken ablate-dpo --preset %s --suite main --seeds %d,…`", seed, dir, d.Preset.Name, seed)
	}
	trained, err := model.Load(d.Backend, dir, dtypes.Float32)
	if err != nil {
		return nil, errors.WithMessagef(err, "ablations: dpo-components: the final model of %s", dir)
	}
	v := *cfg.Valuation
	res := &ComponentsResult{Preset: d.Preset.Name, Design: d.DPO.Design, Seed: seed, Pairs: pairs, Lambda: v.Lambda,
		Normalize: string(v.Normalize), Run: filepath.Base(dir), Commit: Commit(), Date: time.Now().UTC().Format("2006-01-02")}
	warm, err := d.Warm.Clone()
	if err != nil {
		return nil, err
	}
	batch := d.test[:2*pairs]
	refNLL, err := methods.PositionNLL(&methods.Env{BatchSize: pairs, Cache: filepath.Join(d.CacheDir, "dpo-offline"), Log: io.Discard}, "ref-logps", d.Warm, batch)
	if err != nil {
		return nil, err
	}
	for _, point := range []struct {
		name string
		lm   *model.LM
	}{{"warm-start (θ = θ_ref)", warm}, {fmt.Sprintf("end of the AlphaToken run (step %d)", cfg.Train.Steps), trained}} {
		r, err := d.componentsAt(cfg, point.lm, batch, refNLL)
		if err != nil {
			return nil, errors.WithMessagef(err, "ablations: dpo-components at the %s", point.name)
		}
		r.Point = point.name
		res.Rows = append(res.Rows, r)
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// componentsAt values the pair batch (refNLL: the warm-start's per-position loss of it) with
// policy lm: AlphaToken's and adaptation-only's masks.
func (d *DPORunner) componentsAt(cfg DPORunConfig, lm *model.LM, batch []data.Example, refNLL [][]float64) (ComponentsRow, error) {
	var row ComponentsRow
	env := &methods.DPOEnv{
		Env: methods.Env{LM: lm, Ref: d.Warm, Valuation: *cfg.Valuation, Options: cfg.Options, Steps: 1, BatchSize: len(batch) / 2,
			MaxLen: cfg.Train.MaxLen, Cache: filepath.Join(d.CacheDir, "dpo-offline"), Log: io.Discard},
		DPO: cfg.DPO, ValPairs: d.val, RefLogps: methods.RefPrecompute,
	}
	var err error
	if cfg.Fisher == "" {
		env.FisherNone = true // the proxy components are zero
	} else if env.Fisher, _, err = d.Fisher(*cfg.Valuation); err != nil {
		return row, err
	}
	score := func(method string) ([]dpo.TokenScore, error) {
		v, err := methods.NewDPOValuer(env, method)
		if err != nil {
			return nil, err
		}
		return dpo.Score(v, cfg.DPO, batch, refNLL, alphatoken.ScoreOptions{BatchSize: 8, Rho: cfg.Options.Rho, Tokenizer: d.Tok})
	}
	full, err := score("alphatoken")
	if err != nil {
		return row, err
	}
	adapt, err := score("adaptation-only")
	if err != nil {
		return row, err
	}
	if len(full) != len(adapt) {
		return row, errors.Errorf("ablations: %d tokens valued by alphatoken, %d by adaptation-only", len(full), len(adapt))
	}
	var tgt, prx float64
	for i, s := range full {
		row.DirTgt += math.Abs(s.DirTgt)
		row.CauTgt += math.Abs(s.CauTgt)
		row.DirPrx += math.Abs(s.DirPrx)
		row.CauPrx += math.Abs(s.CauPrx)
		tgt += math.Abs(s.DirTgt + s.CauTgt)
		prx += math.Abs(s.DirPrx + s.CauPrx)
		if s.Kept {
			row.Kept++
		}
		if s.Kept != adapt[i].Kept {
			row.KeptDiffer++
		}
	}
	n := float64(len(full))
	row.Tokens = len(full)
	row.DirTgt, row.CauTgt, row.DirPrx, row.CauPrx = row.DirTgt/n, row.CauTgt/n, row.DirPrx/n, row.CauPrx/n
	if tgt > 0 {
		row.ProxyRatio = cfg.Valuation.Lambda * prx / tgt
	}
	row.SameKeep = 100 * (1 - float64(row.KeptDiffer)/n)
	row.Drift, err = relativeDrift(lm, d.Warm, cfg.Valuation.Blocks)
	return row, err
}

// relativeDrift is ‖θ − θ_ref‖ / ‖θ_ref‖ over the parameters of the last blocks blocks.
func relativeDrift(lm, ref *model.LM, blocks int) (float64, error) {
	a, err := lm.ParamTensors()
	if err != nil {
		return 0, err
	}
	b, err := ref.ParamTensors()
	if err != nil {
		return 0, err
	}
	var prefixes []string
	for l := lm.Config.Layers - blocks; l < lm.Config.Layers; l++ {
		prefixes = append(prefixes, fmt.Sprintf("model.layers.%d.", l))
	}
	var diff, norm float64
	for i := range a {
		if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(a[i].Name, p) }) {
			continue
		}
		x, err := model.TensorFloat64(a[i].Tensor)
		if err != nil {
			return 0, err
		}
		y, err := model.TensorFloat64(b[i].Tensor)
		if err != nil {
			return 0, err
		}
		for j := range x {
			diff += (x[j] - y[j]) * (x[j] - y[j])
			norm += y[j] * y[j]
		}
	}
	if norm == 0 {
		return 0, errors.Errorf("ablations: the reference's last %d blocks have no non-zero weight", blocks)
	}
	return math.Sqrt(diff / norm), nil
}

// Markdown renders the result.
func (r *ComponentsResult) Markdown() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "### AlphaToken-DPO's four components and the weight of the stability term (preset %s, design %s, seed %d)\n\n",
		r.Preset, r.Design, r.Seed)
	fmt.Fprintf(&sb, "The first %d test pairs valued with the suite's AlphaToken configuration (combination %s, λ %g) at the warm-start and "+
		"at the end of the cached AlphaToken run %s. Mean |Φ| over both branches' response tokens, in nats per unit learning rate; "+
		"*proxy ratio* = λ·mean|Φ_prx^dir + Φ_prx^cau| / mean|Φ_tgt^dir + Φ_tgt^cau|; *same keep* = tokens whose keep decision equals "+
		"adaptation-only's (the same values without the stability term); *drift* = ‖θ − θ_ref‖ / ‖θ_ref‖ over the scored blocks' parameters.\n\n",
		r.Pairs, r.Normalize, r.Lambda, r.Run)
	sb.WriteString("| Point | drift | mean abs Φ_tgt^dir | mean abs Φ_tgt^cau | mean abs Φ_prx^dir | mean abs Φ_prx^cau | proxy ratio | same keep (%) | kept / tokens |\n")
	sb.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, w := range r.Rows {
		fmt.Fprintf(&sb, "| %s | %.2e | %.3e | %.3e | %.3e | %.3e | %.2e | %.1f (%d differ) | %d / %d |\n", w.Point, w.Drift, w.DirTgt, w.CauTgt,
			w.DirPrx, w.CauPrx, w.ProxyRatio, w.SameKeep, w.KeptDiffer, w.Kept, w.Tokens)
	}
	fmt.Fprintf(&sb, "\nCommit %s, %s; %.0f s.\n", r.Commit, r.Date, r.Seconds)
	if r.Command != "" {
		fmt.Fprintf(&sb, "Regenerate: `%s`\n", r.Command)
	}
	return sb.String()
}

// Write stores <dir>/dpo_components.md, .csv and .json.
func (r *ComponentsResult) Write(dir string) error {
	return writeTable(filepath.Join(dir, "dpo_components"), r)
}

// CSV has one line per point.
func (r *ComponentsResult) CSV() string {
	g := func(x float64) string { return fmt.Sprintf("%.6g", x) }
	var recs [][]string
	for _, w := range r.Rows {
		recs = append(recs, []string{w.Point, g(w.Drift), g(w.DirTgt), g(w.CauTgt), g(w.DirPrx), g(w.CauPrx), g(w.ProxyRatio), g(w.SameKeep),
			fmt.Sprint(w.KeptDiffer), fmt.Sprint(w.Kept), fmt.Sprint(w.Tokens)})
	}
	return csvText([]string{"point", "drift_rel", "mean_abs_dir_tgt", "mean_abs_cau_tgt", "mean_abs_dir_prx", "mean_abs_cau_prx", "proxy_ratio",
		"same_keep_pct", "kept_differ", "kept", "tokens"}, recs)
}
