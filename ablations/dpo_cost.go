package ablations

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
)

// The DPO cost table: every method's training step in ONE process, interleaved round by round on
// the preset's real setting (the warm-start, the training pairs, the preset's batch and valuation),
// so that the ratios to plain DPO and to ConfPO are not skewed by what else the shared machine
// was doing at the time. The paper reports 7.72 h/epoch for AlphaToken-DPO against 5.58 h/epoch
// for ConfPO (1.38×).

// DPOCostRow is one method's measured step cost.
type DPOCostRow struct {
	Label      string    `json:"label"`
	Method     string    `json:"method"`
	CPU        float64   `json:"cpu_seconds_per_step"` // median over rounds of the process CPU time per step
	Wall       float64   `json:"wall_seconds_per_step"`
	VsDPO      float64   `json:"vs_dpo"`
	VsConfPO   float64   `json:"vs_confpo"`
	OfflineCPU float64   `json:"offline_cpu_seconds"` // the method's pass before step 0 (reference log-probs, oracle rewards, …)
	Rounds     []float64 `json:"cpu_per_round"`
}

// DPOCost is the cost table with its provenance.
type DPOCost struct {
	Preset        string       `json:"preset"`
	Design        string       `json:"design"`
	Rounds        int          `json:"rounds"`
	StepsPerRound int          `json:"steps_per_round"`
	Batch         int          `json:"batch_pairs"`
	Rows          []DPOCostRow `json:"rows"`
	Commit        string       `json:"commit"`
	Date          string       `json:"date"`
	Command       string       `json:"command"`
}

// MeasureDPOCost times the rows' DPO steps: a warm-up step each (graph compilation), then rounds
// of stepsPerRound steps per method in turn. Each method trains its own copy of the warm-start;
// nothing is written to disk.
func (d *DPORunner) MeasureDPOCost(rows []DPORow, rounds, stepsPerRound int) (*DPOCost, error) {
	if rounds < 1 || stepsPerRound < 1 {
		return nil, errors.Errorf("ablations: cost: rounds (%d) and steps per round (%d) must be ≥ 1", rounds, stepsPerRound)
	}
	type run struct {
		row DPORow
		tr  *train.Trainer
		res DPOCostRow
	}
	steps := 1 + rounds*stepsPerRound
	var runs []*run
	for _, row := range rows {
		if row.Method == WarmStartMethod {
			continue
		}
		tr, _, _, err := d.scratchTrainer(row, 1, steps, steps)
		if err != nil {
			return nil, err
		}
		tr.Log = io.Discard
		r := &run{row: row, tr: tr, res: DPOCostRow{Label: row.Label, Method: row.Method}}
		c0 := cpuSeconds()
		if p, ok := tr.Method.(train.Planner); ok {
			if err := p.Plan(d.train, nil, steps); err != nil {
				return nil, err
			}
		}
		r.res.OfflineCPU = cpuSeconds() - c0
		if err := tr.RunUntil(d.train, 1); err != nil { // warm-up: compilation, buffers
			return nil, err
		}
		fmt.Fprintf(d.Log, "cost: %s ready\n", row.Label)
		runs = append(runs, r)
	}
	var wall = map[*run][]float64{}
	for k := range rounds {
		for _, r := range runs {
			c0, t0 := cpuSeconds(), time.Now()
			if err := r.tr.RunUntil(d.train, r.tr.Step()+stepsPerRound); err != nil {
				return nil, err
			}
			r.res.Rounds = append(r.res.Rounds, (cpuSeconds()-c0)/float64(stepsPerRound))
			wall[r] = append(wall[r], time.Since(t0).Seconds()/float64(stepsPerRound))
		}
		fmt.Fprintf(d.Log, "cost: round %d/%d done\n", k+1, rounds)
	}
	median := func(x []float64) float64 {
		y := slices.Clone(x)
		slices.Sort(y)
		if len(y)%2 == 1 {
			return y[len(y)/2]
		}
		return (y[len(y)/2-1] + y[len(y)/2]) / 2
	}
	out := &DPOCost{Preset: d.Preset.Name, Design: d.DPO.Design, Rounds: rounds, StepsPerRound: stepsPerRound, Batch: d.DPO.Train.Batch,
		Commit: Commit(), Date: time.Now().UTC().Format("2006-01-02")}
	var dpoCPU, confCPU float64
	for _, r := range runs {
		r.res.CPU, r.res.Wall = median(r.res.Rounds), median(wall[r])
		switch r.row.Method {
		case "dpo":
			dpoCPU = r.res.CPU
		case "confpo":
			confCPU = r.res.CPU
		}
	}
	for _, r := range runs {
		if dpoCPU > 0 {
			r.res.VsDPO = r.res.CPU / dpoCPU
		}
		if confCPU > 0 {
			r.res.VsConfPO = r.res.CPU / confCPU
		}
		out.Rows = append(out.Rows, r.res)
	}
	return out, nil
}

// Markdown renders the cost table.
func (c *DPOCost) Markdown() string {
	var sb strings.Builder
	sb.WriteString("### Cost of a DPO step (all methods in one run)\n\n")
	sb.WriteString("| Method | CPU s/step | × DPO | × ConfPO | wall s/step | offline CPU s |\n|---|---|---|---|---|---|\n")
	for _, r := range c.Rows {
		ratio := func(x float64) string {
			if x == 0 {
				return "–"
			}
			return fmt.Sprintf("%.2f", x)
		}
		fmt.Fprintf(&sb, "| %s | %.3f | %s | %s | %.3f | %.1f |\n", r.Label, r.CPU, ratio(r.VsDPO), ratio(r.VsConfPO), r.Wall, r.OfflineCPU)
	}
	fmt.Fprintf(&sb, "\nPreset %q, DPO design %s: one step = %d pairs (%d sequences) of the training pairs, from the SFT warm-start; "+
		"after one warm-up step each, %d rounds × %d steps per method, interleaved; CPU s/step is the median over rounds of the process's "+
		"CPU time (getrusage) per step, robust to other jobs on the shared 2-core machine; wall time alongside. The offline CPU is the pass "+
		"before step 0 (reference log-probabilities, SePO's oracle rewards, AlphaToken's validation pairs), cached across runs. "+
		"The paper's AlphaToken-DPO epoch takes 7.72 h against ConfPO's 5.58 h (1.38×). Commit %s, %s.\n",
		c.Preset, c.Design, c.Batch, 2*c.Batch, c.Rounds, c.StepsPerRound, c.Commit, c.Date)
	if c.Command != "" {
		fmt.Fprintf(&sb, "Regenerate: `%s`\n", c.Command)
	}
	return sb.String()
}

// Write stores <dir>/cost.md, .csv and .json.
func (c *DPOCost) Write(dir string) error { return writeTable(filepath.Join(dir, "cost"), c) }

// CSV has one line per method.
func (c *DPOCost) CSV() string {
	var recs [][]string
	for _, r := range c.Rows {
		recs = append(recs, []string{r.Label, r.Method, fmt.Sprintf("%.4f", r.CPU), fmt.Sprintf("%.4f", r.VsDPO), fmt.Sprintf("%.4f", r.VsConfPO),
			fmt.Sprintf("%.4f", r.Wall), fmt.Sprintf("%.3f", r.OfflineCPU), c.Commit, c.Date})
	}
	return csvText([]string{"label", "method", "cpu_seconds_per_step", "vs_dpo", "vs_confpo", "wall_seconds_per_step", "offline_cpu_seconds", "commit", "date"}, recs)
}

// scratchTrainer is a quiet trainer of a row at seed on a fresh copy of the warm-start, writing
// nothing (no output directory, no checkpoints): for measurements that retrain a row (cost,
// twins). steps > 0 overrides the row's steps; metrics are logged every logEvery steps.
func (d *DPORunner) scratchTrainer(row DPORow, seed, steps, logEvery int) (*train.Trainer, *model.LM, DPORunConfig, error) {
	cfg, err := d.resolve(row, seed)
	if err != nil {
		return nil, nil, cfg, err
	}
	if steps > 0 {
		cfg.Train.Steps = steps
	}
	lm, err := d.Warm.Clone()
	if err != nil {
		return nil, nil, cfg, err
	}
	m, _, _, err := d.method(cfg, lm)
	if err != nil {
		return nil, nil, cfg, err
	}
	tc := trainConfig(cfg.Train, cfg.Seed, "")
	tc.CheckpointEvery, tc.KeepCheckpoints, tc.LogEvery, tc.Quiet = 0, 0, logEvery, true
	tr, err := train.New(lm, d.Tok, tc, m)
	return tr, lm, cfg, err
}
