package ablations

import (
	"bytes"
	"os"

	"github.com/pkg/errors"

	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/internal/atomicfile"
)

// TableRow aggregates one suite row over its seeds.
type TableRow struct {
	Label       string          `json:"label"`
	Method      string          `json:"method"`
	Row         Row             `json:"row"`
	Target      Stat            `json:"target"`
	Retention   Stat            `json:"retention"`
	Overall     Stat            `json:"overall"`
	Probes      map[string]Stat `json:"probes"`
	StepSeconds Stat            `json:"step_seconds"`
	Kept        Stat            `json:"kept"` // % of response tokens kept (a run's mean over its logged steps; hard masks only)
	// DeltaTarget and DeltaOverall are the paired differences (same seed) to the suite's Paired row,
	// with their 95% intervals (N = 0 without one).
	DeltaTarget  Stat         `json:"delta_target"`
	DeltaOverall Stat         `json:"delta_overall"`
	RelTime      float64      `json:"relative_time,omitempty"`
	FisherSecs   float64      `json:"fisher_seconds,omitempty"`
	Runs         []*RunResult `json:"runs"`
}

// Table is a suite's results: what the Markdown, CSV and JSON files hold.
type Table struct {
	Suite   *Suite     `json:"suite"`
	Preset  Preset     `json:"preset"`
	Seeds   []int      `json:"seeds"`
	Rows    []TableRow `json:"rows"`
	Commit  string     `json:"commit"`
	Date    string     `json:"date"`
	Command string     `json:"command"`
	Chance  map[string]float64
}

// RunSuite runs every row of s for every seed (cached runs are reused) and aggregates them.
func (r *Runner) RunSuite(s *Suite, seeds []int) (*Table, error) {
	if len(seeds) < 2 && !r.OneSeed {
		return nil, errors.Errorf("ablations: suite %q: a 95%% interval over seeds needs at least 2 seeds, got %v "+
			"(one seed is a demonstration: `alphatoken demo`, or `ablate --one-seed` for means only)", s.Name, seeds)
	}
	preset := r.Preset
	if r.Steps > 0 {
		preset.SFT.Steps = r.Steps // the table says what ran
	}
	t := &Table{Suite: s, Preset: preset, Seeds: seeds, Commit: Commit(), Date: time.Now().UTC().Format("2006-01-02"),
		Chance: r.Bench.Chance()}
	total := len(s.Rows) * len(seeds)
	done, start := 0, time.Now()
	for _, row := range s.Rows {
		tr := TableRow{Label: row.Label, Method: row.Method, Row: row, Probes: map[string]Stat{}}
		var target, ret, overall, step, kept []float64
		probes := map[string][]float64{}
		rowSeeds := seeds
		if row.Method == "reference" {
			rowSeeds = seeds[:1] // no training: one evaluation
		}
		for _, seed := range rowSeeds {
			eta := ""
			if done > 0 { // the mean time of the finished runs, times the runs left (cached runs count as instant)
				el := time.Since(start)
				eta = fmt.Sprintf(" | %s elapsed | ETA %s", el.Round(time.Second), (el * time.Duration(total-done) / time.Duration(done)).Round(time.Second))
			}
			done++
			fmt.Fprintf(r.Log, "[%s %d/%d] %s, seed %d%s\n", s.Name, done, total, row.Label, seed, eta)
			res, err := r.RunRow(row, seed)
			if err != nil {
				return nil, err
			}
			tr.Runs = append(tr.Runs, res)
			target, ret, overall = append(target, res.Scores.Target), append(ret, res.Scores.Retention), append(overall, res.Scores.Overall)
			for k, v := range res.Scores.Probes {
				probes[k] = append(probes[k], v)
			}
			if res.StepSeconds > 0 {
				step = append(step, res.StepSeconds)
			}
			if k, ok := res.keptShare(); ok {
				kept = append(kept, 100*k)
			}
			tr.FisherSecs = res.FisherSeconds
		}
		tr.Target, tr.Retention, tr.Overall = statOf(target), statOf(ret), statOf(overall)
		for k, v := range probes {
			tr.Probes[k] = statOf(v)
		}
		if len(step) > 0 {
			tr.StepSeconds = statOf(step)
		}
		if len(kept) > 0 {
			tr.Kept = statOf(kept)
		}
		t.Rows = append(t.Rows, tr)
	}
	if s.Paired != "" {
		if err := t.pair(s.Paired); err != nil {
			return nil, err
		}
	}
	if s.Baseline != "" {
		for _, b := range t.Rows {
			if b.Label == s.Baseline && b.StepSeconds.Mean > 0 {
				for i := range t.Rows {
					t.Rows[i].RelTime = t.Rows[i].StepSeconds.Mean / b.StepSeconds.Mean
				}
			}
		}
	}
	return t, nil
}

// pair fills every trained row's paired differences to the row labelled label, seed by seed.
func (t *Table) pair(label string) error {
	var base *TableRow
	for i := range t.Rows {
		if t.Rows[i].Label == label {
			base = &t.Rows[i]
		}
	}
	if base == nil {
		return errors.Errorf("ablations: suite %q pairs with row %q, which it does not have", t.Suite.Name, label)
	}
	bySeed := func(r *TableRow, f func(*Scores) float64) map[int]float64 {
		m := map[int]float64{}
		for _, run := range r.Runs {
			m[int(run.Config.Seed)] = f(run.Scores)
		}
		return m
	}
	tgt := func(s *Scores) float64 { return s.Target }
	all := func(s *Scores) float64 { return s.Overall }
	for i := range t.Rows {
		r := &t.Rows[i]
		if r.Method == "reference" || r == base {
			continue
		}
		r.DeltaTarget = PairedDiff(bySeed(r, tgt), bySeed(base, tgt))
		r.DeltaOverall = PairedDiff(bySeed(r, all), bySeed(base, all))
	}
	return nil
}

// keptShare is the mean share of response tokens a run kept over its logged steps (false for
// methods without a hard mask, and for results from before the share was logged).
func (res *RunResult) keptShare() (float64, bool) {
	var sum float64
	n := 0
	for _, c := range res.Curve {
		if c.Kept > 0 {
			sum += c.Kept
			n++
		}
	}
	if n == 0 {
		return 0, false
	}
	return sum / float64(n), true
}

func fmtStat(s Stat) string { return fmtPM(s) }

var probeLabels = map[string]string{"arc": "ARC (mc)", "hellaswag": "HellaSwag (mc)", "mmlu": "MMLU (mc)", "gsm": "GSM (gen)"}

// Markdown renders the table with its provenance.
func (t *Table) Markdown() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "### %s\n\n", t.Suite.Title)
	if t.Suite.Note != "" {
		fmt.Fprintf(&sb, "%s\n\n", t.Suite.Note)
	}
	head := []string{"Method", "Retention avg"}
	for _, p := range ProbeNames {
		head = append(head, probeLabels[p])
	}
	head = append(head, "Target ("+t.Preset.Target+" pass@1)", "Overall")
	paired := t.Suite.Paired
	if paired != "" {
		head = append(head, "Δ target vs "+paired, "Δ overall vs "+paired)
	}
	withKept := false
	for _, r := range t.Rows {
		withKept = withKept || r.Kept.N > 0
	}
	if withKept {
		head = append(head, "Kept %")
	}
	head = append(head, "s/step")
	rel := t.Suite.Baseline != ""
	if rel {
		head = append(head, "Relative time")
	}
	fmt.Fprintf(&sb, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	for _, r := range t.Rows {
		cells := []string{r.Label, fmtStat(r.Retention)}
		for _, p := range ProbeNames {
			cells = append(cells, fmtStat(r.Probes[p]))
		}
		step := "–"
		if r.StepSeconds.N > 0 {
			step = fmt.Sprintf("%.2f", r.StepSeconds.Mean)
		}
		cells = append(cells, fmtStat(r.Target), fmtStat(r.Overall))
		if paired != "" {
			cells = append(cells, fmtDiff(r.DeltaTarget), fmtDiff(r.DeltaOverall))
		}
		if withKept {
			cells = append(cells, fmtStat(r.Kept))
		}
		cells = append(cells, step)
		if rel {
			cells = append(cells, fmt.Sprintf("%.2f", r.RelTime))
		}
		fmt.Fprintf(&sb, "| %s |\n", strings.Join(cells, " | "))
	}
	p := t.Preset
	spread := fmt.Sprintf("mean ± 95%% t-interval half-width over seeds %v (n = %d per trained row; the reference row is one evaluation)", t.Seeds, len(t.Seeds))
	if len(t.Seeds) < 2 {
		spread = fmt.Sprintf("ONE SEED (%v): means only, no interval — a demonstration, not a result", t.Seeds)
	}
	if paired != "" {
		spread += fmt.Sprintf("; Δ columns: paired difference to %s (same seed, so the same data order), mean [95%% interval]", paired)
	}
	fmt.Fprintf(&sb, "\nScores in %%, %s. "+
		"Chance: ARC/HellaSwag/MMLU %.0f%%, GSM and target 0%%. Preset %q: %s model pre-trained %d steps; SFT %d steps × %d sequences, lr %.0e; "+
		"ρ %.2g, λ %.2g, W %d, K %d, B_val %d, ValRefresh %d, %s Fisher from %d prompts, combination %s; evaluation on %s items. s/step is each run's mean training-step time (valuation included), taken run by run on whatever else the machine was doing: compare costs with the benchmarks' within-run ratios. Commit %s, %s.\n",
		spread, 100*t.Chance["arc"], p.Name, p.Model, p.Pretrain.Steps, p.SFT.Steps, p.SFT.Batch, p.SFT.LR,
		p.Rho, p.Valuation.Lambda, p.Valuation.Window, p.Valuation.Blocks, p.Valuation.ValExamples, p.Valuation.ValRefresh,
		p.Valuation.Fisher, p.Valuation.FisherPrompts, normalization(p.Valuation.Normalize), evalSize(p.Eval), t.Commit, t.Date)
	sb.WriteString(TablesCompute(t))
	if t.Command != "" {
		fmt.Fprintf(&sb, "Regenerate: `%s`\n", t.Command)
	}
	return sb.String()
}

// computeNote states what a table's distinct trained runs (keyed by directory) cost, as each run
// recorded it: training (offline passes included) plus evaluation, summed as if they ran one after
// another. The reference, warm-start and Fisher estimates they share are not counted, nor are the
// reference and warm-start rows (evaluations, no training).
func computeNote[R interface {
	cost() (string, float64, float64)
}](rows [][]R) string {
	secs := map[string]float64{}
	for _, runs := range rows {
		for _, run := range runs {
			if dir, train, eval := run.cost(); train > 0 {
				secs[dir] = train + eval
			}
		}
	}
	total := 0.0
	for _, s := range secs {
		total += s
	}
	return fmt.Sprintf("Compute: %d trained runs, %.1f h of training and evaluation in all (each run's own wall time, summed; shared reference, warm-start and Fisher estimates not counted).\n",
		len(secs), total/3600)
}

// TablesCompute is computeNote over several tables' runs (a run in two tables counts once).
func TablesCompute(tables ...*Table) string {
	var runs [][]*RunResult
	for _, t := range tables {
		for _, r := range t.Rows {
			runs = append(runs, r.Runs)
		}
	}
	return computeNote(runs)
}

func (res *RunResult) cost() (string, float64, float64) {
	return res.Dir, res.TrainSeconds, res.EvalSeconds
}
func (res *DPORunResult) cost() (string, float64, float64) {
	return res.Dir, res.TrainSeconds, res.EvalSeconds
}

// normalization names the combination of AlphaToken's objectives; tables from before the
// setting existed ("" in their JSON) used the z-score.
func normalization(n alphatoken.Normalization) string {
	if n == "" {
		return string(alphatoken.NormZScore)
	}
	return string(n)
}

func evalSize(e EvalOptions) string {
	probe, target := "all", "all"
	if e.MaxProbeItems > 0 {
		probe = fmt.Sprint(e.MaxProbeItems)
	}
	if e.MaxTargetItems > 0 {
		target = fmt.Sprint(e.MaxTargetItems)
	}
	return fmt.Sprintf("%s per probe, %s target", probe, target)
}

// CSV renders one line per row with means, stds and n.
func (t *Table) CSV() string {
	head := []string{"suite", "label", "method", "n", "retention_mean", "retention_std", "retention_ci95"}
	for _, p := range ProbeNames {
		head = append(head, p+"_mean", p+"_std", p+"_ci95")
	}
	head = append(head, "target_mean", "target_std", "target_ci95", "overall_mean", "overall_std", "overall_ci95",
		"delta_target_mean", "delta_target_ci95", "delta_overall_mean", "delta_overall_ci95",
		"step_seconds", "relative_time", "kept_mean", "commit", "date")
	var recs [][]string
	for _, r := range t.Rows {
		f := func(x float64) string { return fmt.Sprintf("%.4f", x) }
		rec := []string{t.Suite.Name, r.Label, r.Method, fmt.Sprint(r.Overall.N), f(r.Retention.Mean), f(r.Retention.Std), f(r.Retention.CI95)}
		for _, p := range ProbeNames {
			rec = append(rec, f(r.Probes[p].Mean), f(r.Probes[p].Std), f(r.Probes[p].CI95))
		}
		rec = append(rec, f(r.Target.Mean), f(r.Target.Std), f(r.Target.CI95), f(r.Overall.Mean), f(r.Overall.Std), f(r.Overall.CI95))
		for _, d := range []Stat{r.DeltaTarget, r.DeltaOverall} {
			if d.N == 0 {
				rec = append(rec, "", "")
			} else {
				rec = append(rec, f(d.Mean), f(d.CI95))
			}
		}
		recs = append(recs, append(rec, f(r.StepSeconds.Mean), f(r.RelTime), f(r.Kept.Mean), t.Commit, t.Date))
	}
	return csvText(head, recs)
}

// csvText renders a header line and records as CSV (RFC 4180 quoting).
func csvText(head []string, recs [][]string) string {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(head) // a bytes.Buffer does not fail
	_ = w.WriteAll(recs)
	return buf.String()
}

// Write stores <dir>/<suite>.md, .csv and .json.
func (t *Table) Write(dir string) error { return writeTable(filepath.Join(dir, t.Suite.Name), t) }

// writeTable stores a table's Markdown, CSV and JSON as base.md, base.csv and base.json.
func writeTable(base string, t interface {
	Markdown() string
	CSV() string
}) error {
	if err := atomicfile.WriteBytes(base+".md", []byte(t.Markdown())); err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(base+".csv", []byte(t.CSV())); err != nil {
		return err
	}
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(base+".json", append(b, '\n'))
}

// MarshalJSON writes NaN spreads (a single seed) as null.
func (s Stat) MarshalJSON() ([]byte, error) {
	f := func(x float64) any {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return x
	}
	return json.Marshal(map[string]any{"mean": f(s.Mean), "std": f(s.Std), "ci95": f(s.CI95), "n": s.N})
}

// LoadTable reads a table written by Table.Write (<suite>.json).
func LoadTable(path string) (*Table, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, errors.Wrapf(err, "ablations: reading %s", path)
	}
	var t Table
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, errors.Wrapf(err, "ablations: parsing %s", path)
	}
	return &t, nil
}

// UnmarshalJSON reads a Stat whose undefined spreads were written as null.
func (s *Stat) UnmarshalJSON(b []byte) error {
	var m struct {
		Mean, Std, CI95 *float64
		N               int
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	val := func(p *float64) float64 {
		if p == nil {
			return math.NaN()
		}
		return *p
	}
	s.Mean, s.Std, s.CI95, s.N = val(m.Mean), val(m.Std), val(m.CI95), m.N
	return nil
}
