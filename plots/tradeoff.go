package plots

import (
	"fmt"
	"image/color"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// MethodPoint is one method's result on the adaptation–retention plane,
// in percent. The error fields are half-widths drawn as ± bars (a standard
// deviation or a 95% interval half-width: say which in the title); zero
// draws no bar.
type MethodPoint struct {
	Name string
	// Retention is the retention average (%), RetentionErr its half-width.
	Retention, RetentionErr float64
	// Target is the target score (%), TargetErr its half-width.
	Target, TargetErr float64
}

// TradeOffOptions are the trade-off figure's axis labels and the line that
// says what its error bars are.
type TradeOffOptions struct {
	// XLabel and YLabel default to "retention average (%)" and
	// "target score (%)".
	XLabel, YLabel string
	// Bars says what the error bars are, e.g. "bars: mean ± 95%
	// t-interval over seeds 1, 2, 3"; it is printed under the title.
	Bars string
}

// TradeOff draws the adaptation–retention trade-off with the default axis
// labels and no line about the bars (say what they are in the title, or use
// TradeOffWith).
func TradeOff(title string, points []MethodPoint) (*plot.Plot, error) {
	return TradeOffWith(title, points, TradeOffOptions{})
}

// TradeOffWith draws the adaptation–retention trade-off: one marker per
// method at (retention average, target score) with error bars in both
// directions (each in the method's colour and dash pattern, so that
// overlapping bars stay apart), the method's name next to it, and the
// Pareto front (maximising both) as a thin dashed line joining the
// non-dominated methods, drawn under the bars. Markers have a white rim so
// that a marker on another method's bar stays visible.
//
// It returns an error if points is empty, a name is empty, a value is NaN
// or ±Inf, or an error half-width is negative.
func TradeOffWith(title string, points []MethodPoint, o TradeOffOptions) (*plot.Plot, error) {
	if len(points) == 0 {
		return nil, fmt.Errorf("plots: points: %w", plotter.ErrNoData)
	}
	pts := slices.Clone(points)
	for i, m := range pts {
		if m.Name == "" {
			return nil, fmt.Errorf("plots: points[%d]: empty name", i)
		}
		what := fmt.Sprintf("points[%d] %q", i, m.Name)
		for _, e := range []error{
			checkFloat(what+".Retention", m.Retention),
			checkFloat(what+".Target", m.Target),
			checkNonNeg(what+".RetentionErr", m.RetentionErr),
			checkNonNeg(what+".TargetErr", m.TargetErr),
		} {
			if e != nil {
				return nil, e
			}
		}
	}

	if o.XLabel == "" {
		o.XLabel = "retention average (%)"
	}
	if o.YLabel == "" {
		o.YLabel = "target score (%)"
	}
	if o.Bars != "" {
		if title != "" {
			title += "\n"
		}
		title += o.Bars
	}
	p := newPlot(title, o.XLabel, o.YLabel)
	addGrid(p)

	// Pareto front below the bars and markers: straight segments between
	// the non-dominated points, so that it never runs along an error bar.
	front := ParetoFront(pts)
	var frontXYs plotter.XYs
	for _, i := range front {
		frontXYs = append(frontXYs, plotter.XY{X: pts[i].Retention, Y: pts[i].Target})
	}
	if len(frontXYs) > 1 {
		l := &plotter.Line{XYs: frontXYs, LineStyle: draw.LineStyle{
			Color:  color.NRGBA{R: 0x55, G: 0x55, B: 0x55, A: 0x99},
			Width:  vg.Points(0.9),
			Dashes: []vg.Length{vg.Points(5), vg.Points(3)},
		}}
		p.Add(l)
		p.Legend.Add("Pareto front", l)
	}

	labels := &pointLabels{Style: textStyle(LegendSize), Pad: vg.Points(4), SegHalfWidth: vg.Points(2.5)}
	for i, m := range pts {
		xy := plotter.XYs{{X: m.Retention, Y: m.Target}}
		c := MethodColor(i)
		ls := draw.LineStyle{Color: c, Width: vg.Points(1.3), Dashes: barDashes(i)}
		labels.Segments = append(labels.Segments,
			[2]plotter.XY{{X: m.Retention - m.RetentionErr, Y: m.Target}, {X: m.Retention + m.RetentionErr, Y: m.Target}},
			[2]plotter.XY{{X: m.Retention, Y: m.Target - m.TargetErr}, {X: m.Retention, Y: m.Target + m.TargetErr}})
		if m.RetentionErr > 0 {
			xe := &plotter.XErrorBars{XYs: xy, XErrors: plotter.XErrors{{Low: m.RetentionErr, High: m.RetentionErr}},
				LineStyle: ls, CapWidth: vg.Points(5)}
			p.Add(xe)
		}
		if m.TargetErr > 0 {
			ye := &plotter.YErrorBars{XYs: xy, YErrors: plotter.YErrors{{Low: m.TargetErr, High: m.TargetErr}},
				LineStyle: ls, CapWidth: vg.Points(5)}
			p.Add(ye)
		}
	}
	// Markers after every bar, each on a white rim.
	for i, m := range pts {
		xy := plotter.XYs{{X: m.Retention, Y: m.Target}}
		g := draw.GlyphStyle{Color: MethodColor(i), Radius: vg.Points(4), Shape: MethodGlyph(i)}
		rim := draw.GlyphStyle{Color: color.White, Radius: vg.Points(6), Shape: draw.CircleGlyph{}}
		p.Add(&plotter.Scatter{XYs: xy, GlyphStyle: rim}, &plotter.Scatter{XYs: xy, GlyphStyle: g})
		labels.add(m.Retention, m.Target, m.Name, g.Radius)
	}
	for k := 1; k < len(frontXYs); k++ {
		// The label avoidance treats the front's segments as boxes; a
		// diagonal one is left out (its box would cover the whole plot).
		if frontXYs[k-1].X == frontXYs[k].X || frontXYs[k-1].Y == frontXYs[k].Y {
			labels.Segments = append(labels.Segments, [2]plotter.XY{frontXYs[k-1], frontXYs[k]})
		}
	}
	p.Add(labels)
	padRange(&p.X, 0.04)
	padRange(&p.Y, 0.08)
	var occupied []plotter.XY
	for _, sg := range labels.Segments {
		occupied = append(occupied, sg[0], sg[1])
	}
	placeLegend(p, append(occupied, labels.XYs...))
	return p, nil
}

// barDashes is the dash pattern of the i-th method's error bars: solid,
// dashed and dotted in turn, so that two bars on the same line stay apart.
func barDashes(i int) []vg.Length {
	switch i % 3 {
	case 1:
		return []vg.Length{vg.Points(4), vg.Points(2)}
	case 2:
		return []vg.Length{vg.Points(1.5), vg.Points(1.5)}
	}
	return nil
}

// ParetoFront returns the indices of the non-dominated points when both
// Retention and Target are maximised, sorted by increasing Retention
// (hence decreasing Target). A point is dominated if another is at least as
// good on both and better on one; identical points are both kept.
func ParetoFront(points []MethodPoint) []int {
	var front []int
	for i, a := range points {
		dominated := false
		for j, b := range points {
			if j != i && b.Retention >= a.Retention && b.Target >= a.Target &&
				(b.Retention > a.Retention || b.Target > a.Target) {
				dominated = true
				break
			}
		}
		if !dominated {
			front = append(front, i)
		}
	}
	slices.SortStableFunc(front, func(i, j int) int {
		a, b := points[i], points[j]
		switch {
		case a.Retention < b.Retention:
			return -1
		case a.Retention > b.Retention:
			return 1
		case a.Target > b.Target:
			return -1
		case a.Target < b.Target:
			return 1
		}
		return 0
	})
	return front
}

// pointLabels draws a text label next to each point, choosing for each the
// first of eight positions (right, left, above, below, then the diagonals)
// that overlaps neither a marker nor an earlier label and stays inside the
// plot; when none is free it takes the least-overlapping one.
type pointLabels struct {
	XYs    plotter.XYs
	Labels []string
	Radius []vg.Length // marker radius at each point
	Style  text.Style
	Pad    vg.Length // gap between marker and label

	// Segments are axis-aligned line segments in data coordinates (error
	// bars, the Pareto staircase) that labels should avoid; each is
	// widened by SegHalfWidth on either side.
	Segments     [][2]plotter.XY
	SegHalfWidth vg.Length
}

func (l *pointLabels) add(x, y float64, label string, r vg.Length) {
	l.XYs = append(l.XYs, plotter.XY{X: x, Y: y})
	l.Labels = append(l.Labels, label)
	l.Radius = append(l.Radius, r)
}

// candidates returns the label rectangles, relative to the point, in order
// of preference.
func (l *pointLabels) candidates(i int) []vg.Rectangle {
	w := l.Style.Width(l.Labels[i])
	h := l.Style.Height(l.Labels[i])
	d := l.Radius[i] + l.Pad
	rect := func(x0, y0 vg.Length) vg.Rectangle {
		return vg.Rectangle{Min: vg.Point{X: x0, Y: y0}, Max: vg.Point{X: x0 + w, Y: y0 + h}}
	}
	return []vg.Rectangle{
		rect(d, -h/2),         // right
		rect(-d-w, -h/2),      // left
		rect(-w/2, d),         // above
		rect(-w/2, -d-h),      // below
		rect(d*0.7, d*0.7),    // upper right
		rect(-d*0.7-w, d*0.7), // upper left
		rect(d*0.7, -d*0.7-h), // lower right
		rect(-d*0.7-w, -d*0.7-h),
	}
}

func overlap(a, b vg.Rectangle) vg.Length {
	w := min(a.Max.X, b.Max.X) - max(a.Min.X, b.Min.X)
	h := min(a.Max.Y, b.Max.Y) - max(a.Min.Y, b.Min.Y)
	if w <= 0 || h <= 0 {
		return 0
	}
	return w * h
}

func (l *pointLabels) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	n := len(l.XYs)
	at := make([]vg.Point, n)
	var obstacles []vg.Rectangle
	for i, xy := range l.XYs {
		at[i] = vg.Point{X: trX(xy.X), Y: trY(xy.Y)}
		r := l.Radius[i]
		obstacles = append(obstacles, vg.Rectangle{
			Min: vg.Point{X: at[i].X - r, Y: at[i].Y - r},
			Max: vg.Point{X: at[i].X + r, Y: at[i].Y + r},
		})
	}
	for _, sg := range l.Segments {
		a := vg.Point{X: trX(sg[0].X), Y: trY(sg[0].Y)}
		b := vg.Point{X: trX(sg[1].X), Y: trY(sg[1].Y)}
		w := l.SegHalfWidth
		obstacles = append(obstacles, vg.Rectangle{
			Min: vg.Point{X: min(a.X, b.X) - w, Y: min(a.Y, b.Y) - w},
			Max: vg.Point{X: max(a.X, b.X) + w, Y: max(a.Y, b.Y) + w},
		})
	}
	sty := l.Style
	sty.XAlign, sty.YAlign = draw.XLeft, draw.YBottom
	for i := range n {
		best, bestCost := vg.Rectangle{}, vg.Length(-1)
		for _, cand := range l.candidates(i) {
			r := vg.Rectangle{Min: at[i].Add(cand.Min), Max: at[i].Add(cand.Max)}
			var cost vg.Length
			for _, o := range obstacles {
				cost += overlap(r, o)
			}
			// Leaving the data area (widened by the half label width that
			// GlyphBoxes reserved) costs twice the part that sticks out.
			allowed := c.Rectangle
			allowed.Min.X -= r.Size().X / 2
			allowed.Max.X += r.Size().X / 2
			inside := overlap(r, allowed)
			cost += (r.Size().X*r.Size().Y - inside) * 2
			if bestCost < 0 || cost < bestCost {
				best, bestCost = r, cost
			}
			if cost == 0 {
				break
			}
		}
		obstacles = append(obstacles, best)
		// Text baseline: YBottom aligns the text's bottom (descent) edge.
		c.FillText(sty, best.Min, l.Labels[i])
	}
}

func (l *pointLabels) DataRange() (xmin, xmax, ymin, ymax float64) {
	return plotter.XYRange(l.XYs)
}

// GlyphBoxes reserves room for each label on its preferred (right) side
// and for the marker, so labels of points at the edges are not clipped.
func (l *pointLabels) GlyphBoxes(plt *plot.Plot) []plot.GlyphBox {
	var bs []plot.GlyphBox
	for i, xy := range l.XYs {
		r := l.candidates(i)[0]
		// Reserve half the label width on either side: the label goes
		// right or left, whichever fits.
		w := r.Size().X
		rad := l.Radius[i] + l.Pad
		bs = append(bs, plot.GlyphBox{
			X: plt.X.Norm(xy.X), Y: plt.Y.Norm(xy.Y),
			Rectangle: vg.Rectangle{
				Min: vg.Point{X: -rad - w/2, Y: -rad},
				Max: vg.Point{X: rad + w/2, Y: rad},
			},
		})
	}
	return bs
}
