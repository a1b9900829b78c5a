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
	"github.com/alphatoken/alphatoken/plots"
)

// Figures from the results of this package, drawn with plots/. Each returns a plots.Figure the
// caller saves (plots.Save: PNG and SVG) or shows inline (plots.SVG).

// errOf is the error bar of a Stat: its 95% t-interval half-width over seeds (none for one seed).
func errOf(s Stat) float64 {
	if math.IsNaN(s.CI95) {
		return 0
	}
	return s.CI95
}

// seedsNote says what the error bars of a figure over seeds are, e.g. "mean ± 95% t-interval over
// seeds 1–5" (one seed: "one seed, no interval").
func seedsNote(seeds []int) string {
	if len(seeds) < 2 {
		return fmt.Sprintf("seed %v only: means, no interval", seeds)
	}
	list := make([]string, len(seeds))
	for i, s := range seeds {
		list[i] = strconv.Itoa(s)
	}
	consecutive := true
	for i := 1; i < len(seeds); i++ {
		consecutive = consecutive && seeds[i] == seeds[i-1]+1
	}
	if consecutive {
		return fmt.Sprintf("mean ± 95%% t-interval over seeds %d–%d", seeds[0], seeds[len(seeds)-1])
	}
	return "mean ± 95% t-interval over seeds " + strings.Join(list, ",")
}

// TradeOffFigure plots target score against retention average per row of one or more tables, with
// 95% t-interval error bars over seeds (the title says so) and the Pareto front (SPEC §8).
func TradeOffFigure(title string, tables ...*Table) (*plot.Plot, error) {
	if len(tables) > 0 {
		title += "\n" + seedsNote(tables[0].Seeds)
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
	return plots.TradeOff(title, pts)
}

// CurvesFigure plots each row's unmasked training loss (mean over seeds) against the step.
func CurvesFigure(title string, t *Table) (*plot.Plot, error) {
	return curvesFigure(title, "response-token loss (nats/token, all tokens)", t, func(c CurvePoint) (float64, bool) { return c.FullLoss, true })
}

// JTgtCurvesFigure plots each row's J_tgt (validation NLL on the B_val examples, CurvePoint.JTgt,
// measured the same way for every method) against the step: the mean over seeds with its 95%
// t-interval as a band (the title says so).
func JTgtCurvesFigure(title string, t *Table) (*plot.Plot, error) {
	return curvesFigure(title+"\n"+seedsNote(t.Seeds), "J_tgt: validation NLL (nats/token)", t, func(c CurvePoint) (float64, bool) { return c.JTgt, c.JTgt > 0 })
}

// curvesFigure draws, per trained row, the mean over its runs of what get reads at each logged step
// that every run has, with the 95% interval band when there are at least 2 runs.
func curvesFigure(title, yLabel string, t *Table, get func(CurvePoint) (float64, bool)) (*plot.Plot, error) {
	var series []plots.Series
	var bands []plots.Band
	for _, r := range t.Rows {
		if r.Method == "reference" || len(r.Runs) == 0 {
			continue
		}
		perStep := map[int][]float64{}
		for _, run := range r.Runs {
			for _, c := range run.Curve {
				if v, ok := get(c); ok {
					perStep[c.Step] = append(perStep[c.Step], v)
				}
			}
		}
		var steps []int
		for st, vs := range perStep {
			if len(vs) == len(r.Runs) {
				steps = append(steps, st)
			}
		}
		if len(steps) == 0 {
			continue
		}
		slices.Sort(steps)
		xs, ys := make([]float64, len(steps)), make([]float64, len(steps))
		var band plots.Band
		for i, st := range steps {
			s := statOf(perStep[st])
			xs[i], ys[i] = float64(st), s.Mean
			if len(r.Runs) >= 2 {
				band.Lo, band.Hi = append(band.Lo, s.Lo()), append(band.Hi, s.Hi())
			}
		}
		xy, err := plots.XYs(xs, ys)
		if err != nil {
			return nil, err
		}
		series, bands = append(series, plots.Series{Name: r.Label, XYs: xy}), append(bands, band)
	}
	if len(series) == 0 {
		return nil, errors.Errorf("ablations: the %s table has no training curves of %s", t.Suite.Name, yLabel)
	}
	return plots.TrainingCurvesBands(title, yLabel, series, bands)
}

// SensitivityFigure turns the sensitivity table (rows labelled param=value) into one panel per
// parameter, marking the preset's default; error bars are 95% t-intervals over seeds (the title says so).
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
		params = append(params, *byParam[p])
	}
	return plots.SensitivityPanels(title+" — "+seedsNote(t.Seeds), params, 3)
}

// ValuePropagationFigure draws the sampled pairs with the low-risk region and share.
func ValuePropagationFigure(title string, res *ValuePropagationResult) (*plots.ColorBarPlot, error) {
	pairs := make([]plots.Pair, len(res.Pairs))
	for i, p := range res.Pairs {
		pairs[i] = plots.Pair(p)
	}
	return plots.ValuePropagation(title, plots.ValueProp{Pairs: pairs, Region: plots.LowRisk{MaxA: res.AThreshold, MaxDev: res.DevThreshold}, LogColor: true})
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
