// Package plots draws the AlphaToken figures (SPEC §8) with gonum/plot.
//
// Every figure is a function that takes results as typed Go values, copies
// and validates them, and returns a *plot.Plot, or for multi-panel figures a
// *Panels (panels aligned with plot.Align) or a *ColorBarPlot (a plot with
// a colour bar). All three satisfy Figure, which Save, WriteFile, PNG and
// SVG render:
//
//	p, err := plots.TradeOff("Adaptation vs retention (mean ± std, 3 seeds)", points)
//	if err != nil { ... }
//	err = plots.Save(p, 6, 4.5, "runs/figs/tradeoff") // tradeoff.png + tradeoff.svg
//
// In a GoNB notebook, show the bytes inline (plots never imports the
// kernel):
//
//	png, err := plots.PNG(p, 6, 4.5)
//	gonbui.DisplayPNG(png)
//
// # Figures
//
//	figure                       function            input                    returns
//	training curves              TrainingCurves      []Series                 *plot.Plot
//	adaptation–retention         TradeOff            []MethodPoint            *plot.Plot
//	sensitivity (ρ, λ, W, K, B)  SensitivityPanels   []Sensitivity            *Panels
//	value propagation            ValuePropagation    ValueProp{[]Pair, ...}   *ColorBarPlot
//	Fisher-proxy scatter         ProxyScatter        plotter.XYs, ρ_s, r      *plot.Plot
//	top-k overlap                TopKOverlap         []Series                 *plot.Plot
//	Fisher kinds (bar chart)     Bars                []Bar                    *plot.Plot
//	token coverage (t-SNE)       TokenCoverage       []CoveragePanel          *Panels
//	representation stability     CKALayers           []Series                 *plot.Plot
//	  heat-map variant           CKAHeatmap          []Series                 *ColorBarPlot
//	token visualisation          TokenHTML           []TokenValue             string (HTML)
//	  image variant              TokenPlot           []TokenValue             *plot.Plot, height
//
// The inputs are plain values, so results from alphatoken/diag convert
// directly: plots.Pair(ps) for a diag.PairStat, XYs(xs, ys) for paired
// slices (Φ_prx vs oracle values, k/n vs TopKOverlapCurve), Points2D for
// diag.TSNE's embedding split by a selected mask. LowRisk.Share and
// ParetoFront follow diag.RiskShare and diag.ParetoFront exactly.
//
// Suggested sizes (inches): single plots 6 × 4 (TradeOff 6 × 4.5);
// SensitivityPanels 10 × 6 for five parameters; TokenCoverage 4 × 3.5 per
// panel; ValuePropagation 7 × 5; CKAHeatmap 8 × (1 + 0.45 per method);
// TokenPlot returns the height it needs at the width you choose. At these
// sizes no text is smaller than 10pt.
//
// # Errors
//
// Following gonum's plotter convention, constructors return an error
// (never panic) for NaN, ±Inf or empty data, and for mismatched lengths and
// out-of-range values (negative error bars, probabilities outside [0, 1]).
// Messages start with "plots: " and name the input, e.g.
//
//	plots: series[1] "Top-ρ": point 3 (x=30, y=NaN): plotter: NaN data point
//
// and wrap plotter.ErrNaN, plotter.ErrInfinity, plotter.ErrNoData,
// ErrMismatch or ErrRange for errors.Is.
//
// # Style
//
// Methods are coloured by their position in the input with the Okabe–Ito
// palette (OkabeIto, MethodColor), paired with a marker shape (MethodGlyph)
// so they stay apart in greyscale: pass methods in the same order to every
// figure. Magnitudes use viridis (Sequential); token values use a
// diverging blue–white–red map centred at 0 (Diverging, ColorBrewer RdBu).
// Text is Liberation Sans (tokens: Liberation Mono), embedded in gonum, so
// output is identical on every machine. PNGs are rendered at PNGDPI.
//
// The returned plots are ordinary gonum plots: change fields (p.Y.Min,
// p.Title.Text, p.Legend.Top) before saving to adjust them.
package plots
