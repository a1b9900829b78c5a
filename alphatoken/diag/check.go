package diag

import (
	"fmt"
	"math"
)

// This file holds the argument checks shared by the package. Every check
// returns an error that starts with "diag: " and names the argument, so a
// line in a notebook's log says which input was wrong.

// checkVec reports an error if xs is empty or holds a NaN or an infinity.
func checkVec(name string, xs []float64) error {
	if len(xs) == 0 {
		return fmt.Errorf("diag: %s is empty", name)
	}
	for i, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("diag: %s[%d] is %v", name, i, x)
		}
	}
	return nil
}

// checkPair checks two vectors that must be paired element by element.
func checkPair(xName string, x []float64, yName string, y []float64) error {
	if len(x) != len(y) {
		return fmt.Errorf("diag: %s and %s have different lengths (%d and %d)", xName, yName, len(x), len(y))
	}
	if err := checkVec(xName, x); err != nil {
		return err
	}
	return checkVec(yName, y)
}

// checkRows checks a row-major point set: at least one row, every row the
// same non-zero width, every value finite. It returns the width.
func checkRows(name string, rows [][]float64) (int, error) {
	if len(rows) == 0 {
		return 0, fmt.Errorf("diag: %s has no rows", name)
	}
	d := len(rows[0])
	if d == 0 {
		return 0, fmt.Errorf("diag: %s[0] is empty", name)
	}
	for i, r := range rows {
		if len(r) != d {
			return 0, fmt.Errorf("diag: %s[%d] has %d values, %s[0] has %d", name, i, len(r), name, d)
		}
		for j, x := range r {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return 0, fmt.Errorf("diag: %s[%d][%d] is %v", name, i, j, x)
			}
		}
	}
	return d, nil
}

// isConstant reports whether every element of xs equals xs[0].
func isConstant(xs []float64) bool {
	for _, x := range xs[1:] {
		if x != xs[0] {
			return false
		}
	}
	return true
}
