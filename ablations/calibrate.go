package ablations

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/internal/atomicfile"
)

// Calibration records how a MiniBench regime was fixed (issue 12): only the reference model and
// Full FT are run — never a token-selection method — so the design cannot be tuned towards a
// method. For each reference seed (its pre-training seed) the reference is scored and fine-tuned
// with Full FT at each SFT seed. Two views of the spread:
//
//   - the comparison's setting: the first reference seed (the one every suite uses) fine-tuned at
//     each SFT seed; intervals over SFT seeds;
//   - across references: each reference seed's own scores and its Full FT mean over SFT seeds;
//     intervals over reference seeds.
//
// Gain = Full FT target − its reference's target; retention loss = reference retention − Full FT
// retention (both in points). Intervals are 95% Student t over the seeds (diag.CI95).
type Calibration struct {
	Preset   Preset           `json:"preset"`
	Patch    string           `json:"patch,omitempty"`
	RefSeeds []int            `json:"ref_seeds"`
	Seeds    []int            `json:"seeds"`
	Refs     []CalibrationRef `json:"refs"`

	Reference CalibrationStats `json:"reference"` // the references, over reference seeds
	FullFT    CalibrationStats `json:"full_ft"`   // Full FT on the first reference, over SFT seeds
	Gain      Stat             `json:"gain"`      // Full FT − reference target on the first reference, over SFT seeds
	Loss      Stat             `json:"loss"`      // reference − Full FT retention, the same runs
	GainRefs  Stat             `json:"gain_refs"` // per reference seed (mean over SFT seeds), over reference seeds
	LossRefs  Stat             `json:"loss_refs"` // the same for the retention loss
	Seconds   CalibrationTimes `json:"seconds"`   // CPU wall time of the parts (machine shared: see the README)
	Commit    string           `json:"commit"`
	Date      string           `json:"date"`
	Command   string           `json:"command"`
	Chance    map[string]float64
}

// CalibrationRef is one reference seed: its scores and its Full FT runs (one per SFT seed).
type CalibrationRef struct {
	RefSeed         int          `json:"ref_seed"`
	Dir             string       `json:"dir"`
	PretrainSeconds float64      `json:"pretrain_seconds"`
	HeldOutLoss     float64      `json:"held_out_loss"`
	Reference       *Scores      `json:"reference"`
	FullFT          []*RunResult `json:"full_ft"`
}

// CalibrationStats are the target, retention and probe scores over seeds.
type CalibrationStats struct {
	Target    Stat            `json:"target"`
	Retention Stat            `json:"retention"`
	Probes    map[string]Stat `json:"probes"`
}

// CalibrationTimes are mean wall-clock seconds: pre-training a reference, and one Full FT run's
// training and evaluation.
type CalibrationTimes struct {
	Pretrain Stat `json:"pretrain"`
	Train    Stat `json:"train"`
	Eval     Stat `json:"eval"`
}

// PatchPreset merges a JSON object into a copy of p (fields not named keep their values; unknown
// fields are errors): the calibration's way to try a variant of a design from the command line,
// e.g. {"pretrain":{"steps":800},"bench":{"mix":{"instruct":0.1}}}. Every cache key covers the
// changed content, so a variant never reuses another's models.
func PatchPreset(p Preset, patch string) (Preset, error) {
	if strings.TrimSpace(patch) == "" {
		return p, nil
	}
	if p.Instruct != nil { // decode into a copy, never into the registered preset's stage
		st := *p.Instruct
		p.Instruct = &st
	}
	dec := json.NewDecoder(strings.NewReader(patch))
	dec.DisallowUnknownFields()
	// Decode as the plain struct: Preset's UnmarshalJSON (legacy results) would drop the strictness.
	type plain Preset
	if err := dec.Decode((*plain)(&p)); err != nil {
		return p, errors.Wrapf(err, "ablations: --patch %s", patch)
	}
	return p, nil
}

// Calibrate runs the calibration of preset p: the reference at each reference seed, and Full FT
// on each at every SFT seed (cached like every run). It needs at least one seed of each; intervals
// need two.
func Calibrate(backend compute.Backend, p Preset, refSeeds, seeds []int, cacheDir string, log io.Writer) (*Calibration, error) {
	if len(refSeeds) == 0 || len(seeds) == 0 {
		return nil, errors.New("ablations: calibration needs at least one reference seed and one SFT seed")
	}
	for _, s := range refSeeds {
		if s < 1 {
			return nil, errors.Errorf("ablations: reference seed %d: seeds start at 1", s)
		}
	}
	c := &Calibration{Preset: p, RefSeeds: refSeeds, Seeds: seeds, Commit: Commit(), Date: time.Now().UTC().Format("2006-01-02")}
	full := Row{Label: "Full FT", Method: "full"}
	for i, rs := range refSeeds {
		q := p
		q.RefSeed = uint64(rs)
		fmt.Fprintf(log, "[calibrate %s] reference seed %d (%d/%d)\n", p.Name, rs, i+1, len(refSeeds))
		r, err := NewRunnerFor(backend, q, cacheDir, log)
		if err != nil {
			return nil, err
		}
		c.Chance = r.Bench.Chance()
		ref := CalibrationRef{RefSeed: rs, Dir: r.RefDir, PretrainSeconds: r.RefInfo.Seconds, HeldOutLoss: r.RefInfo.HeldOutLoss,
			Reference: r.RefInfo.Scores}
		for j, s := range seeds {
			fmt.Fprintf(log, "[calibrate %s] reference seed %d: Full FT, SFT seed %d (%d/%d)\n", p.Name, rs, s, j+1, len(seeds))
			res, err := r.RunRow(full, s)
			if err != nil {
				return nil, err
			}
			ref.FullFT = append(ref.FullFT, res)
		}
		c.Refs = append(c.Refs, ref)
	}
	c.summarise()
	return c, nil
}

// scoreStats aggregates scores over seeds.
func scoreStats(scores []*Scores) CalibrationStats {
	var t, r []float64
	probes := map[string][]float64{}
	for _, s := range scores {
		t, r = append(t, s.Target), append(r, s.Retention)
		for _, n := range ProbeNames {
			probes[n] = append(probes[n], s.Probes[n])
		}
	}
	out := CalibrationStats{Target: statOf(t), Retention: statOf(r), Probes: map[string]Stat{}}
	for n, v := range probes {
		out.Probes[n] = statOf(v)
	}
	return out
}

func (c *Calibration) summarise() {
	var refs, first []*Scores
	var gainRefs, lossRefs, pre, train, eval []float64
	for i, ref := range c.Refs {
		refs = append(refs, ref.Reference)
		pre = append(pre, ref.PretrainSeconds)
		var g, l []float64
		for _, res := range ref.FullFT {
			g, l = append(g, res.Scores.Target-ref.Reference.Target), append(l, ref.Reference.Retention-res.Scores.Retention)
			train, eval = append(train, res.TrainSeconds), append(eval, res.EvalSeconds)
			if i == 0 {
				first = append(first, res.Scores)
			}
		}
		if i == 0 {
			c.Gain, c.Loss = statOf(g), statOf(l)
		}
		gainRefs, lossRefs = append(gainRefs, statOf(g).Mean), append(lossRefs, statOf(l).Mean)
	}
	c.Reference, c.FullFT = scoreStats(refs), scoreStats(first)
	c.GainRefs, c.LossRefs = statOf(gainRefs), statOf(lossRefs)
	c.Seconds = CalibrationTimes{Pretrain: statOf(pre), Train: statOf(train), Eval: statOf(eval)}
}

// fmtCI renders a mean with its 95% interval, "m [lo, hi]" (the mean alone for one seed).
func fmtCI(s Stat) string {
	if s.N == 0 || math.IsNaN(s.Mean) {
		return "–"
	}
	if s.N < 2 || math.IsNaN(s.CI95) {
		return fmt.Sprintf("%.1f", s.Mean)
	}
	return fmt.Sprintf("%.1f [%.1f, %.1f]", s.Mean, s.Mean-s.CI95, s.Mean+s.CI95)
}

// Markdown renders the calibration: one row per reference seed, then the summaries.
func (c *Calibration) Markdown() string {
	var b bytes.Buffer
	p := c.Preset
	fmt.Fprintf(&b, "**Calibration of preset %q** (regime %q, design %q): reference model and Full FT only\n\n", p.Name, regimeName(p), p.Design)
	if c.Patch != "" {
		fmt.Fprintf(&b, "Variant: `--patch '%s'`\n\n", c.Patch)
	}
	b.WriteString("| ref seed | reference: target | retention | ARC | HellaSwag | MMLU | GSM | Full FT: target | retention | ARC | HellaSwag | MMLU | GSM | gain | retention loss |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, ref := range c.Refs {
		var sc []*Scores
		for _, res := range ref.FullFT {
			sc = append(sc, res.Scores)
		}
		ft := scoreStats(sc)
		r := ref.Reference
		fmt.Fprintf(&b, "| %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %s | %s | %s | %s | %s | %s | %.1f | %.1f |\n", ref.RefSeed,
			r.Target, r.Retention, r.Probes["arc"], r.Probes["hellaswag"], r.Probes["mmlu"], r.Probes["gsm"],
			fmtStd(ft.Target), fmtStd(ft.Retention), fmtStd(ft.Probes["arc"]), fmtStd(ft.Probes["hellaswag"]),
			fmtStd(ft.Probes["mmlu"]), fmtStd(ft.Probes["gsm"]), ft.Target.Mean-r.Target, r.Retention-ft.Retention.Mean)
	}
	fmt.Fprintf(&b, "\nFull FT columns: mean ± std over SFT seeds %v. Scores in %%; chance: ARC/HellaSwag/MMLU 25%%, GSM and target 0%%.\n\n", c.Seeds)
	line := func(name string, s CalibrationStats) {
		fmt.Fprintf(&b, "* %s: target %s, retention %s (ARC %s, HellaSwag %s, MMLU %s, GSM %s)\n", name, fmtCI(s.Target), fmtCI(s.Retention),
			fmtCI(s.Probes["arc"]), fmtCI(s.Probes["hellaswag"]), fmtCI(s.Probes["mmlu"]), fmtCI(s.Probes["gsm"]))
	}
	fmt.Fprintf(&b, "Means with 95%% t-intervals:\n\n")
	line(fmt.Sprintf("Reference, over reference seeds %v", c.RefSeeds), c.Reference)
	line(fmt.Sprintf("Full FT on reference seed %d, over SFT seeds %v", c.RefSeeds[0], c.Seeds), c.FullFT)
	fmt.Fprintf(&b, "* Full FT gain in target (points): %s over SFT seeds on reference seed %d; %s over reference seeds\n",
		fmtCI(c.Gain), c.RefSeeds[0], fmtCI(c.GainRefs))
	fmt.Fprintf(&b, "* Full FT retention loss (points): %s over SFT seeds on reference seed %d; %s over reference seeds\n",
		fmtCI(c.Loss), c.RefSeeds[0], fmtCI(c.LossRefs))
	fmt.Fprintf(&b, "* Wall time (2-core CPU shared with other jobs): pre-training %.0f s per reference; Full FT %.0f s training + %.0f s evaluation per run\n\n",
		c.Seconds.Pretrain.Mean, c.Seconds.Train.Mean, c.Seconds.Eval.Mean)
	fmt.Fprintf(&b, "Preset %q: %s model pre-trained %d steps × %d × %d bytes (lr %.0e) on corpus %s; SFT %d steps × %d, lr %.0e; "+
		"evaluation on %d per probe, %d target items. Commit %s, %s.\n", p.Name, p.Model, p.Pretrain.Steps, p.Pretrain.Batch, p.Pretrain.Seq,
		p.Pretrain.LR, p.Bench.CorpusFingerprint(), p.SFT.Steps, p.SFT.Batch, p.SFT.LR, p.Eval.MaxProbeItems, p.Eval.MaxTargetItems, c.Commit, c.Date)
	if c.Command != "" {
		fmt.Fprintf(&b, "Regenerate: `%s`\n", c.Command)
	}
	return b.String()
}

func regimeName(p Preset) string {
	if p.Regime == "" {
		return "scratch"
	}
	return p.Regime
}

// Write stores the calibration as <name>.md and <name>.json under dir (atomically).
func (c *Calibration) Write(dir, name string) error {
	if err := writeJSON(filepath.Join(dir, name+".json"), c); err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(dir, name+".md"), []byte(c.Markdown()))
}
