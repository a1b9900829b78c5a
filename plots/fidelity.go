package plots

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// ProxyScatter draws the Fisher-proxy fidelity scatter (SPEC §8): one dot
// per token at x = Φ_prx (the proxy's retention value) and y = the oracle
// retention value <g_token, ∇J_ret>, with the caller's Spearman and Pearson
// correlations in the title and thin reference lines at zero.
//
// It returns an error if pts is empty, a point is NaN or ±Inf, or a
// correlation is outside [-1, 1].
func ProxyScatter(title string, pts plotter.XYs, spearman, pearson float64) (*plot.Plot, error) {
	xys, err := copyXYs("pts", pts)
	if err != nil {
		return nil, err
	}
	if err := checkIn("spearman", spearman, -1, 1); err != nil {
		return nil, err
	}
	if err := checkIn("pearson", pearson, -1, 1); err != nil {
		return nil, err
	}
	corr := fmt.Sprintf("Spearman %.2f, Pearson %.2f (n = %s)", spearman, pearson, thousands(len(xys)))
	if title != "" {
		corr = title + "\n" + corr
	}
	p := newPlot(corr, "proxy retention value Φ_prx", "oracle retention value <g, grad J_ret>")
	addGrid(p)
	xmin, xmax, ymin, ymax := plotter.XYRange(xys)
	zero := draw.LineStyle{Color: refColor, Width: vg.Points(0.8)}
	if xmin <= 0 && xmax >= 0 {
		p.Add(&vLine{X: 0, LineStyle: zero})
	}
	if ymin <= 0 && ymax >= 0 {
		p.Add(&hLine{Y: 0, LineStyle: zero})
	}
	r := vg.Points(2.4)
	if len(xys) > 2000 {
		r = vg.Points(1.6)
	}
	p.Add(&plotter.Scatter{XYs: xys, GlyphStyle: draw.GlyphStyle{
		Color:  color.NRGBA{R: 0x00, G: 0x72, B: 0xB2, A: 0xA0},
		Radius: r,
		Shape:  draw.CircleGlyph{},
	}})
	padRange(&p.X, 0.03)
	padRange(&p.Y, 0.03)
	return p, nil
}

// TopKOverlap draws top-k overlap against k, one line per method: x = k as
// a fraction of the tokens (0, 1], y = |top-k(proxy) ∩ top-k(oracle)| / k
// in [0, 1], plus the random-ranking expectation y = k/n, dashed.
//
// It returns an error if series is empty, a series has no name or no
// points, or a point is NaN, ±Inf or outside (0, 1] × [0, 1].
func TopKOverlap(title string, series []Series) (*plot.Plot, error) {
	ss, err := copySeries(series)
	if err != nil {
		return nil, err
	}
	for i, s := range ss {
		for j, pt := range s.XYs {
			what := fmt.Sprintf("series[%d] %q: point %d", i, s.Name, j)
			if pt.X <= 0 || pt.X > 1 {
				return nil, fmt.Errorf("plots: %s: k/n = %v, want in (0, 1]: %w", what, pt.X, ErrRange)
			}
			if err := checkIn(what+": overlap", pt.Y, 0, 1); err != nil {
				return nil, err
			}
		}
	}
	p := newPlot(title, "k (fraction of tokens)", "top-k overlap (fraction of k)")
	addGrid(p)
	rnd := &plotter.Line{XYs: plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}}, LineStyle: draw.LineStyle{
		Color: refColor, Width: vg.Points(1.2), Dashes: []vg.Length{vg.Points(5), vg.Points(3)},
	}}
	p.Add(rnd)
	all := addLines(p, ss, true)
	p.Legend.Add("random (k/n)", rnd)
	p.X.Min, p.X.Max = 0, 1
	p.Y.Min, p.Y.Max = 0, 1
	// The random line occupies the diagonal; methods usually lie above it.
	all = append(all, plotter.XY{X: 0.9, Y: 0.9}, plotter.XY{X: 0.1, Y: 0.1})
	placeLegend(p, all)
	return p, nil
}

// Bar is one bar of a bar chart: a named estimate, e.g. the Fisher kind
// "none", "diag" or "kfac" with its Overall score (%) and half-width.
type Bar struct {
	Name      string
	Mean, Err float64
}

// Bars draws one bar per entry with its ± error bar, coloured by position
// (MethodColor), named on the x axis. It serves the Fisher-kind comparison
// (none / diag / kfac on a metric) and any other small comparison.
//
// It returns an error if bars is empty, a name is empty, a value is NaN or
// ±Inf, or an error half-width is negative.
func Bars(title, yLabel string, bars []Bar) (*plot.Plot, error) {
	if len(bars) == 0 {
		return nil, fmt.Errorf("plots: bars: %w", plotter.ErrNoData)
	}
	names := make([]string, len(bars))
	lo, hi := 0.0, 0.0
	for i, b := range bars {
		if b.Name == "" {
			return nil, fmt.Errorf("plots: bars[%d]: empty name", i)
		}
		what := fmt.Sprintf("bars[%d] %q", i, b.Name)
		if err := checkFloat(what+".Mean", b.Mean); err != nil {
			return nil, err
		}
		if err := checkNonNeg(what+".Err", b.Err); err != nil {
			return nil, err
		}
		names[i] = b.Name
		lo = math.Min(lo, b.Mean-b.Err)
		hi = math.Max(hi, b.Mean+b.Err)
	}
	p := newPlot(title, "", yLabel)
	addGrid(p)
	p.Add(&dataBars{bars: append([]Bar(nil), bars...), width: 0.6})
	p.NominalX(names...)
	p.X.Tick.Label.Font.Size = vg.Points(LabelSize)
	p.X.Min, p.X.Max = -0.6, float64(len(bars))-0.4
	p.Y.Min, p.Y.Max = lo, hi
	if hi > 0 {
		p.Y.Max = hi * 1.08
	}
	if lo < 0 {
		p.Y.Min = lo * 1.08
	}
	return p, nil
}

// dataBars draws bars of a width given in data units (categories are the
// integers), with black error bars.
type dataBars struct {
	bars  []Bar
	width float64
}

func (b *dataBars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	edge := draw.LineStyle{Color: color.Black, Width: vg.Points(0.6)}
	errSty := draw.LineStyle{Color: color.Black, Width: vg.Points(1.2)}
	for i, bar := range b.bars {
		x0, x1 := trX(float64(i)-b.width/2), trX(float64(i)+b.width/2)
		y0, y1 := trY(0), trY(bar.Mean)
		pts := c.ClipPolygonXY([]vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}})
		c.FillPolygon(MethodColor(i), pts)
		c.StrokeLines(edge, c.ClipLinesXY([]vg.Point{{X: x0, Y: y0}, {X: x0, Y: y1}, {X: x1, Y: y1}, {X: x1, Y: y0}})...)
		if bar.Err > 0 {
			xm := trX(float64(i))
			lo, hi := trY(bar.Mean-bar.Err), trY(bar.Mean+bar.Err)
			cw := vg.Points(5)
			c.StrokeLine2(errSty, xm, lo, xm, hi)
			c.StrokeLine2(errSty, xm-cw, lo, xm+cw, lo)
			c.StrokeLine2(errSty, xm-cw, hi, xm+cw, hi)
		}
	}
	c.StrokeLine2(edge, c.Min.X, trY(0), c.Max.X, trY(0))
}

// hLine draws a horizontal line across the data area at Y.
type hLine struct {
	Y float64
	draw.LineStyle
}

func (l *hLine) Plot(c draw.Canvas, p *plot.Plot) {
	if l.Y < p.Y.Min || l.Y > p.Y.Max {
		return
	}
	y := c.Y(p.Y.Norm(l.Y))
	c.StrokeLine2(l.LineStyle, c.Min.X, y, c.Max.X, y)
}

// LabelPoints writes names[i] beside pts[i] on p, in the package's legend style, and widens the x
// range so that the labels of the rightmost points stay inside the plot.
func LabelPoints(p *plot.Plot, pts plotter.XYs, names []string) error {
	if len(names) != len(pts) {
		return fmt.Errorf("plots: %d labels for %d points", len(names), len(pts))
	}
	labels, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: names})
	if err != nil {
		return err
	}
	ts := textStyle(LegendSize)
	ts.YAlign = draw.YCenter
	for i := range labels.TextStyle {
		labels.TextStyle[i] = ts
	}
	labels.Offset = vg.Point{X: vg.Points(5)}
	p.Add(labels)
	p.X.Max += 0.3 * (p.X.Max - p.X.Min) // room for the labels on the right
	return nil
}
