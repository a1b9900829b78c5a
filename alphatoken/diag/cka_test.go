package diag

import (
	"math"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// ckaReference computes CKA the textbook way, independently of cka.go:
// centre the Gram matrices with H = I - 11^T/n and take
// tr(HKH HLH) / sqrt(tr(HKH HKH) tr(HLH HLH)).
func ckaReference(X, Y [][]float64) float64 {
	n := len(X)
	gram := func(R [][]float64) [][]float64 {
		K := make([][]float64, n)
		for i := range K {
			K[i] = make([]float64, n)
			for j := range K[i] {
				for f := range R[i] {
					K[i][j] += R[i][f] * R[j][f]
				}
			}
		}
		// HKH: subtract row means and column means, add the grand mean.
		row := make([]float64, n)
		var all float64
		for i := range K {
			for j := range K[i] {
				row[i] += K[i][j] / float64(n)
			}
			all += row[i] / float64(n)
		}
		for i := range K {
			for j := range K[i] {
				K[i][j] += all - row[i] - row[j] // K is symmetric: column mean = row mean
			}
		}
		return K
	}
	K, L := gram(X), gram(Y)
	var kl, kk, ll float64
	for i := range K {
		for j := range K[i] {
			kl += K[i][j] * L[j][i]
			kk += K[i][j] * K[j][i]
			ll += L[i][j] * L[j][i]
		}
	}
	return kl / math.Sqrt(kk*ll)
}

func matRows(m mat.Matrix) [][]float64 {
	r, _ := m.Dims()
	rows := make([][]float64, r)
	for i := range rows {
		rows[i] = mat.Row(nil, i, m)
	}
	return rows
}

func denseOf(rows [][]float64) *mat.Dense {
	m := mat.NewDense(len(rows), len(rows[0]), nil)
	for i, r := range rows {
		m.SetRow(i, r)
	}
	return m
}

func TestLinearCKAIdentity(t *testing.T) {
	X := gaussRows(1, 30, 6)
	got, err := LinearCKA(X, X)
	if err != nil {
		t.Fatal(err)
	}
	if !near(got, 1, 1e-12) {
		t.Errorf("CKA(X, X) = %.15f, want 1", got)
	}
}

func TestLinearCKAOneDimensionIsRSquared(t *testing.T) {
	// For single columns CKA = r²; here r = 6/√60, so r² = 0.6.
	X := [][]float64{{1}, {2}, {3}, {4}, {5}}
	Y := [][]float64{{2}, {4}, {5}, {4}, {5}}
	got, err := LinearCKA(X, Y)
	if err != nil {
		t.Fatal(err)
	}
	if !near(got, 0.6, 1e-12) {
		t.Errorf("CKA = %.15f, want r² = 0.6", got)
	}
}

func TestLinearCKAMatchesReference(t *testing.T) {
	// p ≠ q, both forms: n=40 with p=3, q=2 uses the feature form; n=8
	// with p=50, q=20 the Gram form.
	for _, c := range []struct{ n, p, q int }{{40, 3, 2}, {8, 50, 20}} {
		X := gaussRows(2, c.n, c.p)
		Y := gaussRows(3, c.n, c.q)
		for i := range Y { // make Y depend on X
			Y[i][0] += 2 * X[i][0]
		}
		got, err := LinearCKA(X, Y)
		if err != nil {
			t.Fatal(err)
		}
		want := ckaReference(X, Y)
		if !near(got, want, 1e-12) || want < 0.05 || want > 0.95 {
			t.Errorf("n=%d p=%d q=%d: CKA = %.15f, reference %.15f", c.n, c.p, c.q, got, want)
		}
		xy1, xx1, yy1 := ckaFeature(centredColumns(X), centredColumns(Y))
		xy2, xx2, yy2 := ckaGram(centredColumns(X), centredColumns(Y))
		for _, pair := range [][2]float64{{xy1, xy2}, {xx1, xx2}, {yy1, yy2}} {
			if math.Abs(pair[0]-pair[1]) > 1e-9*math.Abs(pair[0]) {
				t.Errorf("feature form %v vs Gram form %v", pair[0], pair[1])
			}
		}
	}
}

func TestLinearCKAInvariances(t *testing.T) {
	X := gaussRows(4, 60, 5)
	Y := gaussRows(5, 60, 3)
	for i := range Y {
		Y[i][1] += X[i][2] - X[i][4]
	}
	base, err := LinearCKA(X, Y)
	if err != nil {
		t.Fatal(err)
	}
	// A random orthogonal Q from the QR factorisation of a Gaussian matrix.
	var qr mat.QR
	qr.Factorize(denseOf(gaussRows(6, 5, 5)))
	var Q, XQ mat.Dense
	qr.QTo(&Q)
	XQ.Mul(denseOf(X), &Q)
	var Xs mat.Dense
	Xs.Scale(-3.7, denseOf(X))
	// Anisotropic scaling is NOT an invariance: it must change the value.
	Xa := denseOf(X)
	for i := 0; i < 60; i++ {
		Xa.Set(i, 2, 10*Xa.At(i, 2))
	}
	check := func(name string, X2 [][]float64, invariant bool) {
		got, err := LinearCKA(X2, Y)
		if err != nil {
			t.Fatal(err)
		}
		same := near(got, base, 1e-10)
		if same != invariant {
			t.Errorf("%s: CKA = %.12f, base %.12f, want same = %v", name, got, base, invariant)
		}
	}
	check("rotation", matRows(&XQ), true)
	check("isotropic scaling", matRows(&Xs), true)
	check("anisotropic scaling", matRows(Xa), false)
	if base < 0.1 || base > 0.9 {
		t.Errorf("base CKA = %v: the test needs a value away from 0 and 1", base)
	}
}

func TestLinearCKAIndependentIsNearZero(t *testing.T) {
	// E[CKA] ≈ √(pq)/n = 5/2000 for independent Gaussian features.
	got, err := LinearCKA(gaussRows(7, 2000, 5), gaussRows(8, 2000, 5))
	if err != nil {
		t.Fatal(err)
	}
	if got > 0.02 {
		t.Errorf("CKA of independent features = %v, want < 0.02", got)
	}
}

func TestGramIsCheaper(t *testing.T) {
	if !gramIsCheaper(10, 1000, 1000) || gramIsCheaper(1000, 10, 10) {
		t.Error("gramIsCheaper picks the wrong form")
	}
}

func TestLinearCKAErrors(t *testing.T) {
	X := [][]float64{{1, 2}, {3, 4}, {5, 7}}
	_, err := LinearCKA(X, X[:2])
	wantErr(t, err, "X and Y", "rows (3 and 2)")
	_, err = LinearCKA(X[:1], X[:1])
	wantErr(t, err, "at least 2 rows")
	_, err = LinearCKA(nil, X)
	wantErr(t, err, "X has no rows")
	_, err = LinearCKA(X, [][]float64{{1}, {2, 3}, {4}})
	wantErr(t, err, "Y[1] has 2 values")
	_, err = LinearCKA(X, [][]float64{{1}, {math.NaN()}, {4}})
	wantErr(t, err, "Y[1][0]", "NaN")
	_, err = LinearCKA([][]float64{{0.1, 2}, {0.1, 2}, {0.1, 2}}, X)
	wantErr(t, err, "X has no variation")
}
