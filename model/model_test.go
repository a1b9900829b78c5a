package model

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	gm "github.com/gomlx/gomlx/ml/model"
)

var testBackendOnce compute.Backend

func testBackend(t testing.TB) compute.Backend {
	t.Helper()
	if testBackendOnce == nil {
		b, err := NewBackend("")
		if err != nil {
			t.Fatal(err)
		}
		testBackendOnce = b
	}
	return testBackendOnce
}

// tinyConfigs are small instances of each architecture, with GQA and the optional features on.
func tinyConfigs() map[string]*Config {
	base := Config{Arch: Llama, VocabSize: 37, Hidden: 16, Layers: 3, Heads: 4, KVHeads: 2, HeadDim: 4,
		Intermediate: 24, RMSNormEps: 1e-5, RoPETheta: 10000, MaxPositions: 64, BOSTokenID: -1, PadTokenID: -1,
		DType: "float64"}
	llama := base
	llama.TieEmbeddings = true
	llama.RoPEScaling = RoPEScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 16}
	llamaBias := base
	llamaBias.AttentionBias = true
	llamaBias.RoPEScaling = RoPEScaling{Type: "linear", Factor: 2}
	qwen2 := base
	qwen2.Arch = Qwen2
	qwen2.TieEmbeddings = true
	qwen3 := base
	qwen3.Arch = Qwen3
	qwen3.HeadDim = 6 // head_dim ≠ hidden/heads, as in real Qwen3 checkpoints
	return map[string]*Config{"llama": &llama, "llama-bias": &llamaBias, "qwen2": &qwen2, "qwen3": &qwen3}
}

// randomizeNorms perturbs norm scales and biases so tests do not pass by symmetry.
func randomizeNorms(t *testing.T, lm *LM) {
	i := 0
	for _, spec := range lm.Config.ParamSpecs() {
		if strings.HasSuffix(spec.Name, "norm.weight") || strings.HasSuffix(spec.Name, ".bias") {
			v := lm.Param(spec.Name)
			vals := make([]float64, v.Shape().Size())
			for j := range vals {
				i++
				vals[j] = 0.1*math.Sin(float64(i)*1.7) + map[bool]float64{true: 1, false: 0}[strings.HasSuffix(spec.Name, "weight")]
			}
			tt, _ := TensorFromFloat64(vals, lm.DType, spec.Shape...)
			if err := v.SetValue(tt); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func testTokens(b, t, vocab int) [][]int32 {
	out := make([][]int32, b)
	for i := range out {
		out[i] = make([]int32, t)
		for j := range out[i] {
			out[i][j] = int32((i*7 + j*13 + 3) % vocab)
		}
	}
	return out
}

func toF64(t *testing.T, x *tensors.Tensor) []float64 {
	v, err := TensorFloat64(x)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func relErr(a, b []float64) float64 {
	var num, den float64
	for i := range a {
		num = math.Max(num, math.Abs(a[i]-b[i]))
		den = math.Max(den, math.Abs(b[i]))
	}
	return num / math.Max(den, 1e-30)
}

// TestGradientFiniteDifferences checks autodiff of the whole model in float64 against central
// differences, for a few parameters of every kind.
func TestGradientFiniteDifferences(t *testing.T) {
	backend := testBackend(t)
	for name, cfg := range tinyConfigs() {
		t.Run(name, func(t *testing.T) {
			lm, err := New(backend, cfg, dtypes.Float64, 1)
			if err != nil {
				t.Fatal(err)
			}
			randomizeNorms(t, lm)
			tokens := testTokens(2, 6, cfg.VocabSize)
			lossFn := func(scope *gm.Scope, tok *Node) *Node {
				out := Forward(cfg, lm.Weights(tok.Graph()), tok, ForwardOptions{})
				targets := ShiftLeft(tok, 1, 0) // token p+1 at p (last position masked out below)
				nll := TokenNLL(out.Logits, ConvertDType(targets, dtypes.Int32))
				nll = Slice(nll, AxisRange(), AxisRange(0, 5))
				return ReduceAllMean(nll)
			}
			names := []string{"model.embed_tokens.weight", LinearName(0, QProj), LinearName(1, VProj), LinearName(2, DownProj),
				"model.layers.1.input_layernorm.weight", "model.norm.weight"}
			if cfg.QKVBias() {
				names = append(names, "model.layers.0.self_attn.k_proj.bias")
			}
			if cfg.QKNorm() {
				names = append(names, "model.layers.2.self_attn.q_norm.weight")
			}
			gradExec, err := NewStoreExec(backend, lm.Store, "grad", func(scope *gm.Scope, _ *Graph, in []*Node) []*Node {
				tok := in[0]
				loss := lossFn(scope, tok)
				var nodes []*Node
				for _, n := range names {
					nodes = append(nodes, lm.Param(n).NodeValue(tok.Graph()))
				}
				return Gradient(loss, nodes...)
			})
			if err != nil {
				t.Fatal(err)
			}
			lossExec, err := NewStoreExec(backend, lm.Store, "loss", func(scope *gm.Scope, _ *Graph, in []*Node) []*Node {
				return []*Node{lossFn(scope, in[0])}
			})
			if err != nil {
				t.Fatal(err)
			}
			grads := gradExec.MustCall(tokens)
			for i, n := range names {
				v := lm.Param(n)
				orig := toF64(t, v.MustValue())
				g := toF64(t, grads[i])
				for _, j := range []int{0, len(orig) / 3, len(orig) - 1} {
					const h = 1e-5
					at := func(delta float64) float64 {
						p := append([]float64{}, orig...)
						p[j] += delta
						tt, _ := TensorFromFloat64(p, dtypes.Float64, v.Shape().Dimensions...)
						v.MustSetValue(tt)
						return toF64(t, lossExec.MustCall(tokens)[0])[0]
					}
					fd := (at(h) - at(-h)) / (2 * h)
					tt, _ := TensorFromFloat64(orig, dtypes.Float64, v.Shape().Dimensions...)
					v.MustSetValue(tt)
					if math.Abs(fd-g[j]) > 1e-6*math.Max(1, math.Abs(fd)) {
						t.Errorf("%s[%d]: autodiff %.10g, finite difference %.10g", n, j, g[j], fd)
					}
				}
			}
		})
	}
}

// TestDiagonalCopy checks the direct-path hook of SPEC §4 and §7.1 at the model level: the
// diagonal copy has the same forward values, and ONE backward pass of Σ_p l_p through it gives,
// at every tapped layer and position p, the gradient of l_p alone w.r.t. z_p through the
// unmodified model (one separate backward pass per token).
func TestDiagonalCopy(t *testing.T) {
	backend := testBackend(t)
	for name, cfg := range tinyConfigs() {
		t.Run(name, func(t *testing.T) {
			lm, err := New(backend, cfg, dtypes.Float64, 2)
			if err != nil {
				t.Fatal(err)
			}
			randomizeNorms(t, lm)
			const B, T, K = 2, 6, 2
			tokens := testTokens(B, T, cfg.VocabSize)
			nllOf := func(logits, tok *Node) *Node {
				return TokenNLL(logits, ConvertDType(ShiftLeft(tok, 1, 0), dtypes.Int32))
			}
			// Outputs: logits, diag logits, then for each tapped block and kind: gradient of Σ l (diag).
			exec := gm.MustNewExec(backend, lm.Store, func(scope *gm.Scope, tok *Node) []*Node {
				out := Forward(cfg, lm.Weights(tok.Graph()), tok, ForwardOptions{TapBlocks: K, Diagonal: true})
				lossDiag := ReduceAllSum(Slice(nllOf(out.DiagLogits, tok), AxisRange(), AxisRange(0, T-1)))
				var zs []*Node
				for _, bt := range out.DiagTaps {
					for k := range NumLinearKinds {
						zs = append(zs, bt.Linear[k].Z)
					}
				}
				return append([]*Node{out.Logits, out.DiagLogits}, Gradient(lossDiag, zs...)...)
			})
			res := exec.MustCall(tokens)
			if e := relErr(toF64(t, res[1]), toF64(t, res[0])); e > 1e-12 {
				t.Fatalf("diagonal copy changes the logits: rel err %g", e)
			}
			// Per-token backward through the unmodified model.
			perToken := gm.MustNewExec(backend, lm.Store, func(scope *gm.Scope, tok, sel *Node) []*Node {
				out := Forward(cfg, lm.Weights(tok.Graph()), tok, ForwardOptions{TapBlocks: K})
				l := ReduceAllSum(Mul(nllOf(out.Logits, tok), sel)) // sel one-hot picks l_p
				var zs []*Node
				for _, bt := range out.Taps {
					for k := range NumLinearKinds {
						zs = append(zs, bt.Linear[k].Z)
					}
				}
				return Gradient(l, zs...)
			})
			for bi := range B {
				for p := range T - 1 {
					sel := make([][]float64, B)
					for i := range sel {
						sel[i] = make([]float64, T)
					}
					sel[bi][p] = 1
					want := perToken.MustCall(tokens, sel)
					for li := range want {
						w := toF64(t, want[li])
						got := toF64(t, res[2+li])
						d := want[li].Shape().Dimensions[2]
						off := (bi*T + p) * d
						if e := relErr(got[off:off+d], w[off:off+d]); e > 1e-9 {
							t.Errorf("tap %d, example %d, position %d: diagonal e differs from per-token backward, rel err %g", li, bi, p, e)
						}
					}
				}
			}
		})
	}
}

// TestSaveLoadRoundTrip saves single-file and sharded checkpoints and reloads them bit-exactly.
func TestSaveLoadRoundTrip(t *testing.T) {
	backend := testBackend(t)
	cfg := tinyConfigs()["qwen3"]
	lm, err := New(backend, cfg, dtypes.Float32, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, shard := range []int64{0, 2000} {
		dir := t.TempDir()
		if err := lm.Save(dir, SaveOptions{MaxShardBytes: shard}); err != nil {
			t.Fatal(err)
		}
		if shard > 0 {
			if _, err := os.Stat(filepath.Join(dir, "model.safetensors.index.json")); err != nil {
				t.Fatalf("sharded save wrote no index: %v", err)
			}
		}
		back, err := Load(backend, dir, dtypes.Float32)
		if err != nil {
			t.Fatal(err)
		}
		if !back.Config.Equal(cfg) {
			t.Fatalf("config changed: %+v vs %+v", back.Config, cfg)
		}
		a, _ := lm.ParamTensors()
		b, _ := back.ParamTensors()
		for i := range a {
			if e := relErr(toF64(t, b[i].Tensor), toF64(t, a[i].Tensor)); e != 0 {
				t.Errorf("%s changed by save/load (shard=%d): %g", a[i].Name, shard, e)
			}
		}
	}
}

// TestLoadRejectsMismatch: a checkpoint whose tensors do not match config.json fails naming the tensor.
func TestLoadRejectsMismatch(t *testing.T) {
	backend := testBackend(t)
	cfg := tinyConfigs()["llama"]
	lm, _ := New(backend, cfg, dtypes.Float32, 4)
	dir := t.TempDir()
	if err := lm.Save(dir, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	bad := *cfg
	bad.Intermediate = 32
	data, _ := bad.MarshalHF()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(backend, dir, dtypes.Float32)
	if err == nil || !strings.Contains(err.Error(), "model.layers.0.mlp.gate_proj.weight") ||
		!strings.Contains(err.Error(), "[24 16]") || !strings.Contains(err.Error(), "[32 16]") {
		t.Fatalf("want an error naming the tensor and both shapes, got %v", err)
	}
	// Unknown architecture.
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type":"gpt2","architectures":["GPT2LMHeadModel"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(backend, dir, dtypes.Float32); err == nil || !strings.Contains(err.Error(), "gpt2") {
		t.Fatalf("want unsupported-architecture error, got %v", err)
	}
}

// TestBFloat16: the go backend runs the model in bfloat16 (norms, softmax and the loss in float32):
// logits stay close to the float32 model's, and gradients are finite.
func TestBFloat16(t *testing.T) {
	backend := testBackend(t)
	cfg := tinyConfigs()["qwen2"]
	f32, err := New(backend, cfg, dtypes.Float32, 12)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := f32.Save(dir, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	bf, err := Load(backend, dir, dtypes.BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	tokens := testTokens(2, 8, cfg.VocabSize)
	run := func(lm *LM) ([]float64, []float64) {
		res := gm.MustExecOnceN(backend, lm.Store, func(scope *gm.Scope, tok *Node) []*Node {
			out := Forward(cfg, lm.Weights(tok.Graph()), tok, ForwardOptions{})
			loss := ReduceAllMean(TokenNLL(out.Logits, ConvertDType(ShiftLeft(tok, 1, 0), dtypes.Int32)))
			g := Gradient(loss, lm.Param(LinearName(1, VProj)).NodeValue(tok.Graph()))
			return []*Node{ConvertDType(out.Logits, dtypes.Float32), ConvertDType(g[0], dtypes.Float32)}
		}, tokens)
		return toF64(t, res[0]), toF64(t, res[1])
	}
	l32, _ := run(f32)
	l16, g16 := run(bf)
	if e := relErr(l16, l32); e > 0.05 {
		t.Errorf("bfloat16 logits differ from float32 by %.3g (relative)", e)
	}
	for _, x := range g16 {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			t.Fatal("non-finite bfloat16 gradient")
		}
	}
}
