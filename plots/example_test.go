package plots_test

import (
	"fmt"
	"log"
	"math"
	"strings"

	"gonum.org/v1/plot/plotter"

	"github.com/alphatoken/alphatoken/plots"
)

// rng is a tiny deterministic generator (splitmix64) so that the examples'
// data, and hence the golden images, never depend on math/rand's streams.
type rng uint64

func (r *rng) uint64() uint64 {
	*r += 0x9E3779B97F4A7C15
	z := uint64(*r)
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// float64 returns a value in [0, 1).
func (r *rng) float64() float64 { return float64(r.uint64()>>11) / (1 << 53) }

// norm returns a standard normal value (Box–Muller).
func (r *rng) norm() float64 {
	u := r.float64()
	for u == 0 {
		u = r.float64()
	}
	return math.Sqrt(-2*math.Log(u)) * math.Cos(2*math.Pi*r.float64())
}

// The examples draw synthetic data (their titles say so) under the names of methods that exist in
// the methods registry (full, random, alphatoken, bottom, rho1), as the suites label them.
var methods = []string{"Full FT", "Random-ρ", "Top-ρ (AlphaToken)", "Bottom-ρ", "Rho-1"}

func ExampleTrainingCurves() {
	var series []plots.Series
	for i, name := range methods {
		var xys plotter.XYs
		for step := 0; step <= 1000; step += 10 {
			x := float64(step)
			loss := 1.9 - 0.08*float64(i) + 0.9*math.Exp(-x/250) + 0.02*math.Sin(x/41+float64(i))
			xys = append(xys, plotter.XY{X: x, Y: loss})
		}
		s := plots.Series{Name: name, XYs: xys}
		if i < 2 { // a band (e.g. a 95% interval over seeds) around the first two
			for _, xy := range xys {
				w := 0.05 + 0.1*math.Exp(-xy.X/300)
				s.Lo, s.Hi = append(s.Lo, xy.Y-w), append(s.Hi, xy.Y+w)
			}
		}
		series = append(series, s)
	}
	p, err := plots.TrainingCurves("Synthetic data (test image): training loss on the target data", "training loss (nats/token)", series)
	if err != nil {
		log.Fatal(err)
	}
	if err := plots.WriteFile(p, 6, 4, "testdata/curves.png"); err != nil {
		log.Fatal(err)
	}
}

var tradeOffPoints = []plots.MethodPoint{
	{Name: "Full FT", Retention: 52.3, RetentionErr: 1.1, Target: 45.2, TargetErr: 0.9},
	{Name: "Random-ρ", Retention: 55.0, RetentionErr: 0.9, Target: 43.0, TargetErr: 1.2},
	{Name: "Top-ρ (AlphaToken)", Retention: 58.4, RetentionErr: 0.7, Target: 46.1, TargetErr: 0.8},
	{Name: "Bottom-ρ", Retention: 57.9, RetentionErr: 1.3, Target: 35.2, TargetErr: 1.6},
	{Name: "Rho-1", Retention: 54.2, RetentionErr: 0.8, Target: 45.8, TargetErr: 1.0},
	{Name: "Reference (no SFT)", Retention: 61.2, Target: 20.1},
}

func ExampleTradeOff() {
	p, err := plots.TradeOffWith("Synthetic data (test image): adaptation vs retention", tradeOffPoints, plots.TradeOffOptions{
		YLabel: "target: code pass@1 (%)",
		Bars:   "bars: mean ± 95% t-interval over 3 seeds",
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := plots.WriteFile(p, 6, 4.5, "testdata/tradeoff.png"); err != nil {
		log.Fatal(err)
	}
}

func ExampleParetoFront() {
	for _, i := range plots.ParetoFront(tradeOffPoints) {
		fmt.Println(tradeOffPoints[i].Name)
	}
	// Output:
	// Top-ρ (AlphaToken)
	// Reference (no SFT)
}

func sweep(param string, def float64, logX bool, values ...float64) plots.Sensitivity {
	s := plots.Sensitivity{Param: param, Default: def, LogX: logX}
	for i, v := range values {
		tgt := 44 + 2*math.Sin(float64(i))
		ret := 57 - 1.5*math.Cos(0.7*float64(i))
		s.Points = append(s.Points, plots.SensitivityPoint{
			Value:     v,
			Overall:   plots.Estimate{Mean: (tgt + ret) / 2, Err: 0.6},
			Target:    plots.Estimate{Mean: tgt, Err: 0.9},
			Retention: plots.Estimate{Mean: ret, Err: 0.7},
		})
	}
	return s
}

func integer(s plots.Sensitivity) plots.Sensitivity {
	s.Integer = true
	return s
}

func ExampleSensitivityPanels() {
	f, err := plots.SensitivityPanels("Synthetic data (test image): hyper-parameter sensitivity, mean ± 95% t-interval over 3 seeds", []plots.Sensitivity{
		sweep("kept fraction ρ", 0.5, false, 0.1, 0.3, 0.5, 0.7, 0.9),
		sweep("stability weight λ", 1.5, false, 0, 0.5, 1, 1.5, 2, 3),
		sweep("causal window W (tokens)", 32, true, 4, 8, 16, 32, 64, 128),
		integer(sweep("scored blocks K", 3, false, 1, 2, 3, 4, 6)),
		integer(sweep("ValRefresh (steps)", 4, false, 1, 4)),
		sweep("validation batch B_val (examples)", 32, true, 8, 16, 32, 64),
	}, 3)
	if err != nil {
		log.Fatal(err)
	}
	if err := plots.WriteFile(f, 10, 6, "testdata/sensitivity.png"); err != nil {
		log.Fatal(err)
	}
}

func ExampleValuePropagation() {
	r := rng(1)
	pairs := make([]plots.Pair, 2000)
	for i := range pairs {
		a := math.Pow(r.float64(), 4) // attention is mostly sparse
		d := math.Abs(r.norm()*0.8) * (1 + 2*r.float64())
		g := math.Abs(r.norm())
		pairs[i] = plots.Pair{A: a, Dev: d, Omitted: a * d * g}
	}
	f, err := plots.ValuePropagation("Synthetic data (test image): value propagation, last 3 blocks", plots.ValueProp{
		Pairs:    pairs,
		Region:   plots.LowRisk{MaxA: 0.05, MaxDev: 0.5},
		LogColor: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := plots.WriteFile(f, 7, 5, "testdata/valueprop.png"); err != nil {
		log.Fatal(err)
	}
}

func ExampleProxyScatter() {
	r := rng(2)
	xys := make(plotter.XYs, 256)
	for i := range xys {
		x := r.norm()
		xys[i] = plotter.XY{X: x, Y: 0.6*x + 0.8*r.norm()}
	}
	p, err := plots.ProxyScatter("Synthetic data (test image): Fisher-proxy fidelity", xys, 0.58, 0.61)
	if err != nil {
		log.Fatal(err)
	}
	if err := plots.WriteFile(p, 5.5, 4.5, "testdata/proxyscatter.png"); err != nil {
		log.Fatal(err)
	}
}

func ExampleTopKOverlap() {
	var series []plots.Series
	for i, name := range []string{"Φ_prx, diag Fisher", "Φ_prx, K-FAC Fisher"} {
		var xys plotter.XYs
		for k := 1; k <= 20; k++ {
			x := float64(k) / 20
			xys = append(xys, plotter.XY{X: x, Y: math.Min(1, x+(0.7-0.2*float64(i))*math.Sqrt(x)*(1-x))})
		}
		series = append(series, plots.Series{Name: name, XYs: xys})
	}
	p, err := plots.TopKOverlap("Synthetic data (test image): top-k overlap", series)
	if err != nil {
		log.Fatal(err)
	}
	if err := plots.WriteFile(p, 5.5, 4.5, "testdata/topk.png"); err != nil {
		log.Fatal(err)
	}
}

func ExampleBars() {
	p, err := plots.Bars("Synthetic data (test image): Fisher kind", "Overall (%)", []plots.Bar{
		{Name: "none", Mean: 47.1, Err: 0.8},
		{Name: "diag", Mean: 50.2, Err: 0.6},
		{Name: "kfac", Mean: 50.9, Err: 0.7},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := plots.WriteFile(p, 4.5, 4, "testdata/bars.png"); err != nil {
		log.Fatal(err)
	}
}

func ExampleTokenCoverage() {
	r := rng(3)
	// One embedding of 6 clusters × 80 tokens, several selections of it.
	var all plotter.XYs
	for c := range 6 {
		cx, cy := 20*math.Cos(float64(c)), 20*math.Sin(1.3*float64(c))
		for range 80 {
			all = append(all, plotter.XY{X: cx + 4*r.norm(), Y: cy + 4*r.norm()})
		}
	}
	var panels []plots.CoveragePanel
	for m, name := range []string{"Random-ρ", "Top-ρ (AlphaToken)", "Rho-1", "Bottom-ρ"} {
		var sel, rej plotter.XYs
		for i, xy := range all {
			p := 0.5
			if m == 2 && (i/80)%3 == 0 {
				p = 0.03 // Rho-1 misses two clusters
			}
			if r.float64() < p {
				sel = append(sel, xy)
			} else {
				rej = append(rej, xy)
			}
		}
		panels = append(panels, plots.CoveragePanel{Method: name, Coverage: 1 - 0.1*float64(m), Selected: sel, Rejected: rej})
	}
	f, err := plots.TokenCoverage("Synthetic data (test image): token coverage (t-SNE)", panels, 2)
	if err != nil {
		log.Fatal(err)
	}
	if err := plots.WriteFile(f, 8, 7, "testdata/coverage.png"); err != nil {
		log.Fatal(err)
	}
}

func ckaSeries(layers int) []plots.Series {
	var series []plots.Series
	for i, name := range []string{"Full FT", "Random-ρ", "Top-ρ (AlphaToken)", "Rho-1"} {
		drop := []float64{0.09, 0.07, 0.035, 0.06}[i]
		var xys plotter.XYs
		for l := range layers {
			t := float64(l) / float64(layers-1)
			xys = append(xys, plotter.XY{X: float64(l), Y: 1 - drop*t*t})
		}
		series = append(series, plots.Series{Name: name, XYs: xys})
	}
	return series
}

func ExampleCKALayers() {
	p, err := plots.CKALayers("Synthetic data (test image): representation stability", ckaSeries(24))
	if err != nil {
		log.Fatal(err)
	}
	if err := plots.WriteFile(p, 6, 4, "testdata/cka.png"); err != nil {
		log.Fatal(err)
	}
}

func ExampleCKAHeatmap() {
	f, err := plots.CKAHeatmap("Synthetic data (test image): linear CKA vs reference, per layer", ckaSeries(12))
	if err != nil {
		log.Fatal(err)
	}
	if err := plots.WriteFile(f, 8, 2.8, "testdata/ckaheat.png"); err != nil {
		log.Fatal(err)
	}
}

// exampleTokens is a short response with values and a kept mask.
func exampleTokens() []plots.TokenValue {
	text := []string{"She", " buys", " ", "3", " boxes", " of", " ", "1", "2", " eggs", ":\n",
		"3", " ×", " ", "1", "2", " =", " ", "3", "6", ".\n", "The", " answer", " is", " ", "3", "6", "."}
	toks := make([]plots.TokenValue, len(text))
	for i, s := range text {
		v := math.Sin(0.9*float64(i)) * float64(1+i%4) / 2
		toks[i] = plots.TokenValue{Text: s, Value: v, Kept: v > 0}
	}
	return toks
}

func ExampleTokenHTML() {
	h, err := plots.TokenHTML([]plots.TokenValue{
		{Text: "x <", Value: 1, Kept: true},
		{Text: " y\n", Value: -0.5},
	}, 1)
	if err != nil {
		log.Fatal(err)
	}
	// The token spans follow the colour key.
	i := strings.Index(h, `<span style="background-color`)
	fmt.Println(h[i:])
	// Output:
	// <span style="background-color:#b2182b;color:#fff;border-bottom:2px solid #000" title="1">x &lt;</span><span style="background-color:#92c5de" title="-0.5"> y↵<br></span></div></div>
}

func ExampleTokenPlot() {
	p, h, err := plots.TokenPlot("Synthetic data (test image): Top-ρ (AlphaToken)", exampleTokens(), 0, 6)
	if err != nil {
		log.Fatal(err)
	}
	if err := plots.WriteFile(p, 6, h, "testdata/tokens.png"); err != nil {
		log.Fatal(err)
	}
}
