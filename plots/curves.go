package plots

import (
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Series is one named line: a method's curve. Series i of a figure is drawn
// in MethodColor(i) and named Name in the legend, exactly as given.
type Series struct {
	Name string
	XYs  plotter.XYs
}

// TrainingCurves draws one line per series against the training step:
// loss, target metric or retention average vs step. yLabel should carry
// the unit, e.g. "training loss (nats/token)" or "retention average (%)".
// Points are drawn in the order given (sort them by step).
//
// It returns an error if series is empty, a series has no name or no
// points, or a point is NaN or ±Inf.
func TrainingCurves(title, yLabel string, series []Series) (*plot.Plot, error) {
	ss, err := copySeries(series)
	if err != nil {
		return nil, err
	}
	p := newPlot(title, "training step", yLabel)
	addGrid(p)
	all := addLines(p, ss, false)
	placeLegend(p, all)
	return p, nil
}

// addLines adds one line per series (with markers when glyphs is set) and
// the legend entries; it returns all points for legend placement.
func addLines(p *plot.Plot, ss []Series, glyphs bool) []plotter.XY {
	var all []plotter.XY
	for i, s := range ss {
		l := &plotter.Line{XYs: s.XYs, LineStyle: draw.LineStyle{
			Color:  MethodColor(i),
			Width:  vg.Points(1.6),
			Dashes: methodDashes(i),
		}}
		p.Add(l)
		thumbs := []plot.Thumbnailer{l}
		if glyphs {
			sc := &plotter.Scatter{XYs: s.XYs, GlyphStyle: draw.GlyphStyle{
				Color:  MethodColor(i),
				Radius: vg.Points(3),
				Shape:  MethodGlyph(i),
			}}
			p.Add(sc)
			thumbs = append(thumbs, sc)
		}
		p.Legend.Add(s.Name, thumbs...)
		all = append(all, s.XYs...)
	}
	return all
}
