package plots

import (
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Pair is one sampled (query r, key c) pair of the value-propagation
// diagnostic (SPEC §4, §8). Its fields match diag.PairStat's, so a
// conversion plots.Pair(ps) turns one into the other.
type Pair struct {
	A       float64 // attention probability A_{r,c}, in [0, 1]
	Dev     float64 // deviation ||v_c − u_r|| (L2 norm), ≥ 0
	Omitted float64 // size of the omitted score-path term |A_{r,c} (v_c − u_r) · g_r|, ≥ 0
}

// LowRisk is the region where the omitted score-path term is small by
// construction: attention is sparse (A ≤ MaxA) or saturated
// (Dev ≤ MaxDev). It is the rule of diag.PairStat.LowRisk, so Share equals
// diag.RiskShare with the same thresholds (e.g. those of
// diag.DefaultRiskThresholds). A zero threshold admits only exact zeros.
type LowRisk struct {
	MaxA   float64
	MaxDev float64
}

// Contains reports whether p lies in the low-risk region.
func (r LowRisk) Contains(p Pair) bool {
	return p.A <= r.MaxA || p.Dev <= r.MaxDev
}

// Share returns the fraction of pairs in the region (0 for no pairs).
func (r LowRisk) Share(pairs []Pair) float64 {
	if len(pairs) == 0 {
		return 0
	}
	n := 0
	for _, p := range pairs {
		if r.Contains(p) {
			n++
		}
	}
	return float64(n) / float64(len(pairs))
}

// OmittedShare returns the fraction of the total omitted term Σ Omitted
// that the pairs in the region carry (0 when the total is 0). It is the
// rule of diag.OmittedShare.
func (r LowRisk) OmittedShare(pairs []Pair) float64 {
	var in, all float64
	for _, p := range pairs {
		all += p.Omitted
		if r.Contains(p) {
			in += p.Omitted
		}
	}
	if all == 0 {
		return 0
	}
	return in / all
}

// DefaultColorFloor is the default lower end of the log colour scale, as a
// fraction of the largest omitted term: terms 10⁴ times smaller than the
// largest are numerically negligible against it and share the lowest
// colour, so that float round-off (terms of 1e-15) does not look like mass.
const DefaultColorFloor = 1e-4

// ValueProp is the input of the value-propagation figure.
type ValueProp struct {
	Pairs  []Pair
	Region LowRisk
	// LogColor colours by log10(Omitted) (the term spans decades). The
	// scale runs from ColorFloor × the largest term to the largest term;
	// smaller terms (exact zeros included) take the lowest colour, and the
	// colour bar's label says so.
	LogColor bool
	// ColorFloor is the lower end of the log colour scale as a fraction of
	// the largest term, in (0, 1); 0 means DefaultColorFloor.
	ColorFloor float64
}

// ValuePropagation draws the value-propagation diagnostic: one dot per
// sampled pair at (A_{r,c}, ||v_c − u_r||), coloured by the omitted
// score-path term (viridis, with a colour bar; linear colours run from the
// 1st to the 99th percentile, log colours from ColorFloor × the largest
// term to the largest), the low-risk region shaded and outlined. Where the
// omitted mass lies is written on the figure: the title gives the share of
// pairs and of the omitted mass inside the low-risk region, and a label in
// the unshaded area the same two shares outside it. Dots with larger terms
// are drawn on top.
//
// It returns an error if there are no pairs, a value is NaN or ±Inf,
// Attention is outside [0, 1], Distance or Omitted is negative, a
// threshold is negative, or ColorFloor is outside [0, 1).
func ValuePropagation(title string, d ValueProp) (*ColorBarPlot, error) {
	if len(d.Pairs) == 0 {
		return nil, fmt.Errorf("plots: pairs: %w", plotter.ErrNoData)
	}
	if err := checkIn("Region.MaxA", d.Region.MaxA, 0, 1); err != nil {
		return nil, err
	}
	if err := checkNonNeg("Region.MaxDev", d.Region.MaxDev); err != nil {
		return nil, err
	}
	if !(d.ColorFloor >= 0 && d.ColorFloor < 1) {
		return nil, fmt.Errorf("plots: ColorFloor = %v, want in [0, 1): %w", d.ColorFloor, ErrRange)
	}
	colorFloor := d.ColorFloor
	if colorFloor == 0 {
		colorFloor = DefaultColorFloor
	}
	pairs := slices.Clone(d.Pairs)
	for i, p := range pairs {
		what := fmt.Sprintf("pairs[%d]", i)
		if err := checkIn(what+".A", p.A, 0, 1); err != nil {
			return nil, err
		}
		if err := checkNonNeg(what+".Dev", p.Dev); err != nil {
			return nil, err
		}
		if err := checkNonNeg(what+".Omitted", p.Omitted); err != nil {
			return nil, err
		}
	}
	share := d.Region.Share(pairs)
	massShare := d.Region.OmittedShare(pairs)

	// Colour values. On the log scale everything below colorFloor × the
	// largest term is clipped to the floor.
	cv := make([]float64, len(pairs))
	largest := 0.0
	for _, p := range pairs {
		largest = math.Max(largest, p.Omitted)
	}
	floor, clipped := 0.0, 0
	if d.LogColor && largest > 0 {
		floor = math.Log10(largest * colorFloor)
	}
	for i, p := range pairs {
		cv[i] = p.Omitted
		if d.LogColor {
			cv[i] = floor
			if p.Omitted > 0 && math.Log10(p.Omitted) > floor {
				cv[i] = math.Log10(p.Omitted)
			} else {
				clipped++
			}
		}
	}
	order := make([]int, len(pairs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case cv[a] < cv[b]:
			return -1
		case cv[a] > cv[b]:
			return 1
		}
		return 0
	})
	// Colour limits: linear, the 1st and 99th percentiles, so a few extreme
	// pairs do not wash out the rest (values beyond saturate); log, the
	// floor to the largest term.
	lo, hi := cv[order[len(order)/100]], cv[order[len(order)-1-len(order)/100]]
	if d.LogColor {
		lo, hi = floor, cv[order[len(order)-1]]
	}
	if hi <= lo {
		hi = lo + 1
	}
	cm := Sequential(lo, hi).(*anchorMap)

	full := fmt.Sprintf("low-risk region (shaded): %s of %s pairs, %s of the omitted mass",
		percent(share), thousands(len(pairs)), percent(massShare))
	if title != "" {
		full = title + "\n" + full
	}
	p := newPlot(full, "attention weight A (probability)", "distance |v − u| (L2 norm)")
	addGrid(p)

	xys := make(plotter.XYs, len(pairs))
	for k, i := range order {
		xys[k] = plotter.XY{X: pairs[i].A, Y: pairs[i].Dev}
	}
	_, _, _, ymax := plotter.XYRange(xys)
	if ymax <= 0 {
		ymax = 1
	}
	radius := vg.Points(2.2)
	if len(pairs) > 3000 {
		radius = vg.Points(1.6)
	}

	// Region first, under the dots.
	if d.Region.MaxA > 0 || d.Region.MaxDev > 0 {
		reg := &lowRiskRegion{R: d.Region, YMax: ymax * 1.15}
		p.Add(reg)
		p.Legend.Add(regionLabel(d.Region), reg)
	}
	sc := &plotter.Scatter{XYs: xys, GlyphStyleFunc: func(k int) draw.GlyphStyle {
		return draw.GlyphStyle{Color: cm.clamped(cv[order[k]]), Radius: radius, Shape: draw.CircleGlyph{}}
	}}
	p.Add(sc)
	if d.Region.MaxA > 0 || d.Region.MaxDev > 0 {
		// The outline again on top of the dots, so the boundary stays
		// visible where the dots are dense.
		p.Add(&lowRiskRegion{R: d.Region, YMax: ymax * 1.15, OutlineOnly: true})
	}
	p.X.Min, p.X.Max = 0, 1
	p.Y.Min = 0
	p.Y.Max = ymax * 1.15
	p.Legend.Top, p.Legend.Left = true, false
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(-6), vg.Points(-6)
	if d.Region.MaxA > 0 || d.Region.MaxDev > 0 {
		p.Add(&cornerNote{Text: fmt.Sprintf("outside the region: %s of pairs\ncarry %s of the omitted mass",
			percent(1-share), percent(1-massShare)), Below: textStyle(LegendSize).Height("x") * 2.2})
	}

	label := "omitted term |A (v−u)·g|"
	if d.LogColor {
		label = fmt.Sprintf("log10 omitted term |A (v−u)·g|\n(below %s × the largest: lowest colour, %s pairs)",
			sci(colorFloor), thousands(clipped))
	}
	return newColorBarPlot(p, cm, label), nil
}

// sci formats x as "1e-4" (the fonts have no superscript minus).
func sci(x float64) string {
	return strings.Replace(strconv.FormatFloat(x, 'e', -1, 64), "e-0", "e-", 1)
}

// percent formats a share as a whole percentage ("62%"), with one decimal
// below 10% ("3.5%").
func percent(x float64) string {
	if x < 0.1 {
		return fmt.Sprintf("%.1f%%", 100*x)
	}
	return fmt.Sprintf("%.0f%%", 100*x)
}

// cornerNote writes a right-aligned block of text, on a white box, at the
// top right of the data area, Below points under its top edge (room for a
// one-line legend).
type cornerNote struct {
	Text  string
	Below vg.Length
}

func (n *cornerNote) Plot(c draw.Canvas, _ *plot.Plot) {
	sty := textStyle(LegendSize)
	sty.XAlign, sty.YAlign = draw.XRight, draw.YTop
	pad := vg.Points(3)
	at := vg.Point{X: c.Max.X - vg.Points(6) - pad, Y: c.Max.Y - n.Below - pad}
	w, h := sty.Width(n.Text), sty.Height(n.Text)
	box := []vg.Point{{X: at.X - w - pad, Y: at.Y + pad}, {X: at.X + pad, Y: at.Y + pad},
		{X: at.X + pad, Y: at.Y - h - pad}, {X: at.X - w - pad, Y: at.Y - h - pad}}
	c.FillPolygon(color.NRGBA{R: 0xFF, G: 0xFF, B: 0xFF, A: 0xE0}, box)
	c.FillText(sty, at, n.Text)
}

func regionLabel(r LowRisk) string {
	switch {
	case r.MaxA > 0 && r.MaxDev > 0:
		return fmt.Sprintf("low risk: A ≤ %.3g or |v−u| ≤ %.3g", r.MaxA, r.MaxDev)
	case r.MaxA > 0:
		return fmt.Sprintf("low risk: A ≤ %.3g", r.MaxA)
	}
	return fmt.Sprintf("low risk: |v−u| ≤ %.3g", r.MaxDev)
}

// lowRiskRegion shades {A ≤ MaxA} ∪ {‖v−u‖ ≤ MaxDev} over
// x ∈ [0, 1], y ∈ [0, YMax] and outlines its inner boundary with a dashed
// line.
type lowRiskRegion struct {
	R           LowRisk
	YMax        float64
	OutlineOnly bool
}

var regionLine = draw.LineStyle{Color: regionEdge, Width: vg.Points(1.2), Dashes: []vg.Length{vg.Points(4), vg.Points(2)}}

func (g *lowRiskRegion) Plot(c draw.Canvas, p *plot.Plot) {
	tr := func(x, y float64) vg.Point { return vg.Point{X: c.X(p.X.Norm(x)), Y: c.Y(p.Y.Norm(y))} }
	a, dist := g.R.MaxA, math.Min(g.R.MaxDev, g.YMax)
	ytop := math.Max(g.YMax, p.Y.Max)
	if a > 0 && !g.OutlineOnly {
		c.FillPolygon(regionFill, c.ClipPolygonXY([]vg.Point{tr(0, 0), tr(a, 0), tr(a, ytop), tr(0, ytop)}))
	}
	if dist > 0 && !g.OutlineOnly {
		// The horizontal band, minus the part already shaded.
		c.FillPolygon(regionFill, c.ClipPolygonXY([]vg.Point{tr(a, 0), tr(1, 0), tr(1, dist), tr(a, dist)}))
	}
	var edge []vg.Point
	switch {
	case a > 0 && dist > 0:
		edge = []vg.Point{tr(a, ytop), tr(a, dist), tr(1, dist)}
	case a > 0:
		edge = []vg.Point{tr(a, ytop), tr(a, 0)}
	default:
		edge = []vg.Point{tr(0, dist), tr(1, dist)}
	}
	c.StrokeLines(regionLine, c.ClipLinesXY(edge)...)
}

func (g *lowRiskRegion) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(regionFill, []vg.Point{c.Min, {X: c.Max.X, Y: c.Min.Y}, c.Max, {X: c.Min.X, Y: c.Max.Y}})
	y := (c.Min.Y + c.Max.Y) / 2
	c.StrokeLine2(regionLine, c.Min.X, y, c.Max.X, y)
}

// thousands formats n with comma separators: 5000 → "5,000".
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
