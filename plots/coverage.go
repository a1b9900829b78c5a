package plots

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// CoveragePanel is one method's token-coverage result (SPEC §8): the 2-D
// t-SNE coordinates of its selected and rejected response tokens and the
// coverage number, the share of k-means clusters (of all tokens) that the
// selected tokens reach, in [0, 1].
type CoveragePanel struct {
	Method   string
	Coverage float64
	// Selected and Rejected are t-SNE coordinates. Either may be empty,
	// not both.
	Selected, Rejected plotter.XYs
}

// TokenCoverage draws one t-SNE panel per method, cols per row (cols ≤ 0
// picks up to three): rejected tokens as small grey rings under selected
// tokens as vermillion dots, the method and its coverage in each panel's
// title. All panels share the axis ranges (one embedding, several
// selections) and a legend under the title.
//
// It returns an error if panels is empty, a method name is empty, a panel
// has no points, a point is NaN or ±Inf, or Coverage is outside [0, 1].
func TokenCoverage(title string, panels []CoveragePanel, cols int) (*Panels, error) {
	if len(panels) == 0 {
		return nil, fmt.Errorf("plots: panels: %w", plotter.ErrNoData)
	}
	type data struct {
		sel, rej plotter.XYs
	}
	ds := make([]data, len(panels))
	xlo, xhi, ylo, yhi := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for i, pn := range panels {
		if pn.Method == "" {
			return nil, fmt.Errorf("plots: panels[%d]: empty method name", i)
		}
		what := fmt.Sprintf("panels[%d] %q", i, pn.Method)
		if err := checkIn(what+".Coverage", pn.Coverage, 0, 1); err != nil {
			return nil, err
		}
		if len(pn.Selected)+len(pn.Rejected) == 0 {
			return nil, fmt.Errorf("plots: %s: %w", what, plotter.ErrNoData)
		}
		var err error
		if len(pn.Selected) > 0 {
			if ds[i].sel, err = copyXYs(what+".Selected", pn.Selected); err != nil {
				return nil, err
			}
		}
		if len(pn.Rejected) > 0 {
			if ds[i].rej, err = copyXYs(what+".Rejected", pn.Rejected); err != nil {
				return nil, err
			}
		}
		for _, xys := range []plotter.XYs{ds[i].sel, ds[i].rej} {
			for _, p := range xys {
				xlo, xhi = math.Min(xlo, p.X), math.Max(xhi, p.X)
				ylo, yhi = math.Min(ylo, p.Y), math.Max(yhi, p.Y)
			}
		}
	}

	grid, cols := newGrid(len(panels), cols)
	total := 0
	for _, d := range ds {
		total = max(total, len(d.sel)+len(d.rej))
	}
	rr, rs := vg.Points(1.8), vg.Points(2.2)
	if total > 3000 {
		rr, rs = vg.Points(1.2), vg.Points(1.6)
	}
	rejSty := draw.GlyphStyle{Color: rejectColor, Radius: rr, Shape: draw.RingGlyph{}}
	selSty := draw.GlyphStyle{Color: selectColor, Radius: rs, Shape: draw.CircleGlyph{}}
	var legend []LegendEntry
	for i, pn := range panels {
		p := newPlot(fmt.Sprintf("%s: coverage %.2f", pn.Method, pn.Coverage), "t-SNE 1", "t-SNE 2")
		p.Title.TextStyle.Font.Size = vg.Points(LabelSize)
		p.X.Tick.Marker, p.Y.Tick.Marker = noTicks{}, noTicks{}
		rej := &plotter.Scatter{XYs: ds[i].rej, GlyphStyle: rejSty}
		sel := &plotter.Scatter{XYs: ds[i].sel, GlyphStyle: selSty}
		p.Add(rej, sel)
		p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = xlo, xhi, ylo, yhi
		padRange(&p.X, 0.03)
		padRange(&p.Y, 0.03)
		if i == 0 {
			legend = []LegendEntry{
				{Name: "selected tokens", Thumbs: []plot.Thumbnailer{glyphThumb{selSty}}},
				{Name: "rejected tokens", Thumbs: []plot.Thumbnailer{glyphThumb{rejSty}}},
			}
		}
		grid[i/cols][i%cols] = p
	}
	f := NewPanels(title, grid)
	f.Legend = legend
	return f, nil
}

// glyphThumb is a legend thumbnail showing one enlarged glyph.
type glyphThumb struct{ draw.GlyphStyle }

func (g glyphThumb) Thumbnail(c *draw.Canvas) {
	s := g.GlyphStyle
	s.Radius = max(s.Radius, vg.Points(3))
	c.DrawGlyph(s, c.Center())
}
