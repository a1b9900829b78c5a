package alphatoken

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
)

// The DPO branch of the valuation (SPEC §6), checked here with host-side DPO arithmetic written
// independently of package dpo (which imports this package): a pair batch has its chosen rows
// first, then its rejected rows; the per-token loss weight is ω = +w on chosen response tokens and
// −w on rejected ones, w = σ(−βδ) of the unmasked δ; J_tgt is the mean DPO loss of validation pairs.

// pairExamples returns n pairs flattened as [chosen_0 … chosen_{n−1}, rejected_0 … rejected_{n−1}]
// (the batch layout), prompts shared within a pair.
func pairExamples(rng *rand.Rand, n, vocab int) []data.Example {
	out := make([]data.Example, 2*n)
	for i := range n {
		pl := 2 + rng.IntN(3)
		prompt := make([]int, pl)
		for j := range prompt {
			prompt[j] = 1 + rng.IntN(vocab-1)
		}
		for br := range 2 {
			resp := make([]int, 3+rng.IntN(4))
			for j := range resp {
				resp[j] = 1 + rng.IntN(vocab-1)
			}
			out[br*n+i] = data.Example{IDs: append(append([]int(nil), prompt...), resp...), PromptLen: pl, Source: "pair"}
		}
	}
	return out
}

// tokenNLL is the per-position loss of lm on batch b ([rows][t], float64).
func tokenNLL(t *testing.T, lm *model.LM, b data.Batch) [][]float64 {
	t.Helper()
	exec, err := model.NewStoreExec(lm.Backend, lm.Store, "nll", func(_ *gm.Scope, g *Graph, in []*Node) []*Node {
		return []*Node{model.TokenNLL(model.Forward(lm.Config, lm.Weights(g), in[0], model.ForwardOptions{}).Logits, in[1])}
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := exec.Call(b.Tokens, b.Targets)
	if err != nil {
		t.Fatal(err)
	}
	flat := f64(t, res[0])
	out := make([][]float64, len(b.Tokens))
	for r := range out {
		out[r] = flat[r*b.T() : (r+1)*b.T()]
	}
	return out
}

// hostPairWeights is w_i = σ(−βδ_i), δ_i = Σ_t (log π − log π_ref) over chosen row i minus over
// rejected row n+i (response positions only).
func hostPairWeights(nll, ref [][]float64, weights [][]float32, beta float64) []float64 {
	n := len(nll) / 2
	w := make([]float64, n)
	for i := range n {
		var delta float64
		for p := range nll[i] {
			delta += float64(weights[i][p]) * (ref[i][p] - nll[i][p])
			delta -= float64(weights[n+i][p]) * (ref[n+i][p] - nll[n+i][p])
		}
		w[i] = 1 / (1 + math.Exp(beta*delta))
	}
	return w
}

// TestDPOBranchValuesAgainstMaterialisedGradients: each branch's token values — the four
// components of ω_p·l_p, ω = ±σ(−βδ) — equal the brute-force inner products of explicitly
// materialised per-token gradients with G = ∂J_tgt/∂W, J_tgt the mean DPO loss of validation pairs,
// and with P (float64).
func TestDPOBranchValuesAgainstMaterialisedGradients(t *testing.T) {
	const beta = 0.1
	cases := []struct {
		arch   model.Arch
		fisher FisherKind
		window int
		ghost  GhostMode
	}{
		{model.Llama, FisherDiag, 3, GhostNever},
		{model.Qwen2, FisherKFAC, 2, GhostAlways},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%s/%s", tc.arch, tc.fisher, tc.ghost), func(t *testing.T) {
			fx := newFixture(t, tc.arch, tc.fisher, 2)
			rng := rand.New(rand.NewPCG(41, 42))
			val, train := pairExamples(rng, 2, fx.cfg.VocabSize), pairExamples(rng, 2, fx.cfg.VocabSize)
			all := func(exs []data.Example, t int) data.Batch {
				idx := make([]int, len(exs))
				for i := range idx {
					idx[i] = i
				}
				return data.MakeBatch(exs, idx, len(exs), t, 0)
			}
			vb, b := all(val, 12), all(train, 12)

			// J_tgt: the mean DPO loss −log σ(βδ) of the validation pairs, the reference's losses constant.
			vref := tokenNLL(t, fx.ref, vb)
			obj := Objective{Batch: vb, Loss: func(nll, weights *Node) *Node {
				h := Mul(Sub(Const(nll.Graph(), vref), nll), ConvertDType(weights, nll.DType()))
				s := ReduceSum(h, 1)
				n := len(vref) / 2
				delta := Sub(SliceAxis(s, 0, AxisRange(0, n)), SliceAxis(s, 0, AxisRange(n, 2*n)))
				return ReduceAllMean(Log1p(Exp(MulScalar(delta, -beta))))
			}}
			w := hostPairWeights(tokenNLL(t, fx.lm, b), tokenNLL(t, fx.ref, b), b.Weights, beta)
			omega := make([][]float64, len(b.Weights))
			for r, row := range b.Weights {
				omega[r] = make([]float64, len(row))
				sign, pair := 1.0, r
				if r >= len(w) {
					sign, pair = -1, r-len(w)
				}
				for p, x := range row {
					omega[r][p] = sign * w[pair] * float64(x)
				}
			}

			cfg := DefaultConfig()
			cfg.Blocks, cfg.Window, cfg.Fisher, cfg.Ghost = 2, tc.window, tc.fisher, tc.ghost
			v, err := NewValuerFor(fx.lm, fx.ref, fx.fisher, obj, cfg, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.RefreshValidationGradient(); err != nil {
				t.Fatal(err)
			}
			exec, err := model.NewStoreExec(fx.lm.Backend, fx.lm.Store, "dpo_values", func(_ *gm.Scope, g *Graph, in []*Node) []*Node {
				ev := v.BuildWith(fx.lm.Weights(g), in[0], in[1], func(*Node) *Node { return in[2] })
				return []*Node{ev.TgtDir, ev.TgtCau, ev.PrxDir, ev.PrxCau}
			})
			if err != nil {
				t.Fatal(err)
			}
			res, err := exec.Call(b.Tokens, b.Targets, omega)
			if err != nil {
				t.Fatal(err)
			}
			want := bruteForceWith(t, fx, cfg, b, omega, &obj, nil)
			half := len(b.Tokens) / 2 * b.T()
			for i := range res {
				got := f64(t, res[i])
				for br, name := range []string{"chosen", "rejected"} {
					g, wn := got[br*half:(br+1)*half], want[i][br*half:(br+1)*half]
					if e := relErr(g, wn); e > 1e-9 || math.IsNaN(e) {
						t.Errorf("%s %s: relative error %.3g against materialised gradients", name, componentNames[i], e)
					}
					var norm float64
					for _, x := range wn {
						norm += x * x
					}
					if norm == 0 {
						t.Errorf("%s %s is identically zero: the test would prove nothing", name, componentNames[i])
					}
				}
			}
		})
	}
}
