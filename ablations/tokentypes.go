package ablations

import (
	"fmt"
	"strings"
	"time"

	"github.com/pkg/errors"
	"gonum.org/v1/plot"

	"github.com/alphatoken/alphatoken/ablations/minibench"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/methods"
	"github.com/alphatoken/alphatoken/plots"
)

// Kept token types over training (issue 12, item 3): which tokens each method keeps, as the share
// of "decision" tokens (minibench.ProgramByteTypes) among the kept ones, step by step. Each run is
// retrained from the reference with the suite's configuration and seed (so the same data order as
// the cached run) and the in-graph metrics kept_class / tokens_class (methods.Env.Classes); the
// training math is unchanged. Full FT keeps every token: its share is the batch's, which the same
// seed's batches give (tokens_class / tokens of any other method's run).

// DecisionClasses marks, per label position of every example, whether the predicted response token
// is a decision token of its MiniPy program (1) or not (0), and returns the share of decision tokens
// over all response tokens. Each token is decoded alone; a token of several bytes is a decision
// token if any of its bytes is; a token that decodes to nothing (end of sequence) is format.
func (r *Runner) DecisionClasses(examples []data.Example) (*methods.TokenTable, float64, error) {
	tt := &methods.TokenTable{Name: "decision tokens", Values: make([][]float32, len(examples))}
	var dec, all int
	for i, ex := range examples {
		tt.Values[i] = make([]float32, len(ex.IDs))
		resp := ex.Response()
		var text strings.Builder
		spans := make([][2]int, len(resp))
		for j, id := range resp {
			s := r.Tok.Decode([]int{id})
			spans[j] = [2]int{text.Len(), text.Len() + len(s)}
			text.WriteString(s)
		}
		types := minibench.ProgramByteTypes(text.String())
		for j := range resp {
			p := ex.PromptLen + j - 1 // the label position that predicts response token j
			if p < 0 {
				continue
			}
			for k := spans[j][0]; k < spans[j][1]; k++ {
				if types[k] == minibench.Decision {
					tt.Values[i][p] = 1
					break
				}
			}
			all++
			if tt.Values[i][p] == 1 {
				dec++
			}
		}
	}
	if all == 0 {
		return nil, 0, errors.New("ablations: no response tokens to classify")
	}
	return tt, float64(dec) / float64(all), nil
}

// KeptTypesSeries is one method's curve: at each window's last step, the share (%) of decision
// tokens among the tokens it kept over the window.
type KeptTypesSeries struct {
	Label    string    `json:"label"`
	Method   string    `json:"method"`
	Steps    []int     `json:"steps"`
	Decision []float64 `json:"decision_share_pct"`
	Kept     []float64 `json:"kept_pct"` // share of response tokens kept over the window
	// Overall is the decision share over every kept token of the run.
	Overall float64 `json:"overall_decision_share_pct"`
}

// KeptTypesResult is the diagnostic's output.
type KeptTypesResult struct {
	Preset       string            `json:"preset"`
	Seed         int               `json:"seed"`
	Steps        int               `json:"steps"`
	Window       int               `json:"window"`
	DataDecision float64           `json:"data_decision_share_pct"` // over all training response tokens
	Series       []KeptTypesSeries `json:"series"`
	Seconds      float64           `json:"seconds"`
	Command      string            `json:"command,omitempty"`
	Commit       string            `json:"commit"`
	Date         string            `json:"date"`
}

// KeptTypes retrains each row (Full FT aside, see above) at one seed for steps (0: the preset's)
// and records the decision share of its kept tokens in windows of window steps.
func (r *Runner) KeptTypes(rows []Row, seed, steps, window int) (*KeptTypesResult, error) {
	if window < 1 {
		return nil, errors.Errorf("ablations: kept-types window must be ≥ 1, got %d", window)
	}
	start := time.Now()
	classes, share, err := r.DecisionClasses(r.train)
	if err != nil {
		return nil, err
	}
	res := &KeptTypesResult{Preset: r.Preset.Name, Seed: seed, Window: window, DataDecision: 100 * share, Commit: Commit(),
		Date: time.Now().UTC().Format("2006-01-02")}
	var batchShare *KeptTypesSeries // tokens_class / tokens of the batches (Full FT's share)
	var fullRow *Row
	for _, row := range rows {
		if row.Method == "full" {
			fullRow = &row
			continue
		}
		cfg, err := r.resolve(row, seed)
		if err != nil {
			return nil, err
		}
		if steps > 0 {
			cfg.SFT.Steps = steps
		}
		res.Steps = cfg.SFT.Steps
		lm, err := r.Ref.Clone()
		if err != nil {
			return nil, err
		}
		m, _, err := r.method(cfg, lm, func(e *methods.Env) { e.Classes = classes })
		if err != nil {
			return nil, err
		}
		tc := train.Config{Steps: cfg.SFT.Steps, BatchSize: cfg.SFT.Batch, MaxLen: cfg.SFT.MaxLen, BucketQuantum: 16, LR: cfg.SFT.LR,
			Seed: cfg.Seed, LogEvery: 1, Quiet: true}
		tr, err := train.New(lm, r.Tok, tc, m)
		if err != nil {
			return nil, err
		}
		tr.Log = r.Log
		fmt.Fprintf(r.Log, "kept-types: %s, seed %d, %d steps\n", row.Label, seed, cfg.SFT.Steps)
		if err := tr.Run(r.train); err != nil {
			return nil, err
		}
		s := KeptTypesSeries{Label: row.Label, Method: row.Method}
		b := KeptTypesSeries{Label: "Full FT (keeps every token: the batches' share)", Method: "full"}
		var kc, k, tcl, tot, allKC, allK float64
		for i, h := range tr.History {
			if _, ok := h.Metrics["kept_class"]; !ok {
				return nil, errors.Errorf("ablations: method %s has no hard mask to classify (kept-types needs one)", row.Method)
			}
			kc, k = kc+h.Metrics["kept_class"], k+h.Metrics["kept"]
			tcl, tot = tcl+h.Metrics["tokens_class"], tot+h.Metrics["tokens"]
			allKC, allK = allKC+h.Metrics["kept_class"], allK+h.Metrics["kept"]
			if h.Step%window == 0 || i == len(tr.History)-1 {
				s.Steps, s.Decision, s.Kept = append(s.Steps, h.Step), append(s.Decision, 100*kc/max(k, 1)), append(s.Kept, 100*k/max(tot, 1))
				b.Steps, b.Decision, b.Kept = append(b.Steps, h.Step), append(b.Decision, 100*tcl/max(tot, 1)), append(b.Kept, 100)
				kc, k, tcl, tot = 0, 0, 0, 0
			}
		}
		s.Overall = 100 * allKC / max(allK, 1)
		res.Series = append(res.Series, s)
		if batchShare == nil {
			batchShare = &b
		}
	}
	if fullRow != nil {
		if batchShare == nil {
			return nil, errors.New("ablations: kept-types: Full FT's share comes from the batches of another method's run: add one")
		}
		batchShare.Label = fullRow.Label + " (keeps every token: the batches' share)"
		var sum float64
		for _, d := range batchShare.Decision {
			sum += d
		}
		batchShare.Overall = sum / float64(len(batchShare.Decision))
		res.Series = append([]KeptTypesSeries{*batchShare}, res.Series...)
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// Markdown renders the result: per method, the decision share of its kept tokens over the whole
// run and in the first and last windows.
func (k *KeptTypesResult) Markdown() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "### Kept token types over training (preset %s, seed %d, %d steps)\n\n", k.Preset, k.Seed, k.Steps)
	fmt.Fprintf(&sb, "Share of MiniPy *decision* tokens (constants, operators, the operation's identifiers; `minibench.ProgramByteTypes`) "+
		"among the tokens each method keeps, in windows of %d steps. The training data has %.1f%% decision tokens; keeping tokens "+
		"at random keeps that share in expectation.\n\n", k.Window, k.DataDecision)
	sb.WriteString("| Method | decision share of kept tokens, whole run (%) | first window (%) | last window (%) | kept (%) |\n|---|---|---|---|---|\n")
	for _, s := range k.Series {
		n := len(s.Decision)
		var kept float64
		for _, x := range s.Kept {
			kept += x / float64(n)
		}
		fmt.Fprintf(&sb, "| %s | %.1f | %.1f | %.1f | %.0f |\n", s.Label, s.Overall, s.Decision[0], s.Decision[n-1], kept)
	}
	fmt.Fprintf(&sb, "\nOne seed (a retrained run with the suite's configuration and seed, so the same data order; runs differ across CPUs). Commit %s, %s; %.0f s.\n", k.Commit, k.Date, k.Seconds)
	if k.Command != "" {
		fmt.Fprintf(&sb, "Regenerate: `%s`\n", k.Command)
	}
	return sb.String()
}

// CSV has one line per method and window.
func (k *KeptTypesResult) CSV() string {
	var recs [][]string
	for _, s := range k.Series {
		for i, st := range s.Steps {
			recs = append(recs, []string{s.Label, s.Method, fmt.Sprint(st), fmt.Sprintf("%.3f", s.Decision[i]), fmt.Sprintf("%.3f", s.Kept[i])})
		}
	}
	return csvText([]string{"label", "method", "step", "decision_share_pct", "kept_pct"}, recs)
}

// KeptTypesFigure draws the decision share of kept tokens against the step, one line per method.
func KeptTypesFigure(k *KeptTypesResult) (*plot.Plot, error) {
	return stepCurves(fmt.Sprintf("Decision tokens among kept tokens (%s, seed %d, windows of %d steps)", k.Preset, k.Seed, k.Window),
		"decision share of kept tokens (%)", len(k.Series), func(i int) (string, []int, []float64) {
			return k.Series[i].Label, k.Series[i].Steps, k.Series[i].Decision
		})
}

// stepCurves draws n curves of values at training steps; curve(i) gives the i-th one's label,
// steps and values.
func stepCurves(title, yLabel string, n int, curve func(i int) (string, []int, []float64)) (*plot.Plot, error) {
	series := make([]plots.Series, n)
	for i := range n {
		label, steps, ys := curve(i)
		xs := make([]float64, len(steps))
		for j, st := range steps {
			xs[j] = float64(st)
		}
		xy, err := plots.XYs(xs, ys)
		if err != nil {
			return nil, err
		}
		series[i] = plots.Series{Name: label, XYs: xy}
	}
	return plots.TrainingCurves(title, yLabel, series)
}
