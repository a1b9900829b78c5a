package plots

import (
	"fmt"
	"image/color"

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

// Band is the interval drawn around a series: Lo[j] and Hi[j] belong to the series' point j (e.g.
// the ends of a 95% interval over seeds at that step).
type Band struct {
	Lo, Hi []float64
}

// TrainingCurvesBands is TrainingCurves with a translucent band around each line (bands[i] belongs
// to series[i]; a band with no points draws none). Say what the band is in the title or yLabel.
//
// It returns an error in TrainingCurves' cases, when len(bands) differs from len(series), or when a
// band's length differs from its series' or a band value is NaN or ±Inf.
func TrainingCurvesBands(title, yLabel string, series []Series, bands []Band) (*plot.Plot, error) {
	ss, err := copySeries(series)
	if err != nil {
		return nil, err
	}
	if len(bands) != len(ss) {
		return nil, fmt.Errorf("plots: %d bands for %d series", len(bands), len(ss))
	}
	p := newPlot(title, "training step", yLabel)
	addGrid(p)
	var all []plotter.XY
	for i, b := range bands {
		if len(b.Lo) == 0 && len(b.Hi) == 0 {
			continue
		}
		n := len(ss[i].XYs)
		if len(b.Lo) != n || len(b.Hi) != n {
			return nil, fmt.Errorf("plots: band %d (%q) has %d/%d values for %d points", i, ss[i].Name, len(b.Lo), len(b.Hi), n)
		}
		poly := make(plotter.XYs, 0, 2*n)
		for j := 0; j < n; j++ {
			if err := checkFloat(fmt.Sprintf("bands[%d].Lo[%d]", i, j), b.Lo[j]); err != nil {
				return nil, err
			}
			poly = append(poly, plotter.XY{X: ss[i].XYs[j].X, Y: b.Lo[j]})
		}
		for j := n - 1; j >= 0; j-- {
			if err := checkFloat(fmt.Sprintf("bands[%d].Hi[%d]", i, j), b.Hi[j]); err != nil {
				return nil, err
			}
			poly = append(poly, plotter.XY{X: ss[i].XYs[j].X, Y: b.Hi[j]})
		}
		pg, err := plotter.NewPolygon(poly)
		if err != nil {
			return nil, err
		}
		r, g, bl, _ := MethodColor(i).RGBA()
		pg.Color = color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(bl >> 8), A: 60}
		pg.LineStyle.Width = 0
		p.Add(pg)
		all = append(all, poly...)
	}
	all = append(all, addLines(p, ss, false)...)
	placeLegend(p, all)
	return p, nil
}
