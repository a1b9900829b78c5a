package model

import (
	. "github.com/gomlx/gomlx/core/graph"
)

// Transposes that the go backend runs fast. Its generic transpose moves one element at a time
// (~4 ns each), its 2-D transpose is tiled but slow when the output's columns are 4 KiB apart, and
// its transposes that keep the last axis (or swap the first two of three) copy whole rows. The
// gradients of the dense layers (dense.go) and of the attention's batched matmuls (bmm.go) transpose
// activations every step; these helpers build the same transpose from the fast kinds. Elsewhere
// (XLA) they are one Transpose.

// transposeMatrix returns xᵀ for x [h, w], on the go backend in three passes when h is large.
//
// The backend's 2-D transpose writes down the columns of the output, h elements apart; when h·4 bytes
// is a multiple of 4 KiB (h = b·t = 1024 tokens) every write of a 32-row tile lands in the same L1
// set and the transpose runs at ~10 ns an element, more than the matmul it feeds. Splitting
// h = h₁·h₂ (h₂ ≤ 128) makes the 2-D pass write h₂ apart, and the two other passes copy whole rows:
//
//	[h₁, h₂, w] → [h₂, h₁, w] → ([h₂, h₁·w])ᵀ = [h₁, w, h₂] → [w, h₁, h₂] = [w, h]
//
// 1.7x faster for [1024, 128] and 2x for [1024, 256] on 2 cores (BenchmarkTransposeMatrix).
func transposeMatrix(x *Node) *Node {
	h, w := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
	h2 := splitRows(h)
	if h2 == 0 || w < 16 || !onGoBackend(x.Graph()) {
		return Transpose(x, 0, 1)
	}
	h1 := h / h2
	y := TransposeAllAxes(Reshape(x, h1, h2, w), 1, 0, 2) // [h₂, h₁, w]: rows of w copied
	y = Transpose(Reshape(y, h2, h1*w), 0, 1)             // [h₁·w, h₂]: writes h₂ apart
	y = TransposeAllAxes(Reshape(y, h1, w, h2), 1, 0, 2)  // [w, h₁, h₂]: rows of h₂ copied
	return Reshape(y, w, h)
}

// splitRows returns the h₂ of transposeMatrix: the largest divisor of h in [16, 128], or 0 when h is
// small enough for one 2-D pass (h ≤ 256) or has no such divisor. (transposeMatrix also keeps one
// pass when rows of w < 16 elements are too short to copy.)
func splitRows(h int) int {
	if h <= 256 {
		return 0
	}
	for h2 := 128; h2 >= 16; h2-- {
		if h%h2 == 0 {
			return h2
		}
	}
	return 0
}

// transposeBatch returns x [B, H, W] as [B, W, H], in two passes whose copies are contiguous on the
// go backend: [B, H, W] → [H, B, W] (rows of W) → ([H, B·W])ᵀ = [B·W, H] (transposeMatrix). The
// backend's own transpose of a batch of matrices moves one element at a time.
func transposeBatch(x *Node) *Node {
	d := x.Shape().Dimensions
	b, h, w := d[0], d[1], d[2]
	if !onGoBackend(x.Graph()) || w < 16 {
		return TransposeAllAxes(x, 0, 2, 1)
	}
	if b == 1 {
		return Reshape(transposeMatrix(Reshape(x, h, w)), 1, w, h)
	}
	y := Reshape(TransposeAllAxes(x, 1, 0, 2), h, b*w) // [H, B·W]
	return Reshape(transposeMatrix(y), b, w, h)
}
