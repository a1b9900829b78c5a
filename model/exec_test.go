package model

import (
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"
)

// TestStoreExecFeedsVariables: a graph compiled once must see every later change of a variable's
// value (the go backend would otherwise fold the variables into constants at compile time).
func TestStoreExecFeedsVariables(t *testing.T) {
	backend := testBackend(t)
	cfg := tinyConfigs()["llama"]
	lm, err := New(backend, cfg, dtypes.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	exec, err := NewStoreExec(backend, lm.Store, "logits_sum", func(_ *gm.Scope, g *Graph, in []*Node) []*Node {
		return []*Node{ReduceAllSum(Forward(cfg, lm.Weights(g), in[0], ForwardOptions{}).Logits)}
	})
	if err != nil {
		t.Fatal(err)
	}
	tokens := testTokens(2, 6, cfg.VocabSize)
	run := func() float64 {
		out, err := exec.Call(tokens)
		if err != nil {
			t.Fatal(err)
		}
		return toF64(t, out[0])[0]
	}
	before := run()
	v := lm.Param("model.norm.weight")
	scaled := toF64(t, v.MustValue())
	for i := range scaled {
		scaled[i] *= 2
	}
	tt, err := TensorFromFloat64(scaled, dtypes.Float32, v.Shape().Dimensions...)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.SetValue(tt); err != nil {
		t.Fatal(err)
	}
	// Doubling the final norm's scale doubles every logit.
	if after := run(); !(after > 1.99*before && after < 2.01*before) || before == 0 {
		t.Fatalf("sum of logits %g before, %g after doubling the final norm: the compiled graph did not see the new weights", before, after)
	}
}
