package plots

import (
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Font sizes, in points, used by every figure at its default size. None is
// below 10pt so that figures stay readable at 100% zoom.
const (
	TitleSize  = 12
	LabelSize  = 11
	TickSize   = 10
	LegendSize = 10
)

// Fonts used by the figures: Liberation Sans for plot text and Liberation
// Mono for token text. Both come with gonum/plot, so rendering is the same on
// every machine.
var (
	SansFont = font.Font{Typeface: "Liberation", Variant: "Sans"}
	MonoFont = font.Font{Typeface: "Liberation", Variant: "Mono"}
)

// OkabeIto is the colour-blind-safe categorical palette used for methods:
// method i of a figure's input gets OkabeIto[i%8]. The order is Okabe and
// Ito's, except that yellow (#F0E442), which is hard to see on white, comes
// last. Pass methods in the same order to every figure and each method keeps
// its colour across figures.
var OkabeIto = [8]color.NRGBA{
	{R: 0xE6, G: 0x9F, B: 0x00, A: 0xFF}, // orange
	{R: 0x56, G: 0xB4, B: 0xE9, A: 0xFF}, // sky blue
	{R: 0x00, G: 0x9E, B: 0x73, A: 0xFF}, // bluish green
	{R: 0x00, G: 0x72, B: 0xB2, A: 0xFF}, // blue
	{R: 0xD5, G: 0x5E, B: 0x00, A: 0xFF}, // vermillion
	{R: 0xCC, G: 0x79, B: 0xA7, A: 0xFF}, // reddish purple
	{R: 0x00, G: 0x00, B: 0x00, A: 0xFF}, // black
	{R: 0xF0, G: 0xE4, B: 0x42, A: 0xFF}, // yellow
}

// MethodColor returns the colour of the i-th method (i ≥ 0).
func MethodColor(i int) color.Color { return OkabeIto[i%len(OkabeIto)] }

// methodGlyphs are cycled together with the colours so that methods stay
// distinguishable in greyscale.
var methodGlyphs = []draw.GlyphDrawer{
	draw.CircleGlyph{},
	draw.BoxGlyph{},
	draw.PyramidGlyph{},
	draw.RingGlyph{},
	draw.SquareGlyph{},
	draw.TriangleGlyph{},
	draw.CrossGlyph{},
	draw.PlusGlyph{},
}

// MethodGlyph returns the marker shape of the i-th method (i ≥ 0).
func MethodGlyph(i int) draw.GlyphDrawer { return methodGlyphs[i%len(methodGlyphs)] }

// methodDashes returns the dash pattern of the i-th method's line: solid for
// the first eight, dashed once the colours repeat.
func methodDashes(i int) []vg.Length {
	switch (i / len(OkabeIto)) % 3 {
	case 1:
		return []vg.Length{vg.Points(6), vg.Points(3)}
	case 2:
		return []vg.Length{vg.Points(2), vg.Points(2)}
	}
	return nil
}

// Neutral colours.
var (
	gridColor   = color.Gray{Y: 0xE0}
	refColor    = color.Gray{Y: 0x55} // reference lines (random, default)
	regionFill  = color.NRGBA{R: 0x00, G: 0x9E, B: 0x73, A: 0x30}
	regionEdge  = color.NRGBA{R: 0x00, G: 0x6E, B: 0x50, A: 0xFF}
	rejectColor = color.NRGBA{R: 0x99, G: 0x99, B: 0x99, A: 0xA0}
	selectColor = color.NRGBA{R: 0xD5, G: 0x5E, B: 0x00, A: 0xE0}
)

// textStyle returns a plain-text style in the sans font.
func textStyle(size float64) text.Style {
	return text.Style{
		Color:   color.Black,
		Font:    font.From(SansFont, vg.Points(size)),
		Handler: plot.DefaultTextHandler,
	}
}

// newPlot returns a plot with the package's fonts, a light grid and the
// given labels.
func newPlot(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = font.From(SansFont, TitleSize)
	p.Title.Padding = vg.Points(6)
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = font.From(SansFont, LabelSize)
		a.Label.Padding = vg.Points(3)
		a.Tick.Label.Font = font.From(SansFont, TickSize)
		a.Tick.Length = vg.Points(4)
		a.Padding = vg.Points(4)
		a.Tick.Marker = niceTicks{}
	}
	p.Legend.TextStyle.Font = font.From(SansFont, LegendSize)
	p.Legend.ThumbnailWidth = vg.Points(22)
	p.Legend.Padding = vg.Points(2)
	p.Legend.YPosition = draw.PosCenter
	return p
}

// addGrid adds light major grid lines behind everything added later.
func addGrid(p *plot.Plot) {
	g := plotter.NewGrid()
	g.Vertical.Color = gridColor
	g.Horizontal.Color = gridColor
	g.Vertical.Width = vg.Points(0.5)
	g.Horizontal.Width = vg.Points(0.5)
	p.Add(g)
}

// placeLegend puts the legend in the corner of the data area that holds the
// fewest of the given points (a box of 40% × 40% of the area). Call it after
// the axis ranges are final.
func placeLegend(p *plot.Plot, pts []plotter.XY) {
	xr, yr := p.X.Max-p.X.Min, p.Y.Max-p.Y.Min
	if !(xr > 0) || !(yr > 0) {
		p.Legend.Top, p.Legend.Left = true, false
		return
	}
	type corner struct{ top, left bool }
	// Preference order on ties: top-right, top-left, bottom-right, bottom-left.
	corners := []corner{{true, false}, {true, true}, {false, false}, {false, true}}
	best, bestN := corners[0], math.MaxInt
	for _, c := range corners {
		n := 0
		for _, pt := range pts {
			u := p.X.Norm(pt.X)
			v := p.Y.Norm(pt.Y)
			inX := (c.left && u <= 0.4) || (!c.left && u >= 0.6)
			inY := (c.top && v >= 0.6) || (!c.top && v <= 0.4)
			if inX && inY {
				n++
			}
		}
		if n < bestN {
			best, bestN = c, n
		}
	}
	p.Legend.Top, p.Legend.Left = best.top, best.left
	p.Legend.XOffs = vg.Points(-6)
	if best.left {
		p.Legend.XOffs = vg.Points(6)
	}
	p.Legend.YOffs = vg.Points(-6)
	if !best.top {
		p.Legend.YOffs = vg.Points(6)
	}
}

// integerTicks labels only integer positions (layer indices, steps).
type integerTicks struct{}

func (integerTicks) Ticks(min, max float64) []plot.Tick {
	lo, hi := math.Ceil(min), math.Floor(max)
	if hi < lo {
		return nil
	}
	n := hi - lo + 1
	step := 1.0
	for n/step > 12 {
		switch {
		case step < 2:
			step = 2
		case step < 5:
			step = 5
		default:
			step *= 2
		}
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		if v == 0 {
			v = 0 // not -0
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: fmt.Sprintf("%.0f", v)})
	}
	return ticks
}

// noTicks hides tick marks and labels but keeps the axis line.
type noTicks struct{}

func (noTicks) Ticks(_, _ float64) []plot.Tick { return nil }

// anchorMap is a palette.ColorMap interpolating linearly (in sRGB) between
// equally spaced anchor colours.
type anchorMap struct {
	anchors  []color.NRGBA
	min, max float64
	alpha    float64
}

var _ palette.ColorMap = (*anchorMap)(nil)

// viridisAnchors samples matplotlib's viridis (perceptually uniform,
// colour-blind-safe) at nine equally spaced points.
var viridisAnchors = []color.NRGBA{
	{0x44, 0x01, 0x54, 0xFF},
	{0x47, 0x2D, 0x7B, 0xFF},
	{0x3B, 0x52, 0x8B, 0xFF},
	{0x2C, 0x72, 0x8E, 0xFF},
	{0x21, 0x91, 0x8C, 0xFF},
	{0x28, 0xAE, 0x80, 0xFF},
	{0x5E, 0xC9, 0x62, 0xFF},
	{0xAD, 0xDC, 0x30, 0xFF},
	{0xFD, 0xE7, 0x25, 0xFF},
}

// rdBuAnchors is ColorBrewer's 9-class RdBu, ordered from negative (blue)
// through white to positive (red). ColorBrewer marks it colour-blind-safe.
var rdBuAnchors = []color.NRGBA{
	{0x21, 0x66, 0xAC, 0xFF},
	{0x43, 0x93, 0xC3, 0xFF},
	{0x92, 0xC5, 0xDE, 0xFF},
	{0xD1, 0xE5, 0xF0, 0xFF},
	{0xF7, 0xF7, 0xF7, 0xFF},
	{0xFD, 0xDB, 0xC7, 0xFF},
	{0xF4, 0xA5, 0x82, 0xFF},
	{0xD6, 0x60, 0x4D, 0xFF},
	{0xB2, 0x18, 0x2B, 0xFF},
}

// Sequential returns the sequential colour map (viridis) spanning
// [min, max]; used for magnitudes such as the omitted score-path term and
// CKA.
func Sequential(min, max float64) palette.ColorMap {
	return &anchorMap{anchors: viridisAnchors, min: min, max: max, alpha: 1}
}

// Diverging returns the diverging colour map (blue–white–red, ColorBrewer
// RdBu) spanning [-limit, limit], white at 0; used for token values.
func Diverging(limit float64) palette.ColorMap {
	return &anchorMap{anchors: rdBuAnchors, min: -limit, max: limit, alpha: 1}
}

// At returns the colour of v; values outside [Min, Max] are an error, as
// palette.ColorMap requires.
func (m *anchorMap) At(v float64) (color.Color, error) {
	if math.IsNaN(v) {
		return nil, fmt.Errorf("plots: colour map value is NaN")
	}
	if v < m.min || v > m.max {
		return nil, palette.ErrOverflow
	}
	return m.clamped(v), nil
}

// clamped returns the colour of v, saturating outside [min, max].
func (m *anchorMap) clamped(v float64) color.NRGBA {
	t := 0.5
	if m.max > m.min {
		t = (v - m.min) / (m.max - m.min)
	}
	t = math.Max(0, math.Min(1, t))
	f := t * float64(len(m.anchors)-1)
	i := int(math.Floor(f))
	if i >= len(m.anchors)-1 {
		i = len(m.anchors) - 2
	}
	w := f - float64(i)
	a, b := m.anchors[i], m.anchors[i+1]
	mix := func(x, y uint8) uint8 { return uint8(math.Round(float64(x)*(1-w) + float64(y)*w)) }
	return color.NRGBA{
		R: mix(a.R, b.R),
		G: mix(a.G, b.G),
		B: mix(a.B, b.B),
		A: uint8(math.Round(255 * m.alpha)),
	}
}

func (m *anchorMap) Max() float64     { return m.max }
func (m *anchorMap) SetMax(v float64) { m.max = v }
func (m *anchorMap) Min() float64     { return m.min }
func (m *anchorMap) SetMin(v float64) { m.min = v }
func (m *anchorMap) Alpha() float64   { return m.alpha }

func (m *anchorMap) SetAlpha(a float64) {
	if !(a >= 0 && a <= 1) {
		panic("plots: alpha out of [0, 1]")
	}
	m.alpha = a
}

// Palette returns n colours evenly spaced over [Min, Max].
func (m *anchorMap) Palette(n int) palette.Palette {
	cs := make(colors, n)
	for i := range cs {
		v := m.min
		if n > 1 {
			v = m.min + (m.max-m.min)*float64(i)/float64(n-1)
		}
		cs[i] = m.clamped(v)
	}
	return cs
}

type colors []color.Color

func (c colors) Colors() []color.Color { return c }

// luminance returns the relative luminance (WCAG) of c in [0, 1].
func luminance(c color.Color) float64 {
	r, g, b, _ := color.NRGBAModel.Convert(c).RGBA()
	lin := func(v uint32) float64 {
		s := float64(v>>8) / 255
		if s <= 0.03928 {
			return s / 12.92
		}
		return math.Pow((s+0.055)/1.055, 2.4)
	}
	return 0.2126*lin(r) + 0.7152*lin(g) + 0.0722*lin(b)
}

// inkFor returns black or white, whichever reads better on background bg.
func inkFor(bg color.Color) color.Color {
	if luminance(bg) < 0.18 {
		return color.White
	}
	return color.Black
}

// padRange widens an axis range by frac of its span on both sides (by frac
// of |value|, or 1, when the span is zero).
func padRange(a *plot.Axis, frac float64) {
	span := a.Max - a.Min
	if !(span > 0) {
		span = math.Max(math.Abs(a.Max), 1)
	}
	a.Min -= frac * span
	a.Max += frac * span
}

// niceTicks places about five to eight labelled major ticks at multiples
// of 1, 2, 2.5 or 5 × 10^k, with unlabelled minor ticks between them;
// gonum's DefaultTicks often labels only two or three.
type niceTicks struct{}

func (niceTicks) Ticks(min, max float64) []plot.Tick {
	if !(max > min) || math.IsInf(min, 0) || math.IsInf(max, 0) {
		return plot.DefaultTicks{}.Ticks(min, max)
	}
	span := max - min
	mag := math.Pow(10, math.Floor(math.Log10(span)))
	var step float64
	var minorDiv int
	for _, m := range []struct {
		f   float64
		div int
	}{{0.1, 2}, {0.2, 2}, {0.25, 5}, {0.5, 5}, {1, 2}, {2, 2}, {2.5, 5}, {5, 5}, {10, 2}} {
		step, minorDiv = m.f*mag, m.div
		if span/step <= 8 {
			break
		}
	}
	// Decimals needed to tell labels apart.
	prec := 0
	for p := step; math.Abs(p-math.Round(p)) > 1e-9*step && prec < 10; p *= 10 {
		prec++
	}
	var ticks []plot.Tick
	first := math.Ceil(min/step-1e-9) * step
	for k := 0; ; k++ {
		v := first + float64(k)*step
		if v > max+1e-9*step {
			break
		}
		if math.Abs(v) < 1e-12*step {
			v = 0
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', prec, 64)})
	}
	minor := step / float64(minorDiv)
	for v := math.Ceil(min/minor-1e-9) * minor; v <= max+1e-9*minor; v += minor {
		r := v / step
		if math.Abs(r-math.Round(r)) < 1e-6 {
			continue
		}
		ticks = append(ticks, plot.Tick{Value: v})
	}
	return ticks
}
