package plots_test

import (
	"bytes"
	"errors"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/plot/cmpimg"
	"gonum.org/v1/plot/plotter"

	"github.com/alphatoken/alphatoken/plots"
)

// Golden images: go test -regen ./plots regenerates testdata/*_golden.png.
// The tolerance absorbs anti-aliasing differences between platforms; any
// moved text or line still fails.
const goldenDelta = 0.1

func TestTradeOffGolden(t *testing.T) {
	cmpimg.CheckPlotApprox(ExampleTradeOff, t, goldenDelta, "tradeoff.png")
}

func TestSensitivityGolden(t *testing.T) {
	cmpimg.CheckPlotApprox(ExampleSensitivityPanels, t, goldenDelta, "sensitivity.png")
}

func TestValuePropagationGolden(t *testing.T) {
	cmpimg.CheckPlotApprox(ExampleValuePropagation, t, goldenDelta, "valueprop.png")
}

func TestCKAHeatmapGolden(t *testing.T) {
	cmpimg.CheckPlotApprox(ExampleCKAHeatmap, t, goldenDelta, "ckaheat.png")
}

func TestTokenPlotGolden(t *testing.T) {
	cmpimg.CheckPlotApprox(ExampleTokenPlot, t, goldenDelta, "tokens.png")
}

func TestCoverageGolden(t *testing.T) {
	cmpimg.CheckPlotApprox(ExampleTokenCoverage, t, goldenDelta, "coverage.png")
}

// The other examples have no golden image; check that they run and write
// a PNG.
func TestExamplesRun(t *testing.T) {
	for name, ex := range map[string]func(){
		"curves.png":       ExampleTrainingCurves,
		"proxyscatter.png": ExampleProxyScatter,
		"topk.png":         ExampleTopKOverlap,
		"bars.png":         ExampleBars,
		"cka.png":          ExampleCKALayers,
	} {
		path := filepath.Join("testdata", name)
		_ = os.Remove(path)
		ex()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := png.Decode(bytes.NewReader(b)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSaveWritesPNGAndSVG(t *testing.T) {
	p, err := plots.Bars("t", "y (%)", []plots.Bar{{Name: "a", Mean: 1, Err: 0.1}})
	if err != nil {
		t.Fatal(err)
	}
	stem := filepath.Join(t.TempDir(), "new", "dir", "bars")
	if err := plots.Save(p, 3, 2, stem); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(stem + ".png")
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := img.Bounds().Dx(), 3*plots.PNGDPI; got != want {
		t.Errorf("PNG width = %d px, want %d", got, want)
	}
	s, err := os.ReadFile(stem + ".svg")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(s, []byte("<svg")) {
		t.Errorf("SVG output has no <svg> element")
	}
	entries, _ := os.ReadDir(filepath.Dir(stem))
	if len(entries) != 2 {
		t.Errorf("directory holds %d entries, want 2 (no temp files left)", len(entries))
	}

	if _, err := plots.PNG(p, 0, 2); !errors.Is(err, plots.ErrRange) {
		t.Errorf("PNG with zero width: err = %v, want ErrRange", err)
	}
	if err := plots.WriteFile(p, 3, 2, filepath.Join(t.TempDir(), "noext")); err == nil {
		t.Errorf("WriteFile without extension: no error")
	}
	f, err := plots.SensitivityPanels("", []plots.Sensitivity{{Param: "ρ", Default: 0.5,
		Points: []plots.SensitivityPoint{{Value: 0.5}}}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := plots.SVG(f, 4, 3); err != nil || !bytes.Contains(b, []byte("<svg")) {
		t.Errorf("SVG(Panels): %v", err)
	}
}

func TestTokenHTMLEscapes(t *testing.T) {
	h, err := plots.TokenHTML([]plots.TokenValue{
		{Text: `<script>"&'`, Value: 0.5},
		{Text: "a\nb", Value: -1, Kept: true},
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h, "<script>") {
		t.Errorf("token text not escaped: %s", h)
	}
	for _, want := range []string{"&lt;script&gt;&#34;&amp;&#39;", `title="0.5"`, `title="-1"`, "a↵<br>b", "border-bottom:2px solid #000"} {
		if !strings.Contains(h, want) {
			t.Errorf("HTML lacks %q:\n%s", want, h)
		}
	}
	// Value 0 is white-ish: the map is centred at 0.
	h, _ = plots.TokenHTML([]plots.TokenValue{{Text: "z", Value: 0}, {Text: "w", Value: 2}}, 0)
	if !strings.Contains(h, `background-color:#f7f7f7" title="0"`) {
		t.Errorf("value 0 is not the map's centre colour:\n%s", h)
	}
}

func TestTokenPlotHeightGrowsWithText(t *testing.T) {
	short := []plots.TokenValue{{Text: "hello", Value: 1}}
	var long []plots.TokenValue
	for range 200 {
		long = append(long, plots.TokenValue{Text: " word", Value: -0.3})
	}
	_, h1, err := plots.TokenPlot("", short, 0, 6)
	if err != nil {
		t.Fatal(err)
	}
	_, h2, err := plots.TokenPlot("", long, 0, 6)
	if err != nil {
		t.Fatal(err)
	}
	if !(h2 > h1) {
		t.Errorf("height for 200 tokens %v ≤ height for 1 token %v", h2, h1)
	}
	if _, _, err := plots.TokenPlot("", short, 0, 0.5); !errors.Is(err, plots.ErrRange) {
		t.Errorf("too narrow: err = %v, want ErrRange", err)
	}
}

func TestParetoFrontTies(t *testing.T) {
	pts := []plots.MethodPoint{
		{Name: "a", Retention: 1, Target: 1},
		{Name: "b", Retention: 1, Target: 1},
		{Name: "c", Retention: 0, Target: 2},
		{Name: "d", Retention: 0.5, Target: 0.5},
	}
	got := plots.ParetoFront(pts)
	want := []int{2, 0, 1}
	if len(got) != len(want) {
		t.Fatalf("front = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("front = %v, want %v", got, want)
		}
	}
}

func TestLowRisk(t *testing.T) {
	r := plots.LowRisk{MaxA: 0.1, MaxDev: 0.5}
	pairs := []plots.Pair{
		{A: 0.05, Dev: 3},  // sparse
		{A: 0.9, Dev: 0.2}, // saturated
		{A: 0.5, Dev: 2},   // at risk
		{A: 0.1, Dev: 0.5}, // on both boundaries: low risk
	}
	if got := r.Share(pairs); got != 0.75 {
		t.Errorf("Share = %v, want 0.75", got)
	}
	// Zero thresholds admit exact zeros only, as diag.PairStat.LowRisk.
	zero := plots.LowRisk{}
	if zero.Contains(pairs[0]) || !zero.Contains(plots.Pair{A: 0, Dev: 1}) || !zero.Contains(plots.Pair{A: 1, Dev: 0}) {
		t.Errorf("zero thresholds: want only A = 0 or Dev = 0 contained")
	}
}

func TestMethodColorsCycle(t *testing.T) {
	if plots.MethodColor(0) != plots.MethodColor(8) {
		t.Errorf("MethodColor does not cycle with period 8")
	}
	seen := map[any]bool{}
	for i := range 8 {
		seen[plots.MethodColor(i)] = true
	}
	if len(seen) != 8 {
		t.Errorf("%d distinct colours among the first 8 methods, want 8", len(seen))
	}
}

// errCase is one invalid input and what its error must say.
type errCase struct {
	name string
	call func() error
	is   error  // sentinel the error must wrap
	has  string // substring naming the input
}

func TestValidationErrors(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	line := plotter.XYs{{X: 0, Y: 1}, {X: 1, Y: 0.5}}
	cases := []errCase{
		{"curves empty", func() error { _, err := plots.TrainingCurves("", "", nil); return err }, plotter.ErrNoData, "series"},
		{"curves no points", func() error {
			_, err := plots.TrainingCurves("", "", []plots.Series{{Name: "a", XYs: line}, {Name: "b"}})
			return err
		}, plotter.ErrNoData, `series[1] "b"`},
		{"curves NaN", func() error {
			_, err := plots.TrainingCurves("", "", []plots.Series{{Name: "Top-ρ", XYs: plotter.XYs{{X: 0, Y: 1}, {X: 1, Y: nan}}}})
			return err
		}, plotter.ErrNaN, `series[0] "Top-ρ": point 1`},
		{"curves Inf", func() error {
			_, err := plots.TrainingCurves("", "", []plots.Series{{Name: "a", XYs: plotter.XYs{{X: inf, Y: 1}}}})
			return err
		}, plotter.ErrInfinity, "point 0"},
		{"curves no name", func() error {
			_, err := plots.TrainingCurves("", "", []plots.Series{{XYs: line}})
			return err
		}, nil, "series[0]: empty name"},
		{"tradeoff empty", func() error { _, err := plots.TradeOff("", nil); return err }, plotter.ErrNoData, "points"},
		{"tradeoff NaN", func() error {
			_, err := plots.TradeOff("", []plots.MethodPoint{{Name: "a", Retention: nan}})
			return err
		}, plotter.ErrNaN, `points[0] "a".Retention`},
		{"tradeoff negative err", func() error {
			_, err := plots.TradeOff("", []plots.MethodPoint{{Name: "a", TargetErr: -1}})
			return err
		}, plots.ErrRange, "TargetErr"},
		{"sensitivity empty", func() error { _, err := plots.SensitivityPanels("", nil, 0); return err }, plotter.ErrNoData, "params"},
		{"sensitivity no points", func() error {
			_, err := plots.SensitivityPanels("", []plots.Sensitivity{{Param: "ρ"}}, 0)
			return err
		}, plotter.ErrNoData, `params[0] "ρ"`},
		{"sensitivity NaN", func() error {
			_, err := plots.SensitivityPanels("", []plots.Sensitivity{{Param: "λ", Points: []plots.SensitivityPoint{
				{Value: 1, Target: plots.Estimate{Mean: nan}}}}}, 0)
			return err
		}, plotter.ErrNaN, "Points[0].Target.Mean"},
		{"sensitivity duplicate", func() error {
			_, err := plots.SensitivityPanels("", []plots.Sensitivity{{Param: "K", Points: []plots.SensitivityPoint{{Value: 1}, {Value: 1}}}}, 0)
			return err
		}, nil, "duplicate value 1"},
		{"sensitivity log of 0", func() error {
			_, err := plots.SensitivityPanels("", []plots.Sensitivity{{Param: "W", Default: 32, LogX: true,
				Points: []plots.SensitivityPoint{{Value: 0}}}}, 0)
			return err
		}, plots.ErrRange, "Points[0].Value"},
		{"valueprop empty", func() error { _, err := plots.ValuePropagation("", plots.ValueProp{}); return err }, plotter.ErrNoData, "pairs"},
		{"valueprop attention > 1", func() error {
			_, err := plots.ValuePropagation("", plots.ValueProp{Pairs: []plots.Pair{{A: 1.5}}})
			return err
		}, plots.ErrRange, "pairs[0].A"},
		{"valueprop NaN", func() error {
			_, err := plots.ValuePropagation("", plots.ValueProp{Pairs: []plots.Pair{{A: 0.5}, {Omitted: nan}}})
			return err
		}, plotter.ErrNaN, "pairs[1].Omitted"},
		{"valueprop negative distance", func() error {
			_, err := plots.ValuePropagation("", plots.ValueProp{Pairs: []plots.Pair{{Dev: -1}}})
			return err
		}, plots.ErrRange, "pairs[0].Dev"},
		{"proxy empty", func() error { _, err := plots.ProxyScatter("", nil, 0, 0); return err }, plotter.ErrNoData, "pts"},
		{"proxy bad spearman", func() error { _, err := plots.ProxyScatter("", line, 1.5, 0); return err }, plots.ErrRange, "spearman"},
		{"proxy NaN pearson", func() error { _, err := plots.ProxyScatter("", line, 0, nan); return err }, plotter.ErrNaN, "pearson"},
		{"topk k out of range", func() error {
			_, err := plots.TopKOverlap("", []plots.Series{{Name: "a", XYs: plotter.XYs{{X: 0, Y: 0}}}})
			return err
		}, plots.ErrRange, "k/n"},
		{"bars empty", func() error { _, err := plots.Bars("", "", nil); return err }, plotter.ErrNoData, "bars"},
		{"bars Inf", func() error { _, err := plots.Bars("", "", []plots.Bar{{Name: "kfac", Mean: inf}}); return err }, plotter.ErrInfinity, `bars[0] "kfac".Mean`},
		{"coverage empty", func() error { _, err := plots.TokenCoverage("", nil, 0); return err }, plotter.ErrNoData, "panels"},
		{"coverage no points", func() error {
			_, err := plots.TokenCoverage("", []plots.CoveragePanel{{Method: "m", Coverage: 0.5}}, 0)
			return err
		}, plotter.ErrNoData, `panels[0] "m"`},
		{"coverage NaN point", func() error {
			_, err := plots.TokenCoverage("", []plots.CoveragePanel{{Method: "m", Selected: plotter.XYs{{X: nan}}}}, 0)
			return err
		}, plotter.ErrNaN, "Selected: point 0"},
		{"coverage > 1", func() error {
			_, err := plots.TokenCoverage("", []plots.CoveragePanel{{Method: "m", Coverage: 2, Selected: line}}, 0)
			return err
		}, plots.ErrRange, "Coverage"},
		{"cka > 1", func() error {
			_, err := plots.CKALayers("", []plots.Series{{Name: "a", XYs: plotter.XYs{{X: 0, Y: 1.2}}}})
			return err
		}, plots.ErrRange, "CKA"},
		{"cka fractional layer", func() error {
			_, err := plots.CKALayers("", []plots.Series{{Name: "a", XYs: plotter.XYs{{X: 0.5, Y: 1}}}})
			return err
		}, plots.ErrRange, "layer 0.5"},
		{"cka heatmap mismatched lengths", func() error {
			_, err := plots.CKAHeatmap("", []plots.Series{
				{Name: "a", XYs: plotter.XYs{{X: 0, Y: 1}, {X: 1, Y: 0.9}}},
				{Name: "b", XYs: plotter.XYs{{X: 0, Y: 1}}}})
			return err
		}, plots.ErrMismatch, `series[1] "b": 1 layers`},
		{"cka heatmap mismatched layers", func() error {
			_, err := plots.CKAHeatmap("", []plots.Series{
				{Name: "a", XYs: plotter.XYs{{X: 0, Y: 1}, {X: 1, Y: 0.9}}},
				{Name: "b", XYs: plotter.XYs{{X: 0, Y: 1}, {X: 2, Y: 0.9}}}})
			return err
		}, plots.ErrMismatch, "layer 2"},
		{"XYs mismatched", func() error { _, err := plots.XYs([]float64{1, 2}, []float64{1}); return err }, plots.ErrMismatch, "different lengths (2 and 1)"},
		{"XYs empty", func() error { _, err := plots.XYs(nil, nil); return err }, plotter.ErrNoData, "xs, ys"},
		{"XYs NaN", func() error { _, err := plots.XYs([]float64{1, nan}, []float64{1, 2}); return err }, plotter.ErrNaN, "point 1"},
		{"Points2D mismatched", func() error { _, err := plots.Points2D(make([][2]float64, 3), make([]bool, 2)); return err }, plots.ErrMismatch, "pts and keep"},
		{"Points2D Inf", func() error { _, err := plots.Points2D([][2]float64{{0, inf}}, nil); return err }, plotter.ErrInfinity, "pts[0]"},
		{"tokens empty", func() error { _, err := plots.TokenHTML(nil, 0); return err }, plotter.ErrNoData, "tokens"},
		{"tokens NaN", func() error {
			_, err := plots.TokenHTML([]plots.TokenValue{{Text: "a", Value: 1}, {Text: "b", Value: nan}}, 0)
			return err
		}, plotter.ErrNaN, `tokens[1] "b"`},
		{"tokens Inf limit", func() error {
			_, _, err := plots.TokenPlot("", []plots.TokenValue{{Text: "a"}}, inf, 6)
			return err
		}, plotter.ErrInfinity, "limit"},
	}
	for _, c := range cases {
		err := c.call()
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "plots: ") {
			t.Errorf("%s: error %q does not start with \"plots: \"", c.name, msg)
		}
		if !strings.Contains(msg, c.has) {
			t.Errorf("%s: error %q does not name %q", c.name, msg, c.has)
		}
		if c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("%s: error %q does not wrap %v", c.name, msg, c.is)
		}
	}
}

// Constructors copy their input: changing it afterwards changes nothing.
func TestInputsAreCopied(t *testing.T) {
	xys := plotter.XYs{{X: 0, Y: 1}, {X: 1, Y: 2}}
	p, err := plots.TrainingCurves("", "loss", []plots.Series{{Name: "a", XYs: xys}})
	if err != nil {
		t.Fatal(err)
	}
	before, err := plots.PNG(p, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	xys[1].Y = 100
	after, err := plots.PNG(p, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("plot changed after its input was modified")
	}
}

// Minimal inputs (one point, one method, zero spans) must render, not
// panic.
func TestDegenerateInputsRender(t *testing.T) {
	one := plotter.XYs{{X: 3, Y: 0.5}}
	figs := map[string]func() (plots.Figure, error){
		"curves": func() (plots.Figure, error) {
			return plots.TrainingCurves("", "loss", []plots.Series{{Name: "a", XYs: one}})
		},
		"tradeoff": func() (plots.Figure, error) {
			return plots.TradeOff("", []plots.MethodPoint{{Name: "a", Retention: 50, Target: 50}})
		},
		"sensitivity": func() (plots.Figure, error) {
			return plots.SensitivityPanels("", []plots.Sensitivity{{Param: "W", Default: 32, LogX: true,
				Points: []plots.SensitivityPoint{{Value: 32}}}}, 0)
		},
		"valueprop": func() (plots.Figure, error) {
			return plots.ValuePropagation("", plots.ValueProp{Pairs: []plots.Pair{{}}, LogColor: true})
		},
		"proxy": func() (plots.Figure, error) { return plots.ProxyScatter("", one, 0, 0) },
		"topk": func() (plots.Figure, error) {
			return plots.TopKOverlap("", []plots.Series{{Name: "a", XYs: plotter.XYs{{X: 1, Y: 1}}}})
		},
		"bars": func() (plots.Figure, error) { return plots.Bars("", "", []plots.Bar{{Name: "a", Mean: -1}}) },
		"coverage": func() (plots.Figure, error) {
			return plots.TokenCoverage("", []plots.CoveragePanel{{Method: "a", Rejected: one}}, 0)
		},
		"cka": func() (plots.Figure, error) {
			return plots.CKALayers("", []plots.Series{{Name: "a", XYs: plotter.XYs{{X: 0, Y: 1}}}})
		},
		"ckaheat": func() (plots.Figure, error) {
			return plots.CKAHeatmap("", []plots.Series{{Name: "a", XYs: plotter.XYs{{X: 0, Y: 1}}}})
		},
		"tokens": func() (plots.Figure, error) {
			p, _, err := plots.TokenPlot("", []plots.TokenValue{{Text: ""}, {Text: "\n"}}, 0, 6)
			return p, err
		},
	}
	for name, mk := range figs {
		f, err := mk()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: panic: %v", name, r)
				}
			}()
			if _, err := plots.PNG(f, 4, 3); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}
}
