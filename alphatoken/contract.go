package alphatoken

import (
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	. "github.com/gomlx/gomlx/support/exceptions"

	"github.com/alphatoken/alphatoken/model"
)

// SPEC §5. Shape legend: n tokens of the batch, s validation tokens, o = d_out, i = d_in.
//
// Precision: the token-side operands (e, a) come in the model's compute dtype; the products run in
// that dtype and accumulate in model.AccumDType (float32 for half precision, as PyTorch AMP's
// matmuls do), and every result is returned in the accumulation dtype.

// Contract returns, for every token, the Frobenius product of its rank-one gradient e aᵀ with a
// matrix M: <e aᵀ, M> = eᵀ M a, computed for all tokens at once as rowsum((E M) ⊙ A).
//
//	E [n, o], M [o, i], A [n, i] -> [n]     cost n·o·i
func Contract(e, m, a *Node) *Node {
	n, o := e.Shape().Dimensions[0], e.Shape().Dimensions[1]
	a.AssertDims(n, m.Shape().Dimensions[1])
	m.AssertDims(o, -1)
	acc := model.AccumDType(e.DType())
	em := dotAcc(e, []int{1}, nil, m, []int{0}, nil, acc) // [n, i]
	return ReduceSum(Mul(em, ConvertDType(a, acc)), -1)
}

// GhostDot returns, for every token, <e_p a_pᵀ, Σ_s e'_s a'_sᵀ> = Σ_s (e_p·e'_s)(a_p·a'_s) without
// forming the matrix Σ_s e'_s a'_sᵀ.
//
//	E [n, o], A [n, i], E' [s, o], A' [s, i] -> [n]     cost n·s·(o+i)
func GhostDot(e, a, eVal, aVal *Node) *Node {
	n := e.Shape().Dimensions[0]
	a.AssertDims(n, -1)
	eVal.AssertDims(-1, e.Shape().Dimensions[1])
	aVal.AssertDims(eVal.Shape().Dimensions[0], a.Shape().Dimensions[1])
	acc := model.AccumDType(e.DType())
	ee := dotAcc(e, []int{1}, nil, eVal, []int{1}, nil, acc) // [n, s]
	aa := dotAcc(a, []int{1}, nil, aVal, []int{1}, nil, acc) // [n, s]
	return ReduceSum(Mul(ee, aa), -1)
}

// dotAcc is DotGeneral of lhs with rhs converted to lhs's dtype, accumulated and returned in acc.
func dotAcc(lhs *Node, lhsContracting, lhsBatch []int, rhs *Node, rhsContracting, rhsBatch []int, acc dtypes.DType) *Node {
	rhs = ConvertDType(rhs, lhs.DType())
	d := Dot(lhs, rhs)
	if lhs.DType() != acc {
		d = d.WithOutputDType(acc)
	}
	return d.General(lhsContracting, lhsBatch, rhsContracting, rhsBatch)
}

// GhostCheaper reports whether the ghost form costs less than contracting with a materialised
// matrix for a layer [o, i] against s validation tokens (the n factor is common).
func GhostCheaper(o, i, s int) bool { return int64(s)*int64(o+i) < int64(o)*int64(i) }

// flatten2 reshapes [b, t, d] to [b·t, d].
func flatten2(x *Node) *Node {
	d := x.Shape().Dimensions
	if len(d) != 3 {
		Panicf("alphatoken: expected [batch, positions, features], got %s", x.Shape())
	}
	return Reshape(x, d[0]*d[1], d[2])
}
