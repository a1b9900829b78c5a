package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// randTensor is a float64 tensor of the given shape with entries uniform in [−1, 1).
func randTensor(rng *rand.Rand, dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	vals := make([]float64, n)
	for i := range vals {
		vals[i] = 2*rng.Float64() - 1
	}
	return tensors.FromFlatDataAndDimensions(vals, dims...)
}

func flat(t *tensors.Tensor) []float64 { return tensors.MustCopyFlatData[float64](t) }

// TestTransposes: transposeMatrix and transposeBatch equal the backend's Transpose exactly, on
// shapes that take each of their paths (one 2-D pass, three passes, a prime number of rows, rows too
// short to copy, a batch of one).
func TestTransposes(t *testing.T) {
	backend := testBackend(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, d := range [][2]int{{64, 40}, {1024, 128}, {1000, 24}, {1031, 32}, {1024, 8}, {512, 300}} {
		x := randTensor(rng, d[0], d[1])
		got := MustExecOnce(backend, transposeMatrix, x)
		want := MustExecOnce(backend, func(x *Node) *Node { return Transpose(x, 0, 1) }, x)
		if !got.Shape().Equal(want.Shape()) || !slices.Equal(flat(got), flat(want)) {
			t.Errorf("transposeMatrix %v: got %s, differs from Transpose", d, got.Shape())
		}
	}
	for _, d := range [][3]int{{16, 256, 32}, {16, 32, 128}, {1, 300, 40}, {3, 1024, 16}, {4, 20, 5}} {
		x := randTensor(rng, d[0], d[1], d[2])
		got := MustExecOnce(backend, transposeBatch, x)
		want := MustExecOnce(backend, func(x *Node) *Node { return TransposeAllAxes(x, 0, 2, 1) }, x)
		if !got.Shape().Equal(want.Shape()) || !slices.Equal(flat(got), flat(want)) {
			t.Errorf("transposeBatch %v: got %s, differs from Transpose", d, got.Shape())
		}
	}
}

// TestBatchMatmulGradient: batchMatmul's value and gradient (bmmVJP) equal DotGeneral's with GoMLX's
// gradient, in float64, for both layouts and, for each, shapes on both sides of the choice of which
// operand to transpose (L = Σ z ⊙ r for a random r).
func TestBatchMatmulGradient(t *testing.T) {
	backend := testBackend(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		transposeY bool
		b, m, n, k int
	}{
		{true, 3, 8, 8, 32},   // vᵀ·x: M·N = 64 ≤ (M+N)·K
		{true, 2, 64, 48, 4},  // (xᵀ·v)ᵀ
		{false, 3, 8, 32, 8},  // xᵀ·v: M·K ≤ (M+K)·N
		{false, 2, 64, 2, 64}, // (vᵀ·x)ᵀ
		{true, 4, 256, 128, 32},
		{false, 4, 256, 32, 128},
	} {
		t.Run(fmt.Sprintf("transposeY=%v/%dx%dx%dx%d", c.transposeY, c.b, c.m, c.n, c.k), func(t *testing.T) {
			x := randTensor(rng, c.b, c.m, c.k)
			y := randTensor(rng, c.b, c.k, c.n)
			yContracting := 1
			if c.transposeY {
				y = randTensor(rng, c.b, c.n, c.k)
				yContracting = 2
			}
			r := randTensor(rng, c.b, c.m, c.n)
			run := func(mul func(x, y *Node) *Node) [][]float64 {
				outs := MustNewExec(backend, func(x, y, r *Node) []*Node {
					z := mul(x, y)
					return append([]*Node{z}, Gradient(ReduceAllSum(Mul(z, r)), x, y)...)
				}).MustCall(x, y, r)
				res := make([][]float64, len(outs))
				for i, o := range outs {
					res[i] = flat(o)
				}
				return res
			}
			got := run(func(x, y *Node) *Node { return batchMatmul(x, y, c.transposeY) })
			want := run(func(x, y *Node) *Node { return DotGeneral(x, []int{2}, []int{0}, y, []int{yContracting}, []int{0}) })
			for i, name := range []string{"z", "∂x", "∂y"} {
				if len(got[i]) != len(want[i]) {
					t.Fatalf("%s: %d values, want %d", name, len(got[i]), len(want[i]))
				}
				worst := 0.0
				for j := range got[i] {
					worst = max(worst, math.Abs(got[i][j]-want[i][j]))
				}
				if worst > 1e-12 {
					t.Errorf("%s differs from GoMLX's by up to %.3g", name, worst)
				}
			}
		})
	}
}

// BenchmarkTransposeMatrix: transposeMatrix against the backend's one-pass Transpose on the dense
// gradient's shapes ([b·t, d] = [1024, 128] and [1024, 256], float32), 20 chained transposes per
// call (each result read back as [b·t, d]). The ratio of the two sub-benchmarks is the figure quoted in transpose.go.
func BenchmarkTransposeMatrix(b *testing.B) {
	backend := testBackend(b)
	for _, d := range [][2]int{{1024, 128}, {1024, 256}} {
		n, w := d[0], d[1]
		vals := make([]float32, n*w)
		for k := range vals {
			vals[k] = float32(k)
		}
		x := tensors.FromFlatDataAndDimensions(vals, n, w)
		for _, v := range []struct {
			name string
			fn   func(x *Node) *Node
		}{
			{"Transpose", func(x *Node) *Node { return Transpose(x, 0, 1) }},
			{"transposeMatrix", transposeMatrix},
		} {
			b.Run(fmt.Sprintf("%dx%d/%s", n, w, v.name), func(b *testing.B) {
				exec := MustNewExec(backend, func(x *Node) *Node {
					for range 20 {
						x = Reshape(v.fn(x), n, w)
					}
					return x
				})
				exec.MustCall(x)[0].FinalizeAll()
				b.ResetTimer()
				for range b.N {
					exec.MustCall(x)[0].FinalizeAll()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*20*n*w), "ns/elem")
			})
		}
	}
}
