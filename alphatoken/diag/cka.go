package diag

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// Linear CKA for the representation-stability table (SPEC §8): per layer,
// reference vs fine-tuned hidden states of the same retention-probe tokens.

// LinearCKA returns the linear centred kernel alignment of two
// representations of the same n examples: X is n×p and Y is n×q (row i of
// each describes example i; p and q may differ). With Xc and Yc the
// column-centred matrices,
//
//	CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F · ||Yc^T Yc||_F)
//
// (Kornblith et al., 2019). It lies in [0, 1], equals 1 for Y = X, and is
// unchanged by an orthogonal rotation or an isotropic scaling of either
// representation (but not by an arbitrary invertible map). For p = q = 1 it
// is the squared Pearson correlation.
//
// Cost: the feature-space form above costs O(n(pq + p² + q²)); the same
// numbers follow from the n×n Gram matrices K = Xc Xc^T and L = Yc Yc^T as
// <K, L>_F / (||K||_F ||L||_F), at O(n²(p + q)). LinearCKA takes whichever is
// cheaper, so few examples with wide features stay fast. Memory is that of
// the chosen form's matrices.
//
// X and Y need the same number n ≥ 2 of rows, rows of equal width within
// each, finite values, and some variation (a representation whose columns
// are all constant has no centred kernel).
func LinearCKA(X, Y [][]float64) (float64, error) {
	p, err := checkRows("X", X)
	if err != nil {
		return 0, err
	}
	q, err := checkRows("Y", Y)
	if err != nil {
		return 0, err
	}
	n := len(X)
	if len(Y) != n {
		return 0, fmt.Errorf("diag: X and Y have different numbers of rows (%d and %d)", n, len(Y))
	}
	if n < 2 {
		return 0, fmt.Errorf("diag: X and Y need at least 2 rows, have %d", n)
	}
	// Tested on the raw values: centring a constant column can leave
	// rounding noise that would otherwise pass for a signal.
	if allColumnsConstant(X) {
		return 0, fmt.Errorf("diag: X has no variation (every column is constant)")
	}
	if allColumnsConstant(Y) {
		return 0, fmt.Errorf("diag: Y has no variation (every column is constant)")
	}
	xc, yc := centredColumns(X), centredColumns(Y)
	var xy, xx, yy float64
	if gramIsCheaper(n, p, q) {
		xy, xx, yy = ckaGram(xc, yc)
	} else {
		xy, xx, yy = ckaFeature(xc, yc)
	}
	return clamp(xy/(math.Sqrt(xx)*math.Sqrt(yy)), 0, 1), nil
}

// gramIsCheaper compares the multiply-add counts of the two forms.
func gramIsCheaper(n, p, q int) bool {
	feature := float64(n) * float64(p*q+p*p+q*q)
	gram := float64(n) * float64(n) * float64(p+q)
	return gram < feature
}

// allColumnsConstant reports whether every row equals the first.
func allColumnsConstant(rows [][]float64) bool {
	for _, r := range rows[1:] {
		for j, v := range r {
			if v != rows[0][j] {
				return false
			}
		}
	}
	return true
}

// centredColumns copies rows into an n×d matrix and subtracts each
// column's mean.
func centredColumns(rows [][]float64) *mat.Dense {
	n, d := len(rows), len(rows[0])
	m := mat.NewDense(n, d, nil)
	for i, r := range rows {
		m.SetRow(i, r)
	}
	for j := 0; j < d; j++ {
		col := mat.Col(nil, j, m)
		var mean float64
		for _, v := range col {
			mean += v
		}
		mean /= float64(n)
		for i := range col {
			m.Set(i, j, col[i]-mean)
		}
	}
	return m
}

// ckaFeature returns ||Yc^T Xc||_F², ||Xc^T Xc||_F² and ||Yc^T Yc||_F².
func ckaFeature(xc, yc *mat.Dense) (xy, xx, yy float64) {
	var a, b, c mat.Dense
	a.Mul(yc.T(), xc) // [q, p]
	b.Mul(xc.T(), xc) // [p, p]
	c.Mul(yc.T(), yc) // [q, q]
	return sumSquares(&a), sumSquares(&b), sumSquares(&c)
}

// ckaGram returns the same three numbers through the Gram matrices:
// ||Yc^T Xc||_F² = <K, L>_F, ||Xc^T Xc||_F² = ||K||_F², ||Yc^T Yc||_F² = ||L||_F².
func ckaGram(xc, yc *mat.Dense) (xy, xx, yy float64) {
	var k, l mat.Dense
	k.Mul(xc, xc.T()) // [n, n]
	l.Mul(yc, yc.T()) // [n, n]
	kd, ld := k.RawMatrix().Data, l.RawMatrix().Data
	for i := range kd {
		xy += kd[i] * ld[i]
		xx += kd[i] * kd[i]
		yy += ld[i] * ld[i]
	}
	return xy, xx, yy
}

// sumSquares returns the squared Frobenius norm of a freshly allocated
// (hence contiguous) matrix.
func sumSquares(m *mat.Dense) float64 {
	var s float64
	for _, v := range m.RawMatrix().Data {
		s += v * v
	}
	return s
}
