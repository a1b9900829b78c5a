package plots

import (
	"fmt"
	"image/color"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Estimate is a mean with the half-width of its error bar (a standard
// deviation or a 95% interval half-width, ≥ 0; zero draws no bar).
type Estimate struct {
	Mean, Err float64
}

// SensitivityPoint is the result of one setting of a hyper-parameter, in
// percent: Overall = mean(Target, Retention) per SPEC §8.
type SensitivityPoint struct {
	Value                      float64
	Overall, Target, Retention Estimate
}

// Sensitivity is one hyper-parameter sweep (ρ, λ, W, K or B_val): one
// panel of the sensitivity figure.
type Sensitivity struct {
	// Param is the panel's x-axis label, e.g. "kept fraction ρ" or
	// "validation batch B_val (examples)".
	Param string
	// Default is the value used everywhere else, marked with a dotted
	// vertical line.
	Default float64
	// LogX puts the values on a log₂-spaced axis (for W, B_val); all
	// values and Default must then be > 0.
	LogX bool
	// Integer marks a parameter that takes whole values (K, ValRefresh,
	// W, B_val): ticks fall on integers only.
	Integer bool
	// Points are the sweep's results, one per distinct Value, in any
	// order.
	Points []SensitivityPoint
}

// Colours of the three metrics in sensitivity panels (not method colours).
var (
	overallColor   = color.NRGBA{A: 0xFF}                            // black
	targetColor    = color.NRGBA{R: 0x00, G: 0x72, B: 0xB2, A: 0xFF} // blue
	retentionColor = color.NRGBA{R: 0xD5, G: 0x5E, B: 0x00, A: 0xFF} // vermillion
)

// SensitivityPanels draws one panel per hyper-parameter, cols panels per
// row (cols ≤ 0 picks up to three): x = the parameter's value, y = the
// Overall, target and retention metrics (%), a line each with error bars,
// and the default value as a dotted vertical line. Panels share one y range
// and one legend under the title.
//
// It returns an error if params is empty, a sweep has no points, a value
// is NaN or ±Inf, an error half-width is negative, two points share a
// Value, or LogX is set with a value ≤ 0.
func SensitivityPanels(title string, params []Sensitivity, cols int) (*Panels, error) {
	if len(params) == 0 {
		return nil, fmt.Errorf("plots: params: %w", plotter.ErrNoData)
	}
	sweeps := make([]Sensitivity, len(params))
	ylo, yhi := math.Inf(1), math.Inf(-1)
	for k, s := range params {
		what := fmt.Sprintf("params[%d] %q", k, s.Param)
		if len(s.Points) == 0 {
			return nil, fmt.Errorf("plots: %s: points: %w", what, plotter.ErrNoData)
		}
		if err := checkFloat(what+".Default", s.Default); err != nil {
			return nil, err
		}
		if s.LogX && s.Default <= 0 {
			return nil, fmt.Errorf("plots: %s.Default = %v, want > 0 with LogX: %w", what, s.Default, ErrRange)
		}
		pts := slices.Clone(s.Points)
		for i, pt := range pts {
			pw := fmt.Sprintf("%s.Points[%d]", what, i)
			if err := checkFloat(pw+".Value", pt.Value); err != nil {
				return nil, err
			}
			if s.LogX && pt.Value <= 0 {
				return nil, fmt.Errorf("plots: %s.Value = %v, want > 0 with LogX: %w", pw, pt.Value, ErrRange)
			}
			for _, m := range []struct {
				name string
				e    Estimate
			}{{"Overall", pt.Overall}, {"Target", pt.Target}, {"Retention", pt.Retention}} {
				if err := checkFloat(pw+"."+m.name+".Mean", m.e.Mean); err != nil {
					return nil, err
				}
				if err := checkNonNeg(pw+"."+m.name+".Err", m.e.Err); err != nil {
					return nil, err
				}
				ylo = math.Min(ylo, m.e.Mean-m.e.Err)
				yhi = math.Max(yhi, m.e.Mean+m.e.Err)
			}
		}
		slices.SortFunc(pts, func(a, b SensitivityPoint) int {
			switch {
			case a.Value < b.Value:
				return -1
			case a.Value > b.Value:
				return 1
			}
			return 0
		})
		for i := 1; i < len(pts); i++ {
			if pts[i].Value == pts[i-1].Value {
				return nil, fmt.Errorf("plots: %s: duplicate value %v", what, pts[i].Value)
			}
		}
		s.Points = pts
		sweeps[k] = s
	}

	grid, cols := newGrid(len(sweeps), cols)

	metrics := []struct {
		name   string
		color  color.Color
		shape  draw.GlyphDrawer
		dashes []vg.Length
		get    func(SensitivityPoint) Estimate
	}{
		{"Overall", overallColor, draw.CircleGlyph{}, nil, func(p SensitivityPoint) Estimate { return p.Overall }},
		{"target", targetColor, draw.BoxGlyph{}, []vg.Length{vg.Points(5), vg.Points(2)}, func(p SensitivityPoint) Estimate { return p.Target }},
		{"retention", retentionColor, draw.PyramidGlyph{}, []vg.Length{vg.Points(2), vg.Points(2)}, func(p SensitivityPoint) Estimate { return p.Retention }},
	}
	var legend []LegendEntry
	defaultLine := draw.LineStyle{Color: refColor, Width: vg.Points(1.2), Dashes: []vg.Length{vg.Points(1.5), vg.Points(2.5)}}

	for k, s := range sweeps {
		// Every panel carries the y label so that all columns get the same
		// margins and plot.Align spaces them evenly.
		p := newPlot("", s.Param, "score (%)")
		addGrid(p)
		switch {
		case s.LogX:
			p.X.Scale = plot.LogScale{}
			p.X.Tick.Marker = log2Ticks{}
		case s.Integer:
			p.X.Tick.Marker = intTicks{}
		}
		for _, m := range metrics {
			xys := make(plotter.XYs, len(s.Points))
			errs := make(plotter.YErrors, len(s.Points))
			for i, pt := range s.Points {
				e := m.get(pt)
				xys[i] = plotter.XY{X: pt.Value, Y: e.Mean}
				errs[i].Low, errs[i].High = e.Err, e.Err
			}
			l := &plotter.Line{XYs: xys, LineStyle: draw.LineStyle{Color: m.color, Width: vg.Points(1.4), Dashes: m.dashes}}
			sc := &plotter.Scatter{XYs: xys, GlyphStyle: draw.GlyphStyle{Color: m.color, Radius: vg.Points(2.8), Shape: m.shape}}
			eb := &plotter.YErrorBars{XYs: xys, YErrors: errs,
				LineStyle: draw.LineStyle{Color: m.color, Width: vg.Points(1)}, CapWidth: vg.Points(4)}
			p.Add(l, eb, sc)
			if k == 0 {
				legend = append(legend, LegendEntry{Name: m.name, Thumbs: []plot.Thumbnailer{l, sc}})
			}
		}
		xlo, xhi := finiteRange(s.Default, s.Points[0].Value, s.Points[len(s.Points)-1].Value)
		p.X.Min, p.X.Max = xlo, xhi
		if s.LogX {
			p.X.Min, p.X.Max = xlo/math.Pow(2, 0.3), xhi*math.Pow(2, 0.3)
		} else {
			padRange(&p.X, 0.06)
		}
		p.Y.Min, p.Y.Max = ylo, yhi
		padRange(&p.Y, 0.06)
		vl := &vLine{X: s.Default, LineStyle: defaultLine}
		p.Add(vl)
		if k == 0 {
			legend = append(legend, LegendEntry{Name: "default", Thumbs: []plot.Thumbnailer{vl}})
		}
		grid[k/cols][k%cols] = p
	}

	f := NewPanels(title, grid)
	f.Legend = legend
	return f, nil
}

// vLine draws a vertical line across the data area at X.
type vLine struct {
	X float64
	draw.LineStyle
}

func (l *vLine) Plot(c draw.Canvas, p *plot.Plot) {
	if l.X < p.X.Min || l.X > p.X.Max {
		return
	}
	x := c.X(p.X.Norm(l.X))
	c.StrokeLine2(l.LineStyle, x, c.Min.Y, x, c.Max.Y)
}

// Thumbnail draws the legend sample: a vertical segment.
func (l *vLine) Thumbnail(c *draw.Canvas) {
	x := (c.Min.X + c.Max.X) / 2
	c.StrokeLine2(l.LineStyle, x, c.Min.Y, x, c.Max.Y)
}

// intTicks puts ticks on whole numbers only, every 1, 2, 5, 10, 20, …
// units so that at most seven are labelled.
type intTicks struct{}

func (intTicks) Ticks(min, max float64) []plot.Tick {
	if !(max >= min) || math.IsInf(min, 0) || math.IsInf(max, 0) {
		return nil
	}
	lo, hi := math.Ceil(min), math.Floor(max)
	step := 1.0
	for mult := 0; (hi-lo)/step+1 > 7; mult++ {
		step = []float64{2, 5, 10}[mult%3] * math.Pow(10, float64(mult/3))
	}
	var ts []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		ts = append(ts, plot.Tick{Value: v, Label: fmt.Sprintf("%.0f", v)})
	}
	return ts
}

// log2Ticks labels powers of two (for window and batch sizes), with
// intermediate integer labels dropped when there would be too many.
type log2Ticks struct{}

func (log2Ticks) Ticks(min, max float64) []plot.Tick {
	if !(min > 0) || !(max > min) {
		return nil
	}
	lo, hi := int(math.Ceil(math.Log2(min)-1e-9)), int(math.Floor(math.Log2(max)+1e-9))
	every := 1
	for (hi-lo)/every+1 > 7 {
		every++
	}
	var ts []plot.Tick
	for e := lo; e <= hi; e++ {
		t := plot.Tick{Value: math.Pow(2, float64(e))}
		if (e-lo)%every == 0 {
			t.Label = formatPow2(e)
		}
		ts = append(ts, t)
	}
	return ts
}

func formatPow2(e int) string {
	if e >= 0 {
		return fmt.Sprintf("%d", 1<<e)
	}
	return fmt.Sprintf("%g", math.Pow(2, float64(e)))
}
