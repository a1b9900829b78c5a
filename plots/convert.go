package plots

import (
	"fmt"

	"gonum.org/v1/plot/plotter"
)

// XYs pairs xs[i] with ys[i], e.g. Φ_prx with oracle values for
// ProxyScatter, or k/n with diag.TopKOverlapCurve's overlaps for
// TopKOverlap. It returns an error if the lengths differ or are zero, or a
// value is NaN or ±Inf.
func XYs(xs, ys []float64) (plotter.XYs, error) {
	if len(xs) != len(ys) {
		return nil, fmt.Errorf("plots: xs and ys have different lengths (%d and %d): %w", len(xs), len(ys), ErrMismatch)
	}
	xys := make(plotter.XYs, len(xs))
	for i := range xs {
		xys[i] = plotter.XY{X: xs[i], Y: ys[i]}
	}
	return copyXYs("xs, ys", xys)
}

// Points2D converts 2-D points, such as diag.TSNE's output, to XYs;
// keep selects the points that go into it (nil keeps all), so that
//
//	sel, _ := plots.Points2D(emb, selected)
//	rej, _ := plots.Points2D(emb, rejected)
//
// splits one embedding for TokenCoverage. It returns an error if keep is
// not nil and its length differs from pts', or a kept point is NaN or ±Inf;
// an empty result is not an error.
func Points2D(pts [][2]float64, keep []bool) (plotter.XYs, error) {
	if keep != nil && len(keep) != len(pts) {
		return nil, fmt.Errorf("plots: pts and keep have different lengths (%d and %d): %w", len(pts), len(keep), ErrMismatch)
	}
	var xys plotter.XYs
	for i, p := range pts {
		if keep != nil && !keep[i] {
			continue
		}
		if err := plotter.CheckFloats(p[0], p[1]); err != nil {
			return nil, fmt.Errorf("plots: pts[%d] = (%v, %v): %w", i, p[0], p[1], err)
		}
		xys = append(xys, plotter.XY{X: p[0], Y: p[1]})
	}
	return xys, nil
}
