package model

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	. "github.com/gomlx/gomlx/support/exceptions"
)

// Linear layers: z = a Wᵀ + bias for a [..., d_in] and W [d_out, d_in] (HF's layout).
//
// On the go backend the forward pass is the backend's fused dense op, and its gradient is denseVJP:
//
//	∂L/∂a = v W                   one matmul in the layout the backend multiplies in directly
//	∂L/∂W = (aᵀ v)ᵀ  or  vᵀ a      transposing a (shared by q/k/v and by gate/up: one transpose each)
//	                              when d_in ≤ 2·d_out, else v = ∂L/∂z
//	∂L/∂bias = Σ_n v               summed in float32 for half precision
//
// each its own node, so a weight gradient nobody asks for (the valuation's backward passes) is never
// computed. GoMLX's DotGeneral gradient instead copies a and ∂L/∂a and transposes both operands of
// every weight gradient, and the backend's own fused gradient always computes ∂L/∂W and transposes
// v even where d_out > d_in; on 2 cores those transposes cost more than the matmuls.
// Elsewhere (XLA) the layer is one DotGeneral and XLA picks the layouts.

// denseConfig is the configuration of every fused dense op this package creates.
var denseConfig = compute.DenseConfig{WeightLayout: compute.DenseLayoutOutputsInput,
	Activation: compute.ActivationConfig{Type: compute.ActivationNone}}

// denseSignature identifies those ops in a node's description (see denseVJP).
var denseSignature = fmt.Sprintf("options=%+v)", denseConfig)

// gomlxDenseVJP is GoMLX's gradient of the fused dense op, kept for fused dense ops created elsewhere.
var gomlxDenseVJP = VJPRegistration[NodeTypeFusedDense]

func init() {
	// GoMLX's documented hook for an op's gradient (VJPRegistration).
	VJPRegistration[NodeTypeFusedDense] = denseVJP
}

// linear computes z = a Wᵀ + bias (see the notes above).
func linear(a, weight, bias *Node) *Node {
	if !hasFusedDense(a.Graph().Backend()) {
		return plainLinear(a, weight, bias)
	}
	ad := a.Shape().Dimensions
	dIn := ad[len(ad)-1]
	z := BackendFusedDense(Reshape(a, a.Shape().Size()/dIn, dIn), weight, bias, denseConfig) // [n, d_out]
	return Reshape(z, append(slices.Clone(ad[:len(ad)-1]), weight.Shape().Dimensions[0])...)
}

// plainLinear is linear as one DotGeneral (plus the bias), differentiated by GoMLX.
func plainLinear(a, weight, bias *Node) *Node {
	ad := a.Shape().Dimensions
	dIn := ad[len(ad)-1]
	z := DotGeneral(Reshape(a, a.Shape().Size()/dIn, dIn), []int{1}, nil, weight, []int{1}, nil) // [n, d_out]
	z = Reshape(z, append(slices.Clone(ad[:len(ad)-1]), weight.Shape().Dimensions[0])...)
	if bias != nil {
		z = Add(z, ExpandLeftToRank(bias, z.Rank()))
	}
	return z
}

// hasFusedDense reports whether backend implements the fused dense op.
func hasFusedDense(backend compute.Backend) bool {
	return backend != nil && backend.Capabilities().Operations[compute.OpTypeFusedDense]
}

// denseVJP is the gradient of linear's fused dense op: x [n, i], W [o, i], optional bias [o], and
// v = ∂L/∂z [n, o]. Fused dense ops of any other configuration go to GoMLX's gradient.
func denseVJP(node *Node, vs []*Node, outputShape shapes.Shape) []*Node {
	if !strings.Contains(node.String(), denseSignature) {
		return gomlxDenseVJP(node, vs, outputShape)
	}
	ins := node.Inputs()
	x, w, v := ins[0], ins[1], vs[0]
	n, i := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
	o := w.Shape().Dimensions[0]
	if x.Rank() != 2 || w.Rank() != 2 || w.Shape().Dimensions[1] != i || !slices.Equal(v.Shape().Dimensions, []int{n, o}) {
		Panicf("model: unexpected fused dense shapes x %s, weight %s, ∂L/∂z %s", x.Shape(), w.Shape(), v.Shape())
	}
	dx := DotGeneral(v, []int{1}, nil, w, []int{0}, nil) // [n, i]
	var dw *Node
	if i <= 2*o {
		xt := transposeMatrix(x)                                              // [i, n], the same node for every layer reading x
		dw = Transpose(DotGeneral(xt, []int{1}, nil, v, []int{0}, nil), 0, 1) // [i, o] -> [o, i]
	} else {
		dw = DotGeneral(transposeMatrix(v), []int{1}, nil, x, []int{0}, nil) // [o, n] x [n, i]
	}
	grads := []*Node{dx, dw}
	if len(ins) > 2 {
		grads = append(grads, ReduceSum(ConvertDType(v, AccumDType(v.DType())), 0)) // a sum over n tokens
	}
	for k := range grads {
		grads[k] = ConvertDType(grads[k], ins[k].DType())
	}
	return grads
}
