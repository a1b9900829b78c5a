package alphatoken

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
)

var backendOnce compute.Backend

func testBackend(t testing.TB) compute.Backend {
	t.Helper()
	if backendOnce == nil {
		b, err := model.NewBackend("")
		if err != nil {
			t.Fatal(err)
		}
		backendOnce = b
	}
	return backendOnce
}

// fixture is a tiny model that has drifted from its reference, a Fisher, and data.
type fixture struct {
	cfg        *model.Config
	lm, ref    *model.LM
	fisher     *Fisher
	val, train []data.Example
}

func tinyConfig(arch model.Arch) *model.Config {
	c := &model.Config{Arch: arch, VocabSize: 41, Hidden: 16, Layers: 3, Heads: 4, KVHeads: 2, HeadDim: 4,
		Intermediate: 24, RMSNormEps: 1e-5, RoPETheta: 10000, MaxPositions: 64, BOSTokenID: -1, PadTokenID: 0,
		DType: "float64"}
	switch arch {
	case model.Qwen3:
		c.HeadDim = 6
	case model.Gemma3: // sliding layers (window 4, shorter than the batches) around a global one
		c.HeadDim, c.HiddenAct, c.QueryPreAttnScalar, c.TieEmbeddings = 6, "gelu_pytorch_tanh", 5, true
		c.RoPETheta, c.RoPEScaling, c.RoPELocalTheta = 1e6, model.RoPEScaling{Type: "linear", Factor: 8}, 1e4
		c.SlidingWindow, c.LayerTypes = 4, []string{model.SlidingAttention, model.FullAttention, model.SlidingAttention}
	}
	return c
}

func examples(rng *rand.Rand, n, vocab int) []data.Example {
	out := make([]data.Example, n)
	for i := range out {
		pl, rl := 2+rng.IntN(3), 3+rng.IntN(5)
		ids := make([]int, pl+rl)
		for j := range ids {
			ids[j] = 1 + rng.IntN(vocab-1)
		}
		out[i] = data.Example{IDs: ids, PromptLen: pl, Source: "fixture"}
	}
	return out
}

func randomTensor(rng *rand.Rand, positive bool, dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	v := make([]float64, n)
	for i := range v {
		if positive {
			v[i] = rng.Float64() + 0.1
		} else {
			v[i] = rng.NormFloat64()
		}
	}
	t, _ := model.TensorFromFloat64(v, dtypes.Float64, dims...)
	return t
}

// spd returns a random symmetric positive definite [d, d] matrix B Bᵀ/d + 0.1 I.
func spd(rng *rand.Rand, d int) *tensors.Tensor {
	b := make([]float64, d*d)
	for i := range b {
		b[i] = rng.NormFloat64()
	}
	m := make([]float64, d*d)
	for i := range d {
		for j := range d {
			for k := range d {
				m[i*d+j] += b[i*d+k] * b[j*d+k] / float64(d)
			}
			if i == j {
				m[i*d+j] += 0.1
			}
		}
	}
	t, _ := model.TensorFromFloat64(m, dtypes.Float64, d, d)
	return t
}

func newFixture(t *testing.T, arch model.Arch, kind FisherKind, k int) *fixture {
	t.Helper()
	backend := testBackend(t)
	cfg := tinyConfig(arch)
	ref, err := model.New(backend, cfg, dtypes.Float64, 21)
	if err != nil {
		t.Fatal(err)
	}
	// The fine-tuned model: θ_ref plus a drift of about 30% of the weights' scale.
	lm, err := ref.Clone()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
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
		tt, _ := model.TensorFromFloat64(vals, dtypes.Float64, s.Shape...)
		if err := v.SetValue(tt); err != nil {
			t.Fatal(err)
		}
	}
	f := &Fisher{Kind: kind, Blocks: k, Samples: 8, Diag: map[string]*tensors.Tensor{}, A: map[string]*tensors.Tensor{}, S: map[string]*tensors.Tensor{}}
	for _, l := range ScoredLayers(cfg, k) {
		switch kind {
		case FisherDiag:
			f.Diag[l.Name] = randomTensor(rng, true, l.Out, l.In)
		case FisherKFAC:
			f.A[l.Name], f.S[l.Name] = spd(rng, l.In), spd(rng, l.Out)
		}
	}
	return &fixture{cfg: cfg, lm: lm, ref: ref, fisher: f, val: examples(rng, 3, cfg.VocabSize), train: examples(rng, 3, cfg.VocabSize)}
}

func relErr(got, want []float64) float64 {
	var num, den float64
	for i := range got {
		num = math.Max(num, math.Abs(got[i]-want[i]))
		den = math.Max(den, math.Abs(want[i]))
	}
	return num / math.Max(den, 1e-300)
}

func f64(t *testing.T, x *tensors.Tensor) []float64 {
	v, err := model.TensorFloat64(x)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
