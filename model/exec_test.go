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

// TestStoreExecPartialGradient: a graph whose only output is the gradient of one upper weight (the
// layers below it are differentiated after it, their weight gradients unused) runs and matches the
// same gradient taken along with another one. (With compute v0.1.14's own fused dense gradient, a
// multi-output op, this graph made the go backend panic: "index out of range".)
func TestStoreExecPartialGradient(t *testing.T) {
	backend := testBackend(t)
	cfg := tinyConfigs()["qwen2"]
	lm, err := New(backend, cfg, dtypes.Float32, 2)
	if err != nil {
		t.Fatal(err)
	}
	name := LinearName(cfg.Layers-1, VProj)
	grad := func(all bool) []float64 {
		exec, err := NewStoreExec(backend, lm.Store, "grad", func(scope *gm.Scope, g *Graph, in []*Node) []*Node {
			out := Forward(cfg, lm.Weights(g), in[0], ForwardOptions{})
			loss := ReduceAllMean(TokenNLL(out.Logits, ConvertDType(ShiftLeft(in[0], 1, 0), dtypes.Int32)))
			if all {
				return []*Node{Gradient(loss, lm.Param(name).NodeValue(g), lm.Param(LinearName(0, QProj)).NodeValue(g))[0]}
			}
			return Gradient(loss, lm.Param(name).NodeValue(g))
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Call(testTokens(2, 6, cfg.VocabSize))
		if err != nil {
			t.Fatal(err)
		}
		return toF64(t, out[0])
	}
	if e := relErr(grad(false), grad(true)); e > 1e-6 {
		t.Fatalf("partial gradient differs by %g", e)
	}
}
