package alphatoken

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"

	"github.com/alphatoken/alphatoken/alphatoken/diag"
	"github.com/alphatoken/alphatoken/model"
)

// TestValuePropagationPairs: probabilities, values and head outputs line up (for every query,
// Σ_c A_{r,c}(v_c − u_r) = 0 exactly), the first query attends only to itself, and sampling is
// reproducible.
func TestValuePropagationPairs(t *testing.T) {
	fx := newFixture(t, model.Qwen3, FisherDiag, 2)
	lm, cfg := fx.lm, fx.lm.Config
	pairs, err := ValuePropagationPairs(lm, fx.train, 2, 500, 1)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := ValuePropagationPairs(lm, fx.train, 2, 500, 1)
	for i, p := range pairs {
		if p != again[i] {
			t.Fatal("sampling is not reproducible")
		}
		if p.A < 0 || p.A > 1+1e-12 || p.Dev < 0 || p.Omitted < 0 || math.IsNaN(p.Omitted) {
			t.Fatalf("pair %d out of range: %+v", i, p)
		}
	}
	if s := diag.RiskShare(pairs, 0.05, 0); s <= 0 || s > 1 {
		t.Fatalf("risk share %g", s)
	}
	// Exhaustive identity on the raw taps.
	b := fx.trainBatch(10)
	nh, nk, e, T := cfg.Heads, cfg.KVHeads, cfg.HeadDim, 10
	exec := gm.MustNewExec(lm.Backend, lm.Store, func(scope *gm.Scope, tok, tgt, w *Node) []*Node {
		out := model.Forward(cfg, lm.Weights(tok.Graph()), tok, model.ForwardOptions{TapBlocks: 1})
		nll := model.TokenNLL(out.Logits, tgt)
		g := Gradient(ReduceAllSum(Mul(nll, ConvertDType(w, nll.DType()))), out.Taps[0].U)[0]
		bt := out.Taps[0]
		return []*Node{bt.Probs, bt.Values, bt.HeadOutputs(3, nk, nh/nk, T, e), (&model.BlockTaps{U: g}).HeadOutputs(3, nk, nh/nk, T, e)}
	})
	res := exec.MustCall(b.Tokens, b.Targets, b.Weights)
	pt := pairTaps{t: T, nh: nh, nk: nk, e: e}
	for _, r := range res {
		pt.vals = append(pt.vals, f64(t, r))
	}
	for bi := range 3 {
		for h := range nh {
			for r := range T {
				sum := make([]float64, e)
				var mass float64
				for c := 0; c <= r; c++ {
					st, w := pt.pair(0, bi, h, r, c)
					mass += st.A
					for d := range w {
						sum[d] += w[d]
					}
				}
				for d := range sum {
					if math.Abs(sum[d]) > 1e-12 || math.Abs(mass-1) > 1e-12 {
						t.Fatalf("example %d head %d query %d: Σ A(v−u) = %v, Σ A = %v", bi, h, r, sum, mass)
					}
				}
				if r == 0 {
					if st, _ := pt.pair(0, bi, h, 0, 0); st.A != 1 || st.Dev > 1e-12 || st.Omitted != 0 {
						t.Fatalf("the first query attends only to itself: %+v", st)
					}
				}
			}
		}
	}
}

// TestLayerCKA: a model compared with itself has CKA 1 at every layer; a drifted copy less
// than 1 somewhere, and never more.
func TestLayerCKA(t *testing.T) {
	fx := newFixture(t, model.Llama, FisherDiag, 2)
	var seqs [][]int
	for _, ex := range fx.train {
		seqs = append(seqs, ex.IDs)
	}
	self, err := LayerCKA(fx.lm, fx.lm, seqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(self) != fx.cfg.Layers+1 {
		t.Fatalf("%d layers", len(self))
	}
	for l, c := range self {
		if math.Abs(c-1) > 1e-9 {
			t.Fatalf("layer %d: CKA(X, X) = %g", l, c)
		}
	}
	drift, _ := LayerCKA(fx.ref, fx.lm, seqs)
	less := false
	for l, c := range drift {
		if c > 1+1e-9 {
			t.Fatalf("layer %d: CKA %g > 1", l, c)
		}
		less = less || c < 1-1e-6
	}
	if !less {
		t.Fatalf("a drifted model has CKA 1 everywhere: %v", drift)
	}
}
