package ablations

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/pkg/errors"
	"gonum.org/v1/plot"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/diag"
	"github.com/alphatoken/alphatoken/plots"
)

// Figures from the results of this package, drawn with plots/. Each returns a plots.Figure the
// caller saves (plots.Save: PNG and SVG) or shows inline (plots.SVG).

// errOf is the half-width of a Stat's error bar: its 95% t-interval (none for one seed).
func errOf(s Stat) float64 {
	if math.IsNaN(s.CI95) || s.N < 2 {
		return 0
	}
	return s.CI95
}

// seedsText names seeds for a figure: "seed 1", "seeds 1, 2, 3".
func seedsText(seeds []int) string {
	parts := make([]string, len(seeds))
	for i, s := range seeds {
		parts[i] = strconv.Itoa(s)
	}
	if len(seeds) == 1 {
		return "seed " + parts[0]
	}
	return "seeds " + strings.Join(parts, ", ")
}

// barsText says what a figure's error bars are, for the given seeds.
func barsText(seeds []int) string {
	if len(seeds) < 2 {
		return fmt.Sprintf("one run per point (%s): no error bars", seedsText(seeds))
	}
	return fmt.Sprintf("bars: mean ± 95%% t-interval over %d seeds (%s)", len(seeds), strings.TrimPrefix(seedsText(seeds), "seeds "))
}

// TradeOffFigure plots target score (code pass@1) against retention average per row of one or more
// tables, with error bars of the 95% t-interval over the seeds (said in the figure) and the Pareto
// front (SPEC §8). The seeds are the first table's.
func TradeOffFigure(title string, tables ...*Table) (*plot.Plot, error) {
	if len(tables) == 0 {
		return nil, errors.New("ablations: no table for the trade-off figure")
	}
	var pts []plots.MethodPoint
	seen := map[string]bool{} // rows are the same runs when method and overrides match, whatever their labels
	for _, t := range tables {
		for _, r := range t.Rows {
			row := r.Row
			row.Label = ""
			key, _ := json.Marshal(row)
			if seen[string(key)] {
				continue
			}
			seen[string(key)] = true
			pts = append(pts, plots.MethodPoint{Name: r.Label, Retention: r.Retention.Mean, RetentionErr: errOf(r.Retention),
				Target: r.Target.Mean, TargetErr: errOf(r.Target)})
		}
	}
	return plots.TradeOffWith(title, pts, plots.TradeOffOptions{
		XLabel: "retention average (%)",
		YLabel: "target: code pass@1 (%)",
		Bars:   barsText(tables[0].Seeds),
	})
}

// CurveMetric picks the quantity of a training curve.
type CurveMetric string

const (
	CurveFullLoss CurveMetric = "full_loss" // the batch's unmasked response-token loss
	CurveJTgt     CurveMetric = "j_tgt"     // J_tgt, the B_val validation loss (CurvePoint.JTgt)
)

func (m CurveMetric) of(p CurvePoint) float64 {
	if m == CurveJTgt {
		return p.JTgt
	}
	return p.FullLoss
}

// CurveBand is one row's curve over its seeds: at each step, the mean and its 95% t-interval
// [Lo, Hi] (Lo = Hi = Mean for one seed).
type CurveBand struct {
	Label string    `json:"label"`
	Seeds []int     `json:"seeds"`
	Steps []int     `json:"steps"`
	Mean  []float64 `json:"mean"`
	Lo    []float64 `json:"lo"`
	Hi    []float64 `json:"hi"`
}

// CurveBands aggregates each row's run curves at the steps every run logged the metric (J_tgt is
// logged every jTgtEvery steps: the points where it is 0 are skipped). Rows without curves are left
// out.
func CurveBands(t *Table, m CurveMetric) []CurveBand {
	var out []CurveBand
	for _, r := range t.Rows {
		if len(r.Runs) == 0 {
			continue
		}
		byStep := map[int][]float64{}
		var steps []int
		for _, run := range r.Runs {
			for _, p := range run.Curve {
				v := m.of(p)
				if m == CurveJTgt && v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
					continue
				}
				if _, ok := byStep[p.Step]; !ok {
					steps = append(steps, p.Step)
				}
				byStep[p.Step] = append(byStep[p.Step], v)
			}
		}
		slices.Sort(steps)
		b := CurveBand{Label: r.Label}
		for _, run := range r.Runs {
			b.Seeds = append(b.Seeds, int(run.Config.Seed))
		}
		for _, st := range steps {
			vs := byStep[st]
			if len(vs) != len(r.Runs) {
				continue // a step not every seed logged
			}
			mean, _ := diag.MeanStd(vs)
			half := 0.0
			if len(vs) > 1 {
				half = diag.CI95(vs)
			}
			b.Steps = append(b.Steps, st)
			b.Mean, b.Lo, b.Hi = append(b.Mean, mean), append(b.Lo, mean-half), append(b.Hi, mean+half)
		}
		if len(b.Steps) > 0 {
			out = append(out, b)
		}
	}
	return out
}

// CurvesFigure plots each row's curve of the metric against the step: the mean over the table's
// seeds with a band of its 95% t-interval (the title says which seeds).
func CurvesFigure(title string, t *Table, m CurveMetric) (*plot.Plot, []CurveBand, error) {
	bands := CurveBands(t, m)
	var series []plots.Series
	for _, b := range bands {
		xs := make([]float64, len(b.Steps))
		for i, st := range b.Steps {
			xs[i] = float64(st)
		}
		xy, err := plots.XYs(xs, b.Mean)
		if err != nil {
			return nil, nil, err
		}
		s := plots.Series{Name: b.Label, XYs: xy}
		if len(b.Seeds) > 1 {
			s.Lo, s.Hi = b.Lo, b.Hi
		}
		series = append(series, s)
	}
	if len(series) == 0 {
		return nil, nil, errors.Errorf("ablations: the table has no %s curves", m)
	}
	what := "mean over " + seedsText(t.Seeds) + ", band: 95% t-interval"
	if len(t.Seeds) < 2 {
		what = "one run (" + seedsText(t.Seeds) + "): no band"
	}
	yLabel := "response-token loss (nats/token, all tokens)"
	if m == CurveJTgt {
		yLabel = "J_tgt: validation loss (nats/token)"
	}
	p, err := plots.TrainingCurves(title+"\n"+what, yLabel, series)
	return p, bands, err
}

// SensitivityFigure turns the sensitivity table (rows labelled param=value) into one panel per
// parameter, marking the preset's default.
func SensitivityFigure(title string, t *Table) (*plots.Panels, error) {
	defaults := map[string]float64{"rho": t.Preset.Rho, "lambda": t.Preset.Valuation.Lambda,
		"window": float64(t.Preset.Valuation.Window), "k": float64(t.Preset.Valuation.Blocks),
		"val_examples": float64(t.Preset.Valuation.ValExamples), "val_refresh": float64(t.Preset.Valuation.ValRefresh)}
	names := map[string]string{"rho": "ρ (share kept)", "lambda": "λ (stability weight)", "window": "W (causal window, tokens)",
		"k": "K (scored blocks)", "val_examples": "B_val (validation examples)", "val_refresh": "ValRefresh (steps)"}
	var order []string
	byParam := map[string]*plots.Sensitivity{}
	for _, r := range t.Rows {
		param, valueText, ok := strings.Cut(r.Label, "=")
		if !ok {
			continue
		}
		value, err := strconv.ParseFloat(valueText, 64)
		if err != nil {
			continue
		}
		s, ok := byParam[param]
		if !ok {
			s = &plots.Sensitivity{Param: names[param], Default: defaults[param]}
			byParam[param] = s
			order = append(order, param)
		}
		s.Points = append(s.Points, plots.SensitivityPoint{Value: value,
			Overall:   plots.Estimate{Mean: r.Overall.Mean, Err: errOf(r.Overall)},
			Target:    plots.Estimate{Mean: r.Target.Mean, Err: errOf(r.Target)},
			Retention: plots.Estimate{Mean: r.Retention.Mean, Err: errOf(r.Retention)}})
	}
	var params []plots.Sensitivity
	for _, p := range order {
		s := *byParam[p]
		s.Integer = p == "k" || p == "val_refresh" || p == "window" || p == "val_examples"
		params = append(params, s)
	}
	return plots.SensitivityPanels(title+": "+barsText(t.Seeds), params, 3)
}

// ValuePropagationFigure draws the sampled pairs with the low-risk region and share.
func ValuePropagationFigure(title string, res *ValuePropagationResult) (*plots.ColorBarPlot, error) {
	pairs := make([]plots.Pair, len(res.Pairs))
	for i, p := range res.Pairs {
		pairs[i] = plots.Pair(p)
	}
	return plots.ValuePropagation(title, plots.ValueProp{Pairs: pairs, Region: plots.LowRisk{MaxA: res.AThreshold, MaxDev: res.DevThreshold},
		LogColor: true, ColorFloor: plots.DefaultColorFloor})
}

// FidelityFigures returns the scatter of Φ_prx against the oracle (for the first result), the
// top-k overlap curves of every Fisher kind, and a bar chart of their Spearman correlations.
func FidelityFigures(results []*FidelityResult) (scatter, overlap, bars *plot.Plot, err error) {
	if len(results) == 0 {
		return nil, nil, nil, errors.New("ablations: no fidelity results")
	}
	var main *FidelityResult
	var series []plots.Series
	var bs []plots.Bar
	for _, r := range results {
		if r.Kind == alphatoken.FisherDiag || (main == nil && r.Kind != alphatoken.FisherNone) {
			main = r
		}
		xy, err := plots.XYs(r.KFracs, r.Overlap)
		if err != nil {
			return nil, nil, nil, err
		}
		series = append(series, plots.Series{Name: fisherLabel(r.Kind), XYs: xy})
		sp := r.Spearman
		if math.IsNaN(sp) {
			sp = 0
		}
		bs = append(bs, plots.Bar{Name: fisherLabel(r.Kind), Mean: sp})
	}
	if main == nil {
		main = results[0]
	}
	pts, err := plots.XYs(main.Proxy, main.Oracle)
	if err != nil {
		return nil, nil, nil, err
	}
	if scatter, err = plots.ProxyScatter(fmt.Sprintf("Fisher proxy (%s) vs oracle retention value", fisherLabel(main.Kind)), pts, main.Spearman, main.Pearson); err != nil {
		return nil, nil, nil, err
	}
	if overlap, err = plots.TopKOverlap("Top-k overlap of Φ_prx with the oracle", series); err != nil {
		return nil, nil, nil, err
	}
	bars, err = plots.Bars("Rank correlation with the oracle, by Fisher", "Spearman correlation", bs)
	return scatter, overlap, bars, err
}

func fisherLabel(k alphatoken.FisherKind) string {
	switch k {
	case alphatoken.FisherDiag:
		return "Diagonal Fisher"
	case alphatoken.FisherKFAC:
		return "Kronecker Fisher"
	}
	return "No Fisher"
}

// CoverageFigure draws one t-SNE panel per method, kept vs dropped tokens, coverage in the title.
func CoverageFigure(title string, res *CoverageResult) (*plots.Panels, error) {
	var panels []plots.CoveragePanel
	for _, m := range res.Methods {
		kept, err := plots.Points2D(res.Points, res.Kept[m])
		if err != nil {
			return nil, err
		}
		dropped := make([]bool, len(res.Kept[m]))
		for i, k := range res.Kept[m] {
			dropped[i] = !k
		}
		rej, err := plots.Points2D(res.Points, dropped)
		if err != nil {
			return nil, err
		}
		panels = append(panels, plots.CoveragePanel{Method: m, Coverage: res.Coverage[m], Selected: kept, Rejected: rej})
	}
	return plots.TokenCoverage(title, panels, len(panels))
}

// StabilityFigure draws CKA per layer, one line per fine-tuned method.
func StabilityFigure(title string, res *StabilityResult) (*plot.Plot, error) {
	var series []plots.Series
	for _, m := range res.Methods {
		c := res.CKA[m]
		xs := make([]float64, len(c))
		for i := range xs {
			xs[i] = float64(i)
		}
		xy, err := plots.XYs(xs, c)
		if err != nil {
			return nil, err
		}
		series = append(series, plots.Series{Name: m, XYs: xy})
	}
	return plots.CKALayers(title, series)
}

// TokenValues converts one example's scores to the token visualisation input.
func TokenValues(scores []alphatoken.TokenScore, example int) []plots.TokenValue {
	var out []plots.TokenValue
	for _, s := range scores {
		if s.Example == example {
			out = append(out, plots.TokenValue{Text: s.Token, Value: s.Value, Kept: s.Kept})
		}
	}
	return out
}
