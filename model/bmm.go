package model

import (
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
)

// Batched matmuls (the attention core's scores and value products) and their gradient.
//
// The go backend multiplies z = x·y for x [B, M, K] and y [B, K, N] or y [B, N, K] (z = x·yᵀ)
// directly; a DotGeneral in any other layout has its operands transposed first, element by element
// (~4 ns an element). GoMLX's gradient of z = x·yᵀ with respect to y is ∂Lᵀ/∂z · x, which contracts
// ∂L/∂z [B, M, N] over its middle axis, so every attention layer's backward pass transposed its whole
// score gradient (M = g·t queries by N = s keys). batchMatmul's gradient (bmmVJP) transposes
// whichever is smaller, v = ∂L/∂z or the other operand and the result:
//
//	z = x·yᵀ:   ∂x = v·y      ∂y = vᵀ·x   or  (xᵀ·v)ᵀ
//	z = x·y:    ∂x = v·yᵀ     ∂y = xᵀ·v   or  (vᵀ·x)ᵀ
//
// and each transpose is done by transposeBatch, whose passes copy whole rows. On other backends
// (XLA picks its own layouts) and in half precision (GoMLX's gradient sets the float32 accumulator)
// batchMatmul is a plain DotGeneral with GoMLX's gradient.

// gomlxDotVJP is GoMLX's gradient of DotGeneral, used for every DotGeneral batchMatmul did not make.
var gomlxDotVJP = VJPRegistration[NodeTypeDotGeneral]

func init() {
	// GoMLX's documented hook for an op's gradient (VJPRegistration), as for the dense op (dense.go).
	VJPRegistration[NodeTypeDotGeneral] = dotGeneralVJP
}

// bmmStateKey keys a graph's bmmNodes (Graph.AttachState).
type bmmStateKey struct{}

// bmmNodes are the DotGenerals batchMatmul made in a graph, with whether y was transposed.
type bmmNodes map[*Node]bool

// batchMatmul returns x·y for x [B, M, K] and y [B, K, N], or x·yᵀ for y [B, N, K] when transposeY.
func batchMatmul(x, y *Node, transposeY bool) *Node {
	yContracting := 1
	if transposeY {
		yContracting = 2
	}
	z := DotGeneral(x, []int{2}, []int{0}, y, []int{yContracting}, []int{0})
	if g := z.Graph(); onGoBackend(g) && (x.DType() == dtypes.Float32 || x.DType() == dtypes.Float64) {
		nodes, _ := g.State(bmmStateKey{}).(bmmNodes)
		if nodes == nil {
			nodes = bmmNodes{}
			g.AttachState(bmmStateKey{}, nodes)
		}
		nodes[z] = transposeY
	}
	return z
}

// dotGeneralVJP is bmmVJP for batchMatmul's DotGenerals and GoMLX's gradient for all others.
func dotGeneralVJP(node *Node, vs []*Node, outputShape shapes.Shape) []*Node {
	nodes, _ := node.Graph().State(bmmStateKey{}).(bmmNodes)
	transposeY, ok := nodes[node]
	if !ok {
		return gomlxDotVJP(node, vs, outputShape)
	}
	return bmmVJP(node.Inputs()[0], node.Inputs()[1], vs[0], transposeY)
}

// bmmVJP is the gradient of z = x·y (or x·yᵀ) with respect to x and y, for v = ∂L/∂z [B, M, N]:
// of the two ways to get ∂y it takes the one that transposes fewer elements.
func bmmVJP(x, y, v *Node, transposeY bool) []*Node {
	d := v.Shape().Dimensions
	m, n := d[1], d[2]
	k := x.Shape().Dimensions[2]
	if transposeY { // y, ∂y [B, N, K]
		dx := batchMatmul(v, y, false) // [B, M, N]·[B, N, K]
		if m*n <= (m+n)*k {
			return []*Node{dx, batchMatmul(transposeBatch(v), x, false)} // vᵀ·x: transposes M·N
		}
		return []*Node{dx, transposeBatch(batchMatmul(transposeBatch(x), v, false))} // (xᵀ·v)ᵀ: M·K + K·N
	}
	// y, ∂y [B, K, N]
	dx := batchMatmul(v, y, true) // [B, M, N]·[B, K, N]ᵀ
	if m*k <= (m+k)*n {
		return []*Node{dx, batchMatmul(transposeBatch(x), v, false)} // xᵀ·v: transposes M·K
	}
	return []*Node{dx, transposeBatch(batchMatmul(transposeBatch(v), x, false))} // (vᵀ·x)ᵀ: M·N + N·K
}

// onGoBackend reports whether g runs on the go backend (the only one with the fused dense op).
func onGoBackend(g *Graph) bool { return hasFusedDense(g.Backend()) }
