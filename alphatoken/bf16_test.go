package alphatoken

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/diag"
	"github.com/alphatoken/alphatoken/model"
)

// bf16Setup is a small float32 model drifted from its reference, a diagonal Fisher estimated in
// float32, and random token data: the same weights and inputs for both precisions.
func bf16Setup(t *testing.T) (lm, ref *model.LM, fisher *Fisher, val, train []data.Example) {
	t.Helper()
	cfg := &model.Config{Arch: model.Qwen3, VocabSize: 97, Hidden: 64, Layers: 4, Heads: 4, KVHeads: 2, HeadDim: 16,
		Intermediate: 160, RMSNormEps: 1e-6, RoPETheta: 10000, MaxPositions: 128, BOSTokenID: -1, PadTokenID: 0,
		TieEmbeddings: true, DType: "float32"}
	ref, err := model.New(testBackend(t), cfg, dtypes.Float32, 8)
	if err != nil {
		t.Fatal(err)
	}
	if lm, err = ref.Clone(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(8, 9))
	for _, s := range cfg.ParamSpecs() {
		v := lm.Param(s.Name)
		vals, _ := model.TensorFloat64(v.MustValue())
		for i := range vals {
			if len(s.Shape) == 1 {
				vals[i] += 0.1 * rng.NormFloat64()
			} else {
				vals[i] += 0.3 * model.InitStd * rng.NormFloat64()
			}
		}
		tt, _ := model.TensorFromFloat64(vals, dtypes.Float32, s.Shape...)
		if err := v.SetValue(tt); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(n int) []data.Example {
		out := make([]data.Example, n)
		for i := range out {
			pl, rl := 4+rng.IntN(8), 24+rng.IntN(36)
			ids := make([]int, pl+rl)
			for j := range ids {
				ids[j] = 1 + rng.IntN(cfg.VocabSize-1)
			}
			out[i] = data.Example{IDs: ids, PromptLen: pl, Source: "bf16"}
		}
		return out
	}
	val, train = mk(8), mk(8)
	fisher, err = FisherFromSequences(ref, mk(8), FisherOptions{Kind: FisherDiag, Blocks: 3})
	if err != nil {
		t.Fatal(err)
	}
	return lm, ref, fisher, val, train
}

// TestBFloat16Valuation: under --dtype bfloat16 (float32 master weights, bfloat16 compute, float32
// accumulation) the four components and Φ of a batch rank its tokens as in float32 (Spearman ≥ 0.99
// each) and the top-ρ masks agree on ≥ 95% of the tokens, in the materialised and the ghost form;
// the Fisher estimated in bfloat16 ranks its entries as the float32 one does.
func TestBFloat16Valuation(t *testing.T) {
	lm32, ref, fisher, val, train := bf16Setup(t)
	idx := make([]int, len(train))
	for i := range idx {
		idx[i] = i
	}
	batch := data.MakeBatch(train, idx, len(train), 64, 0)
	for _, ghost := range []GhostMode{GhostNever, GhostAlways} {
		t.Run(string(ghost), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Blocks, cfg.ValExamples, cfg.Ghost = 3, len(val), ghost
			var comps [2][4][]float64
			for i, compute := range []dtypes.DType{dtypes.Float32, dtypes.BFloat16} {
				lm, err := lm32.Clone()
				if err != nil {
					t.Fatal(err)
				}
				lm.Compute = compute
				v, err := NewValuer(lm, ref, fisher, val, cfg, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := v.RefreshValidationGradient(); err != nil {
					t.Fatal(err)
				}
				comps[i] = components(t, v, batch)
			}
			// Compare at the label positions.
			var pos []int
			for j, w := range flatWeights(batch) {
				if w != 0 {
					pos = append(pos, j)
				}
			}
			pick := func(x []float64) []float64 {
				out := make([]float64, len(pos))
				for i, j := range pos {
					out[i] = x[j]
				}
				return out
			}
			var phi, keep [2][]float64
			for i := range comps {
				for c := range comps[i] {
					comps[i][c] = pick(comps[i][c])
				}
				n := len(pos)
				tgt, prx, valid := make([]float64, n), make([]float64, n), make([]bool, n)
				for j := range n {
					tgt[j], prx[j], valid[j] = comps[i][0][j]+comps[i][1][j], comps[i][2][j]+comps[i][3][j], true
				}
				phi[i] = CombineHost(tgt, prx, valid, cfg)
				mask := SelectHost(phi[i], valid, nil, DefaultRho, SelectTop)
				keep[i] = make([]float64, n)
				for j, k := range mask {
					if k {
						keep[i][j] = 1
					}
				}
			}
			for c, name := range componentNames {
				if relErr(comps[1][c], comps[0][c]) == 0 {
					t.Fatalf("%s: bfloat16 values equal the float32 ones bit for bit: the bfloat16 path did not run", name)
				}
				rho, err := diag.Spearman(comps[1][c], comps[0][c])
				if err != nil {
					t.Fatalf("%s: %v (a component is constant: the test would prove nothing)", name, err)
				}
				t.Logf("%s: Spearman(bf16, f32) = %.4f over %d tokens", name, rho, len(pos))
				if rho < 0.99 {
					t.Errorf("%s: Spearman(bfloat16, float32) = %.4f < 0.99", name, rho)
				}
			}
			rho, _ := diag.Spearman(phi[1], phi[0])
			agree := 0
			for j := range keep[0] {
				if keep[0][j] == keep[1][j] {
					agree++
				}
			}
			frac := float64(agree) / float64(len(pos))
			t.Logf("Φ: Spearman %.4f; top-ρ masks agree on %.1f%% of %d tokens", rho, 100*frac, len(pos))
			if rho < 0.99 {
				t.Errorf("Φ: Spearman(bfloat16, float32) = %.4f < 0.99", rho)
			}
			if frac < 0.95 {
				t.Errorf("top-ρ masks agree on %.1f%% of tokens < 95%%", 100*frac)
			}
		})
	}
	t.Run("fisher", func(t *testing.T) {
		refBF, err := ref.Clone()
		if err != nil {
			t.Fatal(err)
		}
		refBF.Compute = dtypes.BFloat16
		f16, err := FisherFromSequences(refBF, train, FisherOptions{Kind: FisherDiag, Blocks: 2})
		if err != nil {
			t.Fatal(err)
		}
		f32, err := FisherFromSequences(ref, train, FisherOptions{Kind: FisherDiag, Blocks: 2})
		if err != nil {
			t.Fatal(err)
		}
		for name, t32 := range f32.Diag {
			t16 := f16.Diag[name]
			if t16.Shape().DType != dtypes.Float32 {
				t.Fatalf("%s: bfloat16 Fisher stored as %s, want float32", name, t16.Shape().DType)
			}
			a, b := f64(t, t16), f64(t, t32)
			if rho, err := diag.Spearman(a, b); err != nil || rho < 0.99 {
				t.Errorf("Fisher %s: Spearman(bfloat16, float32) = %.4f (%v)", name, rho, err)
			}
		}
	})
}

func flatWeights(b data.Batch) []float32 {
	var out []float32
	for _, row := range b.Weights {
		out = append(out, row...)
	}
	return out
}
