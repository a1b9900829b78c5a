package ablations

import (
	"fmt"
	"strings"
	"time"

	"github.com/pkg/errors"
	"gonum.org/v1/plot"
)

// Twin tokens in DPO (README, "Results on the preference MiniBench"): a pair's two responses share
// a prefix (dpo.Twins). On it log π(y_w,t) = log π(y_l,t), so plain DPO's branch gradients cancel
// and no update of those tokens moves the pair's margin; a mask that keeps a twin in one branch
// only turns the cancelling pair into a one-sided push on a token both programs need. This
// diagnostic retrains rows at one seed (the suite's configuration, so the same data order as the
// cached run; the training math is unchanged) and reads, step by step, the in-graph counts every
// DPO run logs: twin tokens, twins kept per branch, twins kept in exactly one branch.

// TwinsRow is one method's treatment of the shared prefix over a run, in % (whole run unless said).
type TwinsRow struct {
	Label             string  `json:"label"`
	Method            string  `json:"method"`
	TwinShare         float64 `json:"twin_share_pct"`          // twin tokens among each branch's response tokens
	KeptTwinChosen    float64 `json:"kept_twin_chosen_pct"`    // of the twin tokens, kept in the chosen branch
	KeptTwinRejected  float64 `json:"kept_twin_rejected_pct"`  // … in the rejected branch
	OneSided          float64 `json:"one_sided_pct"`           // of the twin positions, kept in exactly one branch
	KeptOtherChosen   float64 `json:"kept_other_chosen_pct"`   // of the other (divergent) chosen tokens, kept
	KeptOtherRejected float64 `json:"kept_other_rejected_pct"` // … rejected tokens
	// Forks: the first position where a pair's responses part (dpo.Forks), kept per branch.
	ForkShare        float64 `json:"fork_share_pct"` // pairs with a fork (the others part where one response has ended)
	KeptForkChosen   float64 `json:"kept_fork_chosen_pct"`
	KeptForkRejected float64 `json:"kept_fork_rejected_pct"`
	// OneSidedWindows is the one-sided share per window of Window steps, at each window's last step.
	Steps           []int     `json:"steps"`
	OneSidedWindows []float64 `json:"one_sided_windows_pct"`
	// The retrained run's held-out pair accuracy and mean margin, and the cached run's when the run
	// cache holds it (the same numbers mean the masks read here are the table's run's).
	PairAccuracy   float64  `json:"pair_accuracy"`
	Margin         float64  `json:"margin"`
	CachedAccuracy *float64 `json:"cached_pair_accuracy,omitempty"`
	CachedMargin   *float64 `json:"cached_margin,omitempty"`
}

// TwinsResult is the diagnostic's output.
type TwinsResult struct {
	Preset  string     `json:"preset"`
	Design  string     `json:"design"`
	Seed    int        `json:"seed"`
	Steps   int        `json:"steps"`
	Window  int        `json:"window"`
	Rows    []TwinsRow `json:"rows"`
	Seconds float64    `json:"seconds"`
	Command string     `json:"command,omitempty"`
	Commit  string     `json:"commit"`
	Date    string     `json:"date"`
}

// Twins retrains each row at seed (LogEvery 1, no checkpoints) and reports how its mask treats the
// pairs' shared response prefix.
func (d *DPORunner) Twins(rows []DPORow, seed, window int) (*TwinsResult, error) {
	if window < 1 {
		return nil, errors.Errorf("ablations: dpo-twins window must be ≥ 1, got %d", window)
	}
	start := time.Now()
	res := &TwinsResult{Preset: d.Preset.Name, Design: d.DPO.Design, Seed: seed, Window: window, Commit: Commit(),
		Date: time.Now().UTC().Format("2006-01-02")}
	ref, err := d.refLogLiks()
	if err != nil {
		return nil, err
	}
	for _, row := range rows {
		if row.Method == WarmStartMethod {
			return nil, errors.New("ablations: dpo-twins: the warm-start row trains nothing")
		}
		tr, lm, cfg, err := d.scratchTrainer(row, seed, 0, 1)
		if err != nil {
			return nil, err
		}
		res.Steps = cfg.Train.Steps
		tr.Log = d.Log
		fmt.Fprintf(d.Log, "dpo-twins: %s, seed %d, %d steps\n", row.Label, seed, cfg.Train.Steps)
		if err := tr.Run(d.train); err != nil {
			return nil, err
		}
		tw := TwinsRow{Label: row.Label, Method: row.Method}
		var all, win twinCounts
		for i, h := range tr.History {
			if _, ok := h.Metrics["twin_tokens"]; !ok {
				return nil, errors.Errorf("ablations: method %s logs no twin counts", row.Method)
			}
			all.add(h.Metrics)
			win.add(h.Metrics)
			if h.Step%window == 0 || i == len(tr.History)-1 {
				tw.Steps, tw.OneSidedWindows = append(tw.Steps, h.Step), append(tw.OneSidedWindows, pct(win.oneSided, win.twins))
				win = twinCounts{}
			}
		}
		tw.TwinShare = pct(2*all.twins, all.tokChosen+all.tokRejected)
		tw.KeptTwinChosen, tw.KeptTwinRejected, tw.OneSided = pct(all.twinChosen, all.twins), pct(all.twinRejected, all.twins), pct(all.oneSided, all.twins)
		tw.KeptOtherChosen = pct(all.keptChosen-all.twinChosen, all.tokChosen-all.twins)
		tw.KeptOtherRejected = pct(all.keptRejected-all.twinRejected, all.tokRejected-all.twins)
		tw.ForkShare = pct(all.forks, float64(len(tr.History)*cfg.Train.Batch))
		tw.KeptForkChosen, tw.KeptForkRejected = pct(all.forkChosen, all.forks), pct(all.forkRejected, all.forks)
		pol, err := d.logLiks(lm)
		if err != nil {
			return nil, err
		}
		ps := d.pairScores(pol, ref, cfg.DPO.Beta)
		tw.PairAccuracy, tw.Margin = ps.Accuracy, ps.Margin
		if cached, err := cachedRun[DPORunConfig, DPORunResult](d.runDir(cfg), "cached DPO run", row.Label, cfg); err == nil && cached != nil {
			tw.CachedAccuracy, tw.CachedMargin = &cached.Pairs.Accuracy, &cached.Pairs.Margin
		}
		res.Rows = append(res.Rows, tw)
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// twinCounts sums a run's logged token and twin counts.
type twinCounts struct {
	tokChosen, tokRejected, keptChosen, keptRejected, twins, twinChosen, twinRejected, oneSided float64
	forks, forkChosen, forkRejected                                                             float64
}

func (c *twinCounts) add(mt map[string]float64) {
	c.tokChosen += mt["tokens_chosen"]
	c.tokRejected += mt["tokens_rejected"]
	c.keptChosen += mt["kept_chosen"]
	c.keptRejected += mt["kept_rejected"]
	c.twins += mt["twin_tokens"]
	c.twinChosen += mt["twin_kept_chosen"]
	c.twinRejected += mt["twin_kept_rejected"]
	c.oneSided += mt["twin_onesided"]
	c.forks += mt["fork_tokens"]
	c.forkChosen += mt["fork_kept_chosen"]
	c.forkRejected += mt["fork_kept_rejected"]
}

// pct is 100·a/b, 0 when b is 0.
func pct(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * a / b
}

// Markdown renders the result.
func (r *TwinsResult) Markdown() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "### Twin tokens: how each DPO mask treats the pairs' shared response prefix (preset %s, design %s, seed %d, %d steps)\n\n",
		r.Preset, r.Design, r.Seed, r.Steps)
	sb.WriteString("A *twin* is a response position in the common prefix of a pair's chosen and rejected programs: there log π(y_w,t) = log π(y_l,t), " +
		"so plain DPO's two branch gradients cancel and updating the token never moves the pair's margin. *One-sided*: the twin is kept in exactly " +
		"one branch (a push on a token both programs need); a mask that keeps each token with probability ρ = 0.5 independently in the two " +
		"branches leaves 50% of the twin positions one-sided. *Fork*: the first token where the two programs part (same context in both " +
		"branches; the token whose two log-ratios the margin most directly compares). *Other*: every token from the fork on.\n\n")
	fmt.Fprintf(&sb, "| Method | twins (%% of tokens) | twins kept, chosen (%%) | twins kept, rejected (%%) | one-sided (%% of twins) | first window | last window | forks kept, chosen (%%) | forks kept, rejected (%%) | other kept, chosen (%%) | other kept, rejected (%%) | pair acc (retrained / cached) | margin (retrained / cached) |\n")
	sb.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, w := range r.Rows {
		acc, mar := fmt.Sprintf("%.1f / –", w.PairAccuracy), fmt.Sprintf("%.4f / –", w.Margin)
		if w.CachedAccuracy != nil {
			acc, mar = fmt.Sprintf("%.1f / %.1f", w.PairAccuracy, *w.CachedAccuracy), fmt.Sprintf("%.4f / %.4f", w.Margin, *w.CachedMargin)
		}
		n := len(w.OneSidedWindows)
		fmt.Fprintf(&sb, "| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %s | %s |\n", w.Label, w.TwinShare, w.KeptTwinChosen,
			w.KeptTwinRejected, w.OneSided, w.OneSidedWindows[0], w.OneSidedWindows[n-1], w.KeptForkChosen, w.KeptForkRejected,
			w.KeptOtherChosen, w.KeptOtherRejected, acc, mar)
	}
	if len(r.Rows) > 0 {
		fmt.Fprintf(&sb, "\n%.1f%% of the pairs have a fork (the others part where one response ends).", r.Rows[0].ForkShare)
	}
	fmt.Fprintf(&sb, "\nOne seed; every step's batch counted (windows of %d steps). Each row is retrained with its suite configuration and seed; "+
		"\"cached\" is the table's run (equal numbers: the masks read here are that run's). Commit %s, %s; %.0f s.\n", r.Window, r.Commit, r.Date, r.Seconds)
	if r.Command != "" {
		fmt.Fprintf(&sb, "Regenerate: `%s`\n", r.Command)
	}
	return sb.String()
}

// CSV has one line per method and window.
func (r *TwinsResult) CSV() string {
	var recs [][]string
	for _, row := range r.Rows {
		for i, st := range row.Steps {
			recs = append(recs, []string{row.Label, row.Method, fmt.Sprint(st), fmt.Sprintf("%.3f", row.OneSidedWindows[i])})
		}
	}
	return csvText([]string{"label", "method", "step", "one_sided_pct"}, recs)
}

// TwinsFigure draws the one-sided share of twin positions against the step, one line per method.
func TwinsFigure(r *TwinsResult) (*plot.Plot, error) {
	return stepCurves(fmt.Sprintf("Twin positions kept in one branch only (%s, seed %d, windows of %d steps)", r.Preset, r.Seed, r.Window),
		"one-sided twins (% of twin positions)", len(r.Rows), func(i int) (string, []int, []float64) {
			return r.Rows[i].Label, r.Rows[i].Steps, r.Rows[i].OneSidedWindows
		})
}
