package ablations

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pkg/errors"
)

// DPOTableRow aggregates one DPO suite row over its seeds. Every Stat carries n and the 95%
// t-interval half-width.
type DPOTableRow struct {
	Label        string          `json:"label"`
	Method       string          `json:"method"`
	Row          DPORow          `json:"row"`
	PairAccuracy Stat            `json:"pair_accuracy"`
	Target       Stat            `json:"target"`
	Preference   Stat            `json:"preference"`
	Retention    Stat            `json:"retention"`
	Overall      Stat            `json:"overall"`
	Probes       map[string]Stat `json:"probes"`
	LikelihoodAc Stat            `json:"likelihood_accuracy"`
	Margin       Stat            `json:"margin"`
	StepSeconds  Stat            `json:"step_seconds"`
	KeptChosen   Stat            `json:"kept_chosen"` // % of chosen tokens kept (mean over logged steps; hard masks only)
	KeptRejected Stat            `json:"kept_rejected"`
	RelTime      float64         `json:"relative_time,omitempty"`
	// Paired differences (this row − the suite's Compare row), seed by seed.
	DiffOverall    *Stat           `json:"diff_overall,omitempty"`
	DiffPreference *Stat           `json:"diff_preference,omitempty"`
	DiffRetention  *Stat           `json:"diff_retention,omitempty"`
	Runs           []*DPORunResult `json:"runs"`
}

// DPOTable is a DPO suite's results: what its Markdown, CSV and JSON files hold.
type DPOTable struct {
	Suite     *DPOSuite          `json:"suite"`
	Preset    Preset             `json:"preset"`
	DPO       DPOPreset          `json:"dpo"`
	Prefs     string             `json:"prefs"`      // preference MiniBench fingerprint
	WarmStart string             `json:"warm_start"` // the warm-start's run directory
	TestPairs int                `json:"test_pairs"` // held-out pairs behind the pair accuracy
	Seeds     []int              `json:"seeds"`
	Rows      []DPOTableRow      `json:"rows"`
	Commit    string             `json:"commit"`
	Date      string             `json:"date"`
	Command   string             `json:"command"`
	Chance    map[string]float64 `json:"chance"`
}

// CheckSeeds refuses fewer than 2 seeds (a 95% interval needs two) and repeated seeds.
func CheckSeeds(seeds []int) error {
	if len(seeds) < 2 {
		return errors.Errorf("ablations: DPO tables report 95%% intervals over seeds, so they need at least 2 seeds, got %v", seeds)
	}
	seen := map[int]bool{}
	for _, s := range seeds {
		if seen[s] {
			return errors.Errorf("ablations: seed %d is listed twice", s)
		}
		seen[s] = true
	}
	return nil
}

// RunDPOSuite runs every row of s for every seed (cached runs are reused) and aggregates them.
func (d *DPORunner) RunDPOSuite(s *DPOSuite, seeds []int) (*DPOTable, error) {
	if err := CheckSeeds(seeds); err != nil {
		return nil, err
	}
	dp := d.DPO
	if err := CheckCalibrated(dp, d.Preset.Name, s); err != nil {
		return nil, err
	}
	if d.DPOSteps > 0 {
		dp.Train.Steps = d.DPOSteps // the table says what ran
	}
	t := &DPOTable{Suite: s, Preset: d.Preset, DPO: dp, Prefs: d.Prefs.Fingerprint(), WarmStart: filepath.Base(d.WarmRun.Dir),
		Seeds: seeds, TestPairs: len(d.Prefs.Test), Commit: Commit(), Date: time.Now().UTC().Format("2006-01-02"), Chance: d.Bench.Chance()}
	total := len(s.Rows) * len(seeds)
	done, start := 0, time.Now()
	for _, row := range s.Rows {
		rowSeeds := seeds
		if row.Method == WarmStartMethod {
			rowSeeds = seeds[:1] // no training: one evaluation
		}
		var runs []*DPORunResult
		for _, seed := range rowSeeds {
			eta := ""
			if done > 0 {
				el := time.Since(start)
				eta = fmt.Sprintf(" | %s elapsed | ETA %s", el.Round(time.Second), (el * time.Duration(total-done) / time.Duration(done)).Round(time.Second))
			}
			done++
			fmt.Fprintf(d.Log, "[dpo %s %d/%d] %s, seed %d%s\n", s.Name, done, total, row.Label, seed, eta)
			res, err := d.RunDPORow(row, seed)
			if err != nil {
				return nil, err
			}
			runs = append(runs, res)
		}
		t.Rows = append(t.Rows, aggregateDPO(row, runs))
	}
	t.compare()
	return t, nil
}

func aggregateDPO(row DPORow, runs []*DPORunResult) DPOTableRow {
	tr := DPOTableRow{Label: row.Label, Method: row.Method, Row: row, Probes: map[string]Stat{}, Runs: runs}
	col := func(f func(*DPORunResult) (float64, bool)) Stat {
		var xs []float64
		for _, r := range runs {
			if x, ok := f(r); ok {
				xs = append(xs, x)
			}
		}
		if len(xs) == 0 {
			return Stat{Mean: math.NaN(), Std: math.NaN(), CI95: math.NaN()}
		}
		return statOf(xs)
	}
	always := func(f func(*DPORunResult) float64) Stat {
		return col(func(r *DPORunResult) (float64, bool) { return f(r), true })
	}
	tr.PairAccuracy = always(func(r *DPORunResult) float64 { return r.Pairs.Accuracy })
	tr.Target = always(func(r *DPORunResult) float64 { return r.Target })
	tr.Preference = always(func(r *DPORunResult) float64 { return r.Preference })
	tr.Retention = always(func(r *DPORunResult) float64 { return r.Retention })
	tr.Overall = always(func(r *DPORunResult) float64 { return r.Overall })
	tr.LikelihoodAc = always(func(r *DPORunResult) float64 { return r.Pairs.LikelihoodAccuracy })
	tr.Margin = always(func(r *DPORunResult) float64 { return r.Pairs.Margin })
	for _, p := range ProbeNames {
		tr.Probes[p] = always(func(r *DPORunResult) float64 { return r.Probes[p] })
	}
	tr.StepSeconds = col(func(r *DPORunResult) (float64, bool) { return r.StepSeconds, r.StepSeconds > 0 })
	kept := func(f func(DPOCurvePoint) float64) Stat {
		return col(func(r *DPORunResult) (float64, bool) {
			var sum float64
			n := 0
			for _, c := range r.Curve {
				if k := f(c); k > 0 {
					sum += k
					n++
				}
			}
			return 100 * sum / float64(max(n, 1)), n > 0
		})
	}
	tr.KeptChosen = kept(func(c DPOCurvePoint) float64 { return c.KeptChosen })
	tr.KeptRejected = kept(func(c DPOCurvePoint) float64 { return c.KeptRejected })
	return tr
}

// compare fills the relative time and the paired differences against the suite's rows.
func (t *DPOTable) compare() {
	bySeed := func(r DPOTableRow, f func(*DPORunResult) float64) map[int]float64 {
		m := map[int]float64{}
		for _, run := range r.Runs {
			m[int(run.Config.Seed)] = f(run)
		}
		return m
	}
	for _, b := range t.Rows {
		if b.Label == t.Suite.Baseline && b.StepSeconds.N > 0 {
			for i := range t.Rows {
				if t.Rows[i].StepSeconds.N > 0 {
					t.Rows[i].RelTime = t.Rows[i].StepSeconds.Mean / b.StepSeconds.Mean
				}
			}
		}
		if b.Label != t.Suite.Compare || b.Method == WarmStartMethod {
			continue
		}
		for i := range t.Rows {
			r := &t.Rows[i]
			if r.Label == b.Label || r.Method == WarmStartMethod {
				continue
			}
			o := PairedDiff(bySeed(*r, func(x *DPORunResult) float64 { return x.Overall }), bySeed(b, func(x *DPORunResult) float64 { return x.Overall }))
			p := PairedDiff(bySeed(*r, func(x *DPORunResult) float64 { return x.Preference }), bySeed(b, func(x *DPORunResult) float64 { return x.Preference }))
			q := PairedDiff(bySeed(*r, func(x *DPORunResult) float64 { return x.Retention }), bySeed(b, func(x *DPORunResult) float64 { return x.Retention }))
			r.DiffOverall, r.DiffPreference, r.DiffRetention = &o, &p, &q
		}
	}
}

// UncalibratedSuffix marks a DPO design that is not calibrated yet: only plain DPO and the
// warm-start may run on it (ablations/minibench/README.md, "Preference MiniBench": the benchmark is
// calibrated with plain DPO before any masked or selection method runs on it).
const UncalibratedSuffix = "-uncalibrated"

// CheckCalibrated refuses a suite with a masked or selection method on an uncalibrated design.
func CheckCalibrated(dp DPOPreset, preset string, s *DPOSuite) error {
	if !strings.HasSuffix(dp.Design, UncalibratedSuffix) {
		return nil
	}
	for _, r := range s.Rows {
		if r.Method != "dpo" && r.Method != WarmStartMethod {
			return errors.Errorf("ablations: the DPO design %q of preset %q is not calibrated: row %q (%s) of suite %s may not run on it "+
				"(only dpo and warm-start rows: calibrate it first, ablations/minibench/README.md)", dp.Design, preset, r.Label, r.Method, s.Name)
		}
	}
	return nil
}

// fmtDiffOf renders an optional paired difference (fmtDiff; "–" when there is none).
func fmtDiffOf(s *Stat) string {
	if s == nil {
		return "–"
	}
	return fmtDiff(*s)
}

// Markdown renders the table with its provenance.
func (t *DPOTable) Markdown() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "### %s\n\n", t.Suite.Title)
	if t.Suite.Note != "" {
		fmt.Fprintf(&sb, "%s\n\n", t.Suite.Note)
	}
	head := []string{"Method", "Pair acc", "Target (" + t.Preset.Target + " pass@1)", "Preference", "Retention avg"}
	for _, p := range ProbeNames {
		head = append(head, probeLabels[p])
	}
	head = append(head, "Overall")
	withKept := false
	for _, r := range t.Rows {
		withKept = withKept || r.KeptChosen.N > 0
	}
	if withKept {
		head = append(head, "Kept % (chosen / rejected)")
	}
	cmp := t.Suite.Compare != ""
	if cmp {
		head = append(head, "Δ Overall vs "+t.Suite.Compare, "Δ Preference", "Δ Retention")
	}
	head = append(head, "s/step")
	rel := t.Suite.Baseline != ""
	if rel {
		head = append(head, "Relative time")
	}
	fmt.Fprintf(&sb, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	for _, r := range t.Rows {
		cells := []string{r.Label, fmtCI(r.PairAccuracy), fmtCI(r.Target), fmtCI(r.Preference), fmtCI(r.Retention)}
		for _, p := range ProbeNames {
			cells = append(cells, fmtCI(r.Probes[p]))
		}
		cells = append(cells, fmtCI(r.Overall))
		if withKept {
			k := "–"
			if r.KeptChosen.N > 0 {
				k = fmt.Sprintf("%.0f / %.0f", r.KeptChosen.Mean, r.KeptRejected.Mean)
			}
			cells = append(cells, k)
		}
		if cmp {
			cells = append(cells, fmtDiffOf(r.DiffOverall), fmtDiffOf(r.DiffPreference), fmtDiffOf(r.DiffRetention))
		}
		step := "–"
		if r.StepSeconds.N > 0 {
			step = fmt.Sprintf("%.2f", r.StepSeconds.Mean)
		}
		cells = append(cells, step)
		if rel {
			relText := "–"
			if r.RelTime > 0 {
				relText = fmt.Sprintf("%.2f", r.RelTime)
			}
			cells = append(cells, relText)
		}
		fmt.Fprintf(&sb, "| %s |\n", strings.Join(cells, " | "))
	}
	p, dp := t.Preset, t.DPO
	v := p.Valuation
	fmt.Fprintf(&sb, "\nScores in %%: mean ± 95%% t-interval half-width over seeds %v (n = %d per trained row; the warm-start row is one evaluation). "+
		"Pair acc: held-out test pairs (%d) whose implicit reward margin β[(log π − log π_ref)(y_w) − (log π − log π_ref)(y_l)] is > 0, ties ½ "+
		"(the warm-start is π_ref: 50 by definition); Target: pass@1 of generated programs; Preference = mean(Pair acc, Target); "+
		"Overall = mean(Preference, Retention avg). ",
		t.Seeds, len(t.Seeds), t.TestPairs)
	if cmp {
		fmt.Fprintf(&sb, "Δ: paired difference to %q over the same seeds, mean [95%% interval]. ", t.Suite.Compare)
	}
	fmt.Fprintf(&sb, "Chance: ARC/HellaSwag/MMLU %.0f%%, GSM and target 0%%, pair accuracy 50%%. "+
		"Preset %q, DPO design %s: π_ref = the SFT warm-start (Full FT, seed %d, %d steps); DPO %d steps × %d pairs, lr %.0e, β %g, %s loss; "+
		"%d training pairs (preference MiniBench %s); ρ %.2g; AlphaToken λ %.2g, W %d, K %d, B_val %d pairs, ValRefresh %d, %s Fisher of the warm-start from %d prompts, combination %s; "+
		"evaluation on %s items. s/step is each run's mean training-step time, taken run by run on a shared 2-core machine: compare costs with the cost table's within-run ratios. Commit %s, %s.\n",
		100*t.Chance["arc"], p.Name, dp.Design, dp.WarmStartSeed, p.SFT.Steps, dp.Train.Steps, dp.Train.Batch, dp.Train.LR, dp.Beta, dp.Loss,
		dp.Pairs.TrainPairs, t.Prefs, p.Rho, v.Lambda, v.Window, v.Blocks, v.ValExamples, v.ValRefresh, v.Fisher, v.FisherPrompts,
		normalization(v.Normalize), evalSize(p.Eval), t.Commit, t.Date)
	var runs [][]*DPORunResult
	for _, r := range t.Rows {
		runs = append(runs, r.Runs)
	}
	sb.WriteString(computeNote(runs))
	if t.Command != "" {
		fmt.Fprintf(&sb, "Regenerate: `%s`\n", t.Command)
	}
	return sb.String()
}

// CSV renders one line per row: means, 95% half-widths, n.
func (t *DPOTable) CSV() string {
	stats := []string{"pair_accuracy", "target", "preference", "retention"}
	stats = append(stats, ProbeNames...)
	stats = append(stats, "overall", "likelihood_accuracy", "margin", "kept_chosen", "kept_rejected", "step_seconds",
		"diff_overall", "diff_preference", "diff_retention")
	head := []string{"suite", "label", "method", "n"}
	for _, s := range stats {
		head = append(head, s+"_mean", s+"_ci95")
	}
	head = append(head, "relative_time", "commit", "date")
	var recs [][]string
	f := func(x float64) string {
		if math.IsNaN(x) {
			return ""
		}
		return fmt.Sprintf("%.4f", x)
	}
	for _, r := range t.Rows {
		rec := []string{t.Suite.Name, r.Label, r.Method, fmt.Sprint(r.Overall.N)}
		vals := []Stat{r.PairAccuracy, r.Target, r.Preference, r.Retention}
		for _, p := range ProbeNames {
			vals = append(vals, r.Probes[p])
		}
		vals = append(vals, r.Overall, r.LikelihoodAc, r.Margin, r.KeptChosen, r.KeptRejected, r.StepSeconds)
		for _, d := range []*Stat{r.DiffOverall, r.DiffPreference, r.DiffRetention} {
			if d == nil {
				vals = append(vals, Stat{Mean: math.NaN(), CI95: math.NaN()})
			} else {
				vals = append(vals, *d)
			}
		}
		for _, s := range vals {
			if s.N == 0 {
				rec = append(rec, "", "")
				continue
			}
			rec = append(rec, f(s.Mean), f(s.CI95))
		}
		recs = append(recs, append(rec, f(r.RelTime), t.Commit, t.Date))
	}
	return csvText(head, recs)
}

// Write stores <dir>/<suite>.md, .csv and .json.
func (t *DPOTable) Write(dir string) error { return writeTable(filepath.Join(dir, t.Suite.Name), t) }

// LoadDPOTable reads a table written by DPOTable.Write (<suite>.json).
func LoadDPOTable(path string) (*DPOTable, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, errors.Wrapf(err, "ablations: reading %s", path)
	}
	var t DPOTable
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, errors.Wrapf(err, "ablations: parsing %s", path)
	}
	return &t, nil
}
