package ablations

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/pkg/errors"
	"gonum.org/v1/plot"

	"github.com/alphatoken/alphatoken/plots"
)

// ci95Of is a Stat's 95% half-width for an error bar (0 when undefined: one value).
func ci95Of(s Stat) float64 {
	if math.IsNaN(s.CI95) {
		return 0
	}
	return s.CI95
}

// seedList renders seeds as "1–5" when consecutive, else "1, 3, 7".
func seedList(seeds []int) string {
	consecutive := len(seeds) > 2
	for i := 1; i < len(seeds); i++ {
		consecutive = consecutive && seeds[i] == seeds[i-1]+1
	}
	if consecutive {
		return fmt.Sprintf("%d–%d", seeds[0], seeds[len(seeds)-1])
	}
	parts := make([]string, len(seeds))
	for i, s := range seeds {
		parts[i] = fmt.Sprint(s)
	}
	return strings.Join(parts, ", ")
}

// DPOTradeOffPoints are the rows of one or more DPO tables on the preference–retention plane (a
// row whose runs are the same runs in two tables, whatever its labels and however its settings are
// spelled, is drawn once).
func DPOTradeOffPoints(tables ...*DPOTable) []plots.MethodPoint {
	var pts []plots.MethodPoint
	seen := map[string]bool{}
	for _, t := range tables {
		for _, r := range t.Rows {
			var dirs []string
			for _, run := range r.Runs {
				dirs = append(dirs, run.Dir)
			}
			key := strings.Join(dirs, "\n")
			if len(dirs) == 0 {
				row := r.Row
				row.Label = ""
				b, _ := json.Marshal(row)
				key = string(b)
			}
			if seen[key] {
				continue
			}
			seen[key] = true
			pts = append(pts, plots.MethodPoint{Name: r.Label, Retention: r.Retention.Mean, RetentionErr: ci95Of(r.Retention),
				Target: r.Preference.Mean, TargetErr: ci95Of(r.Preference)})
		}
	}
	return pts
}

// DPOTradeOffFigure plots preference (mean of pair accuracy and target pass@1) against the
// retention average per row, with 95% t-interval error bars and the Pareto front; the title states
// the seeds.
func DPOTradeOffFigure(title string, tables ...*DPOTable) (*plot.Plot, error) {
	if len(tables) == 0 {
		return nil, errors.New("ablations: no DPO tables")
	}
	p, err := plots.TradeOff(fmt.Sprintf("%s (mean ± 95%% CI, seeds %s)", title, seedList(tables[0].Seeds)), DPOTradeOffPoints(tables...))
	if err != nil {
		return nil, err
	}
	p.Y.Label.Text = "preference: mean of pair accuracy and pass@1 (%)"
	return p, nil
}

// DPOCurvesFigure plots each trained row's held-out pair reward accuracy (mean over seeds)
// against the step (the runs' PairEvalHook points).
func DPOCurvesFigure(title string, t *DPOTable) (*plot.Plot, error) {
	var series []plots.Series
	for _, r := range t.Rows {
		sum, cnt := map[int]float64{}, map[int]int{}
		var steps []int
		for _, run := range r.Runs {
			for _, c := range run.Curve {
				if c.EvalLoss == 0 && c.EvalAccuracy == 0 {
					continue // not an evaluation step
				}
				if cnt[c.Step] == 0 {
					steps = append(steps, c.Step)
				}
				sum[c.Step] += 100 * c.EvalAccuracy
				cnt[c.Step]++
			}
		}
		if len(steps) == 0 {
			continue
		}
		xs, ys := make([]float64, len(steps)), make([]float64, len(steps))
		for i, s := range steps {
			xs[i], ys[i] = float64(s), sum[s]/float64(cnt[s])
		}
		xy, err := plots.XYs(xs, ys)
		if err != nil {
			return nil, err
		}
		series = append(series, plots.Series{Name: r.Label, XYs: xy})
	}
	if len(series) == 0 {
		return nil, errors.New("ablations: the DPO table has no held-out pair curves")
	}
	return plots.TrainingCurves(fmt.Sprintf("%s (mean over seeds %s)", title, seedList(t.Seeds)), "held-out reward accuracy (%, strict >)", series)
}
