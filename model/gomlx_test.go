package model

import (
	"reflect"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
)

// TestGoMLXGaps pins the GoMLX gaps this package works around, so that an upgrade that closes one
// fails here and its workaround can go (README, "GoMLX notes"): Rsqrt has no gradient, so rmsNorm
// divides by Sqrt (its gradient is checked against finite differences and PyTorch elsewhere).
func TestGoMLXGaps(t *testing.T) {
	if _, ok := VJPRegistration[NodeTypeRsqrt]; ok {
		t.Error("GoMLX now defines the gradient of Rsqrt: rmsNorm may use Rsqrt (update README's GoMLX notes)")
	}
	if reflect.ValueOf(VJPRegistration[NodeTypeFusedDense]).Pointer() != reflect.ValueOf(denseVJP).Pointer() {
		t.Error("the fused dense op's gradient is not denseVJP")
	}
}
