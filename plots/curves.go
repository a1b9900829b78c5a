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
	// Lo and Hi, when set (one value per point of XYs), are a band drawn
	// around the line in its colour, e.g. a 95% interval over seeds.
	Lo, Hi []float64
}

// TrainingCurves draws one line per series against the training step:
// loss, target metric or retention average vs step. yLabel should carry
// the unit, e.g. "training loss (nats/token)" or "retention average (%)".
// A series with Lo and Hi gets a translucent band in its colour (say what
// the band is in the title). Points are drawn in the order given (sort
// them by step).
//
// It returns an error if series is empty, a series has no name or no
// points, a point or band edge is NaN or ±Inf, or Lo/Hi have another
// length than the points or Lo > Hi somewhere.
func TrainingCurves(title, yLabel string, series []Series) (*plot.Plot, error) {
	ss, err := copySeries(series)
	if err != nil {
		return nil, err
	}
	p := newPlot(title, "training step", yLabel)
	addGrid(p)
	var band []plotter.XY
	for i, s := range series {
		if s.Lo == nil && s.Hi == nil {
			continue
		}
		if len(s.Lo) != len(s.XYs) || len(s.Hi) != len(s.XYs) {
			return nil, fmt.Errorf("plots: series[%d] %q: %d points, %d Lo, %d Hi: %w", i, s.Name, len(s.XYs), len(s.Lo), len(s.Hi), ErrRange)
		}
		poly := make(plotter.XYs, 0, 2*len(s.XYs))
		for k, xy := range s.XYs {
			if err := checkFloat(fmt.Sprintf("series[%d].Lo[%d]", i, k), s.Lo[k]); err != nil {
				return nil, err
			}
			if err := checkFloat(fmt.Sprintf("series[%d].Hi[%d]", i, k), s.Hi[k]); err != nil {
				return nil, err
			}
			if s.Lo[k] > s.Hi[k] {
				return nil, fmt.Errorf("plots: series[%d] %q: Lo[%d] = %v > Hi = %v: %w", i, s.Name, k, s.Lo[k], s.Hi[k], ErrRange)
			}
			poly = append(poly, plotter.XY{X: xy.X, Y: s.Hi[k]})
		}
		for k := len(s.XYs) - 1; k >= 0; k-- {
			poly = append(poly, plotter.XY{X: s.XYs[k].X, Y: s.Lo[k]})
		}
		pg, err := plotter.NewPolygon(poly)
		if err != nil {
			return nil, fmt.Errorf("plots: series[%d] %q band: %w", i, s.Name, err)
		}
		r, g, b, _ := MethodColor(i).RGBA()
		pg.Color = color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: 0x38}
		pg.LineStyle.Width = 0
		p.Add(pg)
		band = append(band, poly...)
	}
	all := addLines(p, ss, false)
	placeLegend(p, append(all, band...))
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
