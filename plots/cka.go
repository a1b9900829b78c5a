package plots

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// ckaTol is how far outside [0, 1] a CKA value may stray (round-off)
// before it is rejected; values within it are clamped.
const ckaTol = 1e-6

// copyCKA validates CKA series: x = layer index (an integer ≥ 0), y = CKA
// in [0, 1], clamped within ckaTol.
func copyCKA(series []Series) ([]Series, error) {
	ss, err := copySeries(series)
	if err != nil {
		return nil, err
	}
	for i, s := range ss {
		for j, pt := range s.XYs {
			what := fmt.Sprintf("series[%d] %q: point %d", i, s.Name, j)
			if pt.X < 0 || pt.X != math.Trunc(pt.X) {
				return nil, fmt.Errorf("plots: %s: layer %v, want an integer ≥ 0: %w", what, pt.X, ErrRange)
			}
			if err := checkIn(what+": CKA", pt.Y, -ckaTol, 1+ckaTol); err != nil {
				return nil, err
			}
			s.XYs[j].Y = math.Max(0, math.Min(1, pt.Y))
		}
	}
	return ss, nil
}

// CKALayers draws representation stability (SPEC §8): linear CKA between
// reference and fine-tuned hidden states per layer, one line per method
// (x = layer index, y = CKA in [0, 1]; the y axis ends at 1 and starts
// just below the lowest value).
//
// It returns an error if series is empty, a series has no name or points,
// a layer is not an integer ≥ 0, or a CKA value is NaN, ±Inf or outside
// [0, 1].
func CKALayers(title string, series []Series) (*plot.Plot, error) {
	ss, err := copyCKA(series)
	if err != nil {
		return nil, err
	}
	p := newPlot(title, "layer", "linear CKA vs reference")
	addGrid(p)
	all := addLines(p, ss, true)
	p.X.Tick.Marker = integerTicks{}
	padRange(&p.X, 0.03)
	lo := p.Y.Min
	p.Y.Min = math.Max(0, lo-0.1*(1-lo)-1e-3)
	p.Y.Max = 1 + 0.02*(1-p.Y.Min)
	placeLegend(p, all)
	return p, nil
}

// ckaGrid is the GridXYZ of a CKA heat map: column c is layers[c], row r
// is method n-1-r (so the first method is the top row).
type ckaGrid struct {
	layers []float64
	z      [][]float64 // [method][layer]
}

func (g ckaGrid) Dims() (c, r int)   { return len(g.layers), len(g.z) }
func (g ckaGrid) Z(c, r int) float64 { return g.z[len(g.z)-1-r][c] }
func (g ckaGrid) X(c int) float64    { return float64(c) }
func (g ckaGrid) Y(r int) float64    { return float64(r) }

// CKAHeatmap draws the same data as CKALayers as a methods × layers heat
// map (plotter.HeatMap, viridis, with a colour bar spanning the data's
// range), the first method on top and each cell annotated with its value
// when the grid is small enough to read. All series must have the same
// layers, in the same order.
//
// It returns the errors of CKALayers, and an error if the series' layers
// differ.
func CKAHeatmap(title string, series []Series) (*ColorBarPlot, error) {
	ss, err := copyCKA(series)
	if err != nil {
		return nil, err
	}
	layers := make([]float64, len(ss[0].XYs))
	for j, pt := range ss[0].XYs {
		layers[j] = pt.X
	}
	g := ckaGrid{layers: layers}
	for i, s := range ss {
		if len(s.XYs) != len(layers) {
			return nil, fmt.Errorf("plots: series[%d] %q: %d layers, series[0] has %d: %w",
				i, s.Name, len(s.XYs), len(layers), ErrMismatch)
		}
		row := make([]float64, len(layers))
		for j, pt := range s.XYs {
			if pt.X != layers[j] {
				return nil, fmt.Errorf("plots: series[%d] %q: point %d is layer %v, series[0] has layer %v: %w",
					i, s.Name, j, pt.X, layers[j], ErrMismatch)
			}
			row[j] = pt.Y
		}
		g.z = append(g.z, row)
	}
	var flat []float64
	for _, row := range g.z {
		flat = append(flat, row...)
	}
	lo, hi := finiteRange(flat...)
	if hi-lo < 1e-3 {
		lo, hi = math.Max(0, hi-1e-3), math.Max(hi, lo+1e-3)
	}
	cm := Sequential(lo, hi).(*anchorMap)

	p := newPlot(title, "layer", "")
	hm := plotter.NewHeatMap(g, cm.Palette(256))
	hm.Min, hm.Max = lo, hi
	p.Add(hm)
	names := make([]string, len(ss))
	for i, s := range ss {
		names[len(ss)-1-i] = s.Name
	}
	p.NominalY(names...)
	p.Y.Tick.Label.Font.Size = vg.Points(LabelSize)
	ticks := make([]plot.Tick, 0, len(layers))
	every := max(1, (len(layers)+11)/12)
	for c, l := range layers {
		t := plot.Tick{Value: float64(c)}
		if c%every == 0 {
			t.Label = fmt.Sprintf("%.0f", l)
		}
		ticks = append(ticks, t)
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Padding, p.Y.Padding = 0, 0

	if len(layers) <= 16 && len(ss) <= 12 {
		p.Add(&cellLabels{g: g, cm: cm})
	}
	return newColorBarPlot(p, cm, "linear CKA vs reference"), nil
}

// cellLabels writes each heat-map cell's value in black or white,
// whichever reads better on the cell's colour.
type cellLabels struct {
	g  ckaGrid
	cm *anchorMap
}

func (l *cellLabels) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	sty := textStyle(TickSize)
	sty.XAlign, sty.YAlign = draw.XCenter, draw.YCenter
	nc, nr := l.g.Dims()
	cellW := trX(1) - trX(0)
	// Three decimals when they fit (CKA differences live near 1), else
	// two, else none.
	format := "%.3f"
	if sty.Width("0.000") > cellW-vg.Points(3) {
		format = "%.2f"
	}
	if sty.Width("0.00") > cellW-vg.Points(3) {
		return
	}
	for r := range nr {
		for col := range nc {
			z := l.g.Z(col, r)
			sty.Color = inkFor(l.cm.clamped(z))
			c.FillText(sty, vg.Point{X: trX(float64(col)), Y: trY(float64(r))}, fmt.Sprintf(format, z))
		}
	}
}
