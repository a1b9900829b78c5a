package plots

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/plot/plotter"
)

// Validation errors wrap gonum's plotter sentinels, so errors.Is works with
// plotter.ErrNaN, plotter.ErrInfinity and plotter.ErrNoData. The message
// starts with "plots: " and names the bad input, e.g.
//
//	plots: series[1] "Top-ρ": point 3 (x=30, y=NaN): plotter: NaN data point
var (
	// ErrMismatch reports inputs whose lengths or grids disagree.
	ErrMismatch = errors.New("mismatched lengths")
	// ErrRange reports a finite value outside its documented range
	// (a negative error bar, a probability above 1, ...).
	ErrRange = errors.New("value out of range")
)

// checkFloat returns an error naming what if v is NaN or ±Inf.
func checkFloat(what string, v float64) error {
	if err := plotter.CheckFloats(v); err != nil {
		return fmt.Errorf("plots: %s = %v: %w", what, v, err)
	}
	return nil
}

// checkNonNeg is checkFloat plus v ≥ 0 (error-bar half-widths, sizes).
func checkNonNeg(what string, v float64) error {
	if err := checkFloat(what, v); err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("plots: %s = %v, want ≥ 0: %w", what, v, ErrRange)
	}
	return nil
}

// checkIn is checkFloat plus lo ≤ v ≤ hi.
func checkIn(what string, v, lo, hi float64) error {
	if err := checkFloat(what, v); err != nil {
		return err
	}
	if v < lo || v > hi {
		return fmt.Errorf("plots: %s = %v, want in [%v, %v]: %w", what, v, lo, hi, ErrRange)
	}
	return nil
}

// copyXYs returns a copy of xys, or an error naming what and the first bad
// point (NaN, ±Inf) or reporting that xys is empty.
func copyXYs(what string, xys plotter.XYs) (plotter.XYs, error) {
	if len(xys) == 0 {
		return nil, fmt.Errorf("plots: %s: %w", what, plotter.ErrNoData)
	}
	for i, p := range xys {
		if err := plotter.CheckFloats(p.X, p.Y); err != nil {
			return nil, fmt.Errorf("plots: %s: point %d (x=%v, y=%v): %w", what, i, p.X, p.Y, err)
		}
	}
	return slices.Clone(xys), nil
}

// copySeries validates and copies a slice of series: it must be non-empty,
// each series needs a name and at least one finite point.
func copySeries(series []Series) ([]Series, error) {
	if len(series) == 0 {
		return nil, fmt.Errorf("plots: series: %w", plotter.ErrNoData)
	}
	out := make([]Series, len(series))
	for i, s := range series {
		if s.Name == "" {
			return nil, fmt.Errorf("plots: series[%d]: empty name", i)
		}
		xys, err := copyXYs(fmt.Sprintf("series[%d] %q", i, s.Name), s.XYs)
		if err != nil {
			return nil, err
		}
		out[i] = Series{Name: s.Name, XYs: xys}
	}
	return out, nil
}

// finiteRange returns the min and max of vs, ignoring nothing (vs are
// validated already).
func finiteRange(vs ...float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range vs {
		lo = math.Min(lo, v)
		hi = math.Max(hi, v)
	}
	return lo, hi
}
