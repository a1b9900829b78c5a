package alphatoken

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	gm "github.com/gomlx/gomlx/ml/model"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
)

// BenchmarkValuationVsBruteForce compares, in one run, the valuation of a batch (Valuer.Build: one
// diagonal-copy backward, one backward to the head outputs, contractions) with the per-token
// brute force (one backward pass per response token, the per-token gradient matrices of every
// scored layer materialised and multiplied with G and P). The brute force is timed on a sample
// of tokens and extrapolated to the batch. Model: the mini preset (d 128, 4 blocks), K = 3, a batch
// of 4 sequences of T tokens (prompt T/4).
//
//	GOEXPERIMENT=simd go test ./alphatoken -run '^$' -bench ValuationVsBruteForce -benchtime 1x
func BenchmarkValuationVsBruteForce(b *testing.B) {
	for _, T := range []int{128, 512} {
		b.Run(fmt.Sprintf("T%d", T), func(b *testing.B) {
			backend := testBackend(b)
			cfg, _ := model.Preset("mini", 259, 257, 258, 256)
			cfg.MaxPositions = 1024
			ref, err := model.New(backend, cfg, dtypes.Float32, 1)
			if err != nil {
				b.Fatal(err)
			}
			lm, _ := ref.Clone()
			rng := rand.New(rand.NewPCG(1, 2))
			mk := func(n int) []data.Example {
				out := make([]data.Example, n)
				for i := range out {
					ids := make([]int, T)
					for j := range ids {
						ids[j] = 'a' + rng.IntN(26)
					}
					out[i] = data.Example{IDs: ids, PromptLen: T / 4}
				}
				return out
			}
			f := &Fisher{Kind: FisherDiag, Blocks: 3, Diag: map[string]*tensors.Tensor{}}
			for _, l := range ScoredLayers(cfg, 3) {
				vals := make([]float64, l.Out*l.In)
				for i := range vals {
					vals[i] = rng.Float64()
				}
				f.Diag[l.Name], _ = model.TensorFromFloat64(vals, dtypes.Float32, l.Out, l.In)
			}
			vc := DefaultConfig()
			vc.Ghost = GhostNever // G materialised: the brute force needs it
			v, err := NewValuer(lm, ref, f, mk(8), vc, 0)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := v.RefreshValidationGradient(); err != nil {
				b.Fatal(err)
			}
			train := mk(4)
			batch := data.MakeBatch(train, []int{0, 1, 2, 3}, 4, T, 0)
			tok, tgt, wts := tensors.FromValue(batch.Tokens), tensors.FromValue(batch.Targets), tensors.FromValue(batch.Weights)
			ours := gm.MustNewExec(lm.Backend, lm.Store, func(scope *gm.Scope, tok, tgt, w *Node) []*Node {
				ev := v.Build(lm.Weights(tok.Graph()), tok, tgt, w)
				return []*Node{ev.TgtDir, ev.TgtCau, ev.PrxDir, ev.PrxCau}
			})
			layers := v.Layers
			brute := gm.MustNewExec(lm.Backend, lm.Store, func(scope *gm.Scope, tok, tgt, sel *Node) []*Node {
				wt := lm.Weights(tok.Graph())
				nll := model.TokenNLL(model.Forward(lm.Config, wt, tok, model.ForwardOptions{}).Logits, tgt)
				lp := ReduceAllSum(Mul(nll, sel))
				var ws []*Node
				for _, l := range layers {
					ws = append(ws, wt.Blocks[l.Block].Linear[l.Kind])
				}
				grads := Gradient(lp, ws...) // the materialised per-token gradient of every scored layer
				var tgtV, prxV *Node
				for i, l := range layers {
					g := lm.Store.GetVariable(gradPath(l.Name)).NodeValue(tok.Graph())
					p := v.proxyGradient(tok.Graph(), l.Name)
					a, c := ReduceAllSum(Mul(grads[i], g)), ReduceAllSum(Mul(grads[i], p))
					if tgtV == nil {
						tgtV, prxV = a, c
					} else {
						tgtV, prxV = Add(tgtV, a), Add(prxV, c)
					}
				}
				return []*Node{tgtV, prxV}
			})
			run := func(exec *gm.Exec, args ...any) float64 {
				t0 := time.Now()
				for _, o := range exec.MustCall(args...) {
					o.FinalizeAll()
				}
				return time.Since(t0).Seconds()
			}
			sel := make([][]float32, 4)
			for i := range sel {
				sel[i] = make([]float32, T)
			}
			run(ours, tok, tgt, wts)
			run(brute, tok, tgt, sel) // compile both
			const samples = 6
			var oursT, bruteT []float64
			for i := range samples {
				oursT = append(oursT, run(ours, tok, tgt, wts))
				s := make([][]float32, 4)
				for r := range s {
					s[r] = make([]float32, T)
				}
				s[i%4][T/4+rng.IntN(3*T/4-1)] = 1
				bruteT = append(bruteT, run(brute, tok, tgt, s))
			}
			sort.Float64s(oursT)
			sort.Float64s(bruteT)
			perToken := bruteT[samples/2]
			bruteTotal := perToken * float64(batch.NumTokens)
			b.ReportMetric(oursT[samples/2], "valuation-s")
			b.ReportMetric(perToken, "brute-s/token")
			b.ReportMetric(bruteTotal, "brute-s(est)")
			b.ReportMetric(bruteTotal/oursT[samples/2], "speedup")
			b.Logf("T=%d: %d response tokens; valuation %.3fs for the batch; brute force %.3fs per token → %.1fs (estimated) → %.0fx",
				T, batch.NumTokens, oursT[samples/2], perToken, bruteTotal, bruteTotal/oursT[samples/2])
		})
	}
}
