package diag

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// near reports whether got is within tol of want (absolute).
func near(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol
}

// wantErr fails unless err is a "diag: " error mentioning every fragment.
func wantErr(t *testing.T, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one mentioning %q", fragments)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "diag: ") {
		t.Errorf("error %q does not start with \"diag: \"", msg)
	}
	for _, f := range fragments {
		if !strings.Contains(msg, f) {
			t.Errorf("error %q does not mention %q", msg, f)
		}
	}
}

// gaussRows returns n rows of d standard normal values from seed.
func gaussRows(seed uint64, n, d int) [][]float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	rows := make([][]float64, n)
	for i := range rows {
		rows[i] = make([]float64, d)
		for j := range rows[i] {
			rows[i][j] = rng.NormFloat64()
		}
	}
	return rows
}
