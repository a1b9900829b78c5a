package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers/activation"
	gm "github.com/gomlx/gomlx/ml/model"
)

// The published Gemma 3 sizes. The 4B text stack comes from the fixtures (the text model's own
// config in both forms, and google/gemma-3-4b-it's multimodal config.json, which names six keys of
// text_config and leaves the rest to Gemma3TextConfig's defaults); the 12B and 27B ones are the
// text_config of their multimodal configs, with the keys the 27B sets apart from the defaults
// (head_dim 128, query_pre_attn_scalar 168 = hidden/heads).
func TestGemma3Configs(t *testing.T) {
	type want struct {
		vocab, hidden, layers, heads, kv, headDim, ff, window, sliding int
		qpas                                                           float64
	}
	check := func(name string, c *Config, w want) {
		t.Helper()
		sliding := 0
		for _, lt := range c.LayerTypes {
			if lt == SlidingAttention {
				sliding++
			}
		}
		if c.Arch != Gemma3 || c.Hidden != w.hidden || c.Layers != w.layers || c.Heads != w.heads || c.KVHeads != w.kv ||
			c.HeadDim != w.headDim || c.Intermediate != w.ff || c.SlidingWindow != w.window || sliding != w.sliding ||
			c.QueryPreAttnScalar != w.qpas || c.VocabSize != w.vocab || c.RoPELocalTheta != 1e4 || !c.TieEmbeddings ||
			c.HiddenAct != "gelu_pytorch_tanh" || c.DType != "bfloat16" || c.BOSTokenID != 2 || c.PadTokenID != 0 {
			t.Errorf("%s: %+v", name, *c)
		}
		if math.Abs(c.AttnScale()-1/math.Sqrt(w.qpas)) > 1e-15 {
			t.Errorf("%s: attention scale %g, want %g", name, c.AttnScale(), 1/math.Sqrt(w.qpas))
		}
	}
	g1, err := ParseConfig(readFixture(t, "gemma-3-1b.t4.json"))
	if err != nil {
		t.Fatal(err)
	}
	check("gemma-3-1b", g1, want{262144, 1152, 26, 4, 1, 256, 6912, 512, 22, 256})

	four := want{262208, 2560, 34, 8, 4, 256, 10240, 1024, 29, 256}
	var text4 *Config
	for _, name := range []string{"gemma-3-4b-text.t4.json", "gemma-3-4b-text.t5.json", "gemma-3-4b-it.multimodal.json"} {
		c, err := ParseConfig(readFixture(t, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		check(name, c, four)
		if c.RoPETheta != 1e6 || c.RoPEScaling != (RoPEScaling{Type: "linear", Factor: 8}) || c.LayerTypes[5] != FullAttention ||
			c.MaxPositions != 131072 || len(c.EOSTokenIDs) != 2 || c.EOSTokenIDs[1] != 106 {
			t.Errorf("%s: %+v", name, *c)
		}
		if text4 == nil {
			text4 = c
		} else if !c.Equal(text4) {
			t.Errorf("%s differs from the text model's config:\n%+v\n%+v", name, *c, *text4)
		}
	}
	if multi, _ := ParseConfig(readFixture(t, "gemma-3-4b-it.multimodal.json")); multi.textOf != gemma3Multimodal || text4.textOf != "" {
		t.Errorf("textOf: multimodal %q, text %q", multi.textOf, text4.textOf)
	}

	multimodal := func(text string) []byte {
		return []byte(`{"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3", "eos_token_id": [1, 106],
			"torch_dtype": "bfloat16", "vision_config": {"hidden_size": 1152, "model_type": "siglip_vision_model"},
			"text_config": {"model_type": "gemma3_text", "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024, ` + text + `}}`)
	}
	for _, tc := range []struct {
		name, text string
		w          want
	}{
		{"gemma-3-12b-it", `"hidden_size": 3840, "intermediate_size": 15360, "num_attention_heads": 16, "num_hidden_layers": 48, "num_key_value_heads": 8`,
			want{262208, 3840, 48, 16, 8, 256, 15360, 1024, 40, 256}},
		{"gemma-3-27b-it", `"head_dim": 128, "hidden_size": 5376, "intermediate_size": 21504, "num_attention_heads": 32, "num_hidden_layers": 62,
			"num_key_value_heads": 16, "query_pre_attn_scalar": 168`, want{262208, 5376, 62, 32, 16, 128, 21504, 1024, 52, 168}},
	} {
		c, err := ParseConfig(multimodal(tc.text))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		check(tc.name, c, tc.w)
		if q := c.LinearShape(QProj); q[0] != tc.w.heads*tc.w.headDim || q[1] != tc.w.hidden {
			t.Errorf("%s: q_proj %v", tc.name, q)
		}
	}
}

// TestGemma3ConfigErrors: what Gemma 3 configs may set but the model does not implement, and
// malformed multimodal configs, are errors naming the key.
func TestGemma3ConfigErrors(t *testing.T) {
	text := string(readFixture(t, "gemma-3-4b-text.t4.json"))
	multi := string(readFixture(t, "gemma-3-4b-it.multimodal.json"))
	edit := func(base, old, new string) string {
		if !strings.Contains(base, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(base, old, new, 1)
	}
	for _, c := range []struct{ json, want string }{
		{edit(text, `"use_bidirectional_attention": false`, `"use_bidirectional_attention": true`), `"use_bidirectional_attention": true`},
		{edit(text, `"final_logit_softcapping": null`, `"final_logit_softcapping": 30.0`), `"final_logit_softcapping": logit soft-capping`},
		{edit(text, `"attn_logit_softcapping": null`, `"attn_logit_softcapping": 50.0`), `"attn_logit_softcapping"`},
		{edit(text, `"hidden_activation": "gelu_pytorch_tanh"`, `"hidden_activation": "gelu"`), `"hidden_activation": "gelu" is not implemented`},
		{edit(text, `"sliding_window": 1024`, `"sliding_window": 0`), `"sliding_window" must be positive`},
		{edit(text, `"query_pre_attn_scalar": 256`, `"query_pre_attn_scalar": -1`), `"query_pre_attn_scalar" must be positive`},
		{edit(multi, `"model_type": "gemma3_text"`, `"model_type": "siglip_text"`), `"text_config.model_type"`},
		{edit(multi, `"text_config": {`, `"text_config": 3, "x": {`), `"text_config": model_type gemma3`},
		{edit(multi, `"Gemma3ForConditionalGeneration"`, `"Gemma3ForSequenceClassification"`), `only Gemma3ForConditionalGeneration`},
	} {
		_, err := ParseConfig([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want an error containing %q, got %v", c.want, err)
		}
	}
	// A configuration built in code must name what Gemma needs.
	bad := *tinyGemma3()
	bad.LayerTypes = nil
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "layer_types") {
		t.Errorf("want a layer_types error, got %v", err)
	}
	bad = *tinyGemma3()
	bad.HiddenAct = "silu"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "gelu_pytorch_tanh") {
		t.Errorf("want an activation error, got %v", err)
	}
}

// TestGemma3MultimodalCheckpoint: a Gemma3ForConditionalGeneration checkpoint, in the tensor layout
// of transformers before 4.52 (language_model.model.*) and after (model.language_model.*), with
// its vision tower and projector, loads as its text stack with exactly the text weights; a missing
// text tensor is an error naming it and the layouts looked for.
func TestGemma3MultimodalCheckpoint(t *testing.T) {
	backend := testBackend(t)
	cfg := tinyGemma3()
	cfg.DType = "float32"
	lm, err := New(backend, cfg, dtypes.Float32, 12)
	if err != nil {
		t.Fatal(err)
	}
	randomizeNorms(t, lm)
	named, err := lm.ParamTensors()
	if err != nil {
		t.Fatal(err)
	}
	var text map[string]any
	data, _ := cfg.MarshalHF()
	if err := json.Unmarshal(data, &text); err != nil {
		t.Fatal(err)
	}
	outer := map[string]any{"architectures": []string{gemma3Multimodal}, "model_type": "gemma3", "torch_dtype": "float32",
		"eos_token_id": []int{1, 106}, "mm_tokens_per_image": 256, "text_config": text,
		"vision_config": map[string]any{"hidden_size": 8, "model_type": "siglip_vision_model"}}
	delete(text, "torch_dtype")
	delete(text, "eos_token_id")
	vision := func(prefix string) []NamedTensor {
		v, _ := TensorFromFloat64(make([]float64, 6), dtypes.Float32, 2, 3)
		return []NamedTensor{{prefix + "vision_tower.vision_model.embeddings.patch_embedding.weight", v},
			{prefix + "multi_modal_projector.mm_input_projection_weight", v}}
	}
	for _, layout := range []struct{ name, prefix, other string }{
		{"transformers 4.50", "language_model.", ""}, {"transformers 4.52+", "model.language_model.", "model."}} {
		dir := t.TempDir()
		var tensors []NamedTensor
		for _, nt := range named {
			name := layout.prefix + nt.Name
			if layout.prefix == "model.language_model." {
				name = layout.prefix + strings.TrimPrefix(nt.Name, "model.")
			}
			tensors = append(tensors, NamedTensor{name, nt.Tensor})
		}
		tensors = append(tensors, vision(layout.other)...)
		if err := WriteSafetensors(filepath.Join(dir, "model.safetensors"), tensors, nil); err != nil {
			t.Fatal(err)
		}
		js, _ := json.Marshal(outer)
		if err := os.WriteFile(filepath.Join(dir, "config.json"), js, 0o644); err != nil {
			t.Fatal(err)
		}
		back, err := Load(backend, dir, dtypes.Float32)
		if err != nil {
			t.Fatalf("%s: %v", layout.name, err)
		}
		want := *cfg
		want.EOSTokenIDs = []int{1, 106}
		if !back.Config.Equal(&want) {
			t.Errorf("%s: config\n%+v\nwant\n%+v", layout.name, *back.Config, want)
		}
		got, err := back.ParamTensors()
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if got[i].Name != named[i].Name || relErr(toF64(t, got[i].Tensor), toF64(t, named[i].Tensor)) != 0 {
				t.Errorf("%s: %s differs", layout.name, named[i].Name)
			}
		}
		// Saved back, it is a text-only Gemma3ForCausalLM.
		out := t.TempDir()
		if err := back.Save(out, SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		if c, err := LoadConfig(out); err != nil || c.textOf != "" || !c.Equal(&want) {
			t.Errorf("%s: saved config %v %+v", layout.name, err, c)
		}
		// Without one text tensor.
		if err := WriteSafetensors(filepath.Join(dir, "model.safetensors"), tensors[1:], nil); err != nil {
			t.Fatal(err)
		}
		_, err = Load(backend, dir, dtypes.Float32)
		if err == nil || !strings.Contains(err.Error(), named[0].Name) || !strings.Contains(err.Error(), "model.language_model.*") {
			t.Errorf("%s: want an error naming %s and the text layouts, got %v", layout.name, named[0].Name, err)
		}
	}
}

// TestGemma3EmbeddingScale: the embeddings are multiplied by √hidden_size rounded to the embedding
// dtype, as Gemma3TextScaledWordEmbedding does (√2560 = 50.596… is 50.5 in bfloat16).
func TestGemma3EmbeddingScale(t *testing.T) {
	backend := testBackend(t)
	cfg := &Config{Arch: Gemma3, Hidden: 2560}
	for _, tc := range []struct {
		dtype dtypes.DType
		want  float64
	}{{dtypes.BFloat16, 50.5}, {dtypes.Float32, float64(float32(math.Sqrt(2560)))}, {dtypes.Float64, math.Sqrt(2560)}} {
		e := MustNewExec(backend, func(tok *Node) *Node {
			ones := OnesLike(Zeros(tok.Graph(), shapes.Make(tc.dtype, 3, 2560)))
			return ConvertDType(gemma3Embed(cfg, &Weights{Embed: ones}, tok), dtypes.Float64)
		})
		got := toF64(t, e.MustCall([][]int32{{2}})[0])
		if got[0] != tc.want || got[2559] != tc.want {
			t.Errorf("%s: scaled embedding %v, want %v", tc.dtype, got[0], tc.want)
		}
	}
}

// TestFusedGeluApproxGradient pins the GoMLX gap gemma3MLP works around: on the go backend
// (compute v0.1.14) the fused activation.GeluApproximate has the right values but wrong gradients,
// while geluTanh's equal the derivative of x/2·(1 + tanh(√(2/π)(x + 0.044715x³))). When the fused
// gradient becomes right this test fails: then gemma3MLP can use activation.GeluApproximate.
func TestFusedGeluApproxGradient(t *testing.T) {
	backend := testBackend(t)
	xs := []float64{-3, -1.5, -0.7, -0.1, 0, 0.2, 0.9, 1.7, 3.2}
	run := func(f func(*Node) *Node) (y, dy []float64) {
		e := MustNewExec(backend, func(x *Node) []*Node {
			out := f(x)
			return []*Node{out, Gradient(ReduceAllSum(out), x)[0]}
		})
		r := e.MustCall(xs)
		return toF64(t, r[0]), toF64(t, r[1])
	}
	c := math.Sqrt(2 / math.Pi)
	var want, wantDy []float64
	for _, x := range xs {
		u := c * (x + 0.044715*x*x*x)
		th := math.Tanh(u)
		want = append(want, 0.5*x*(1+th))
		wantDy = append(wantDy, 0.5*(1+th)+0.5*x*(1-th*th)*c*(1+3*0.044715*x*x))
	}
	y, dy := run(geluTanh)
	if relErr(y, want) > 1e-14 || relErr(dy, wantDy) > 1e-14 {
		t.Fatalf("geluTanh: %v %v, want %v %v", y, dy, want, wantDy)
	}
	fy, fdy := run(activation.GeluApproximate)
	if relErr(fy, want) > 1e-12 {
		t.Errorf("fused GeluApproximate values %v, want %v", fy, want)
	}
	if relErr(fdy, wantDy) < 1e-6 {
		t.Errorf("GoMLX's fused GeluApproximate gradient is right now (%v): gemma3MLP can use activation.GeluApproximate", fdy)
	}
}

// BenchmarkGemma3Step: a forward+backward step (gradients of every weight) of a Gemma 3 model of
// the mini preset's sizes (d 128, 4 blocks: three sliding-window layers of window 32, one global)
// against the mini Llama, in interleaved rounds (one machine load for both), batch 8 × 128 tokens.
// It reports each one's median s/step and their ratio: what the Gemma block costs over Llama's.
//
//	GOEXPERIMENT=simd go test ./model -run '^$' -bench Gemma3Step -benchtime 1x
func BenchmarkGemma3Step(b *testing.B) {
	backend := testBackend(b)
	llama, _ := Preset("mini", 259, 257, 258, 256)
	gemma := *llama
	gemma.Arch, gemma.HiddenAct, gemma.QueryPreAttnScalar, gemma.TieEmbeddings = Gemma3, "gelu_pytorch_tanh", float64(llama.HeadDim), true
	gemma.RoPELocalTheta, gemma.SlidingWindow = 1e4, 32
	gemma.LayerTypes = []string{SlidingAttention, SlidingAttention, SlidingAttention, FullAttention}
	const B, T, rounds = 8, 128, 11
	tokens := tensors.FromValue(testTokens(B, T, llama.VocabSize))
	steps := map[string]func(){}
	for name, cfg := range map[string]*Config{"llama": llama, "gemma3": &gemma} {
		lm, err := New(backend, cfg, dtypes.Float32, 1)
		if err != nil {
			b.Fatal(err)
		}
		exec := gm.MustNewExec(backend, lm.Store, func(scope *gm.Scope, tok *Node) []*Node {
			out := Forward(cfg, lm.Weights(tok.Graph()), tok, ForwardOptions{})
			loss := ReduceAllMean(TokenNLL(out.Logits, ConvertDType(ShiftLeft(tok, 1, 0), dtypes.Int32)))
			return append([]*Node{loss}, scope.BuildTrainableVariablesGradientsGraph(loss)...)
		})
		steps[name] = func() {
			for _, o := range exec.MustCall(tokens) {
				o.FinalizeAll()
			}
		}
		steps[name]() // compile and warm up
	}
	for range b.N {
		times := map[string][]float64{}
		for range rounds {
			for _, name := range []string{"llama", "gemma3"} {
				t0 := time.Now()
				steps[name]()
				times[name] = append(times[name], time.Since(t0).Seconds())
			}
		}
		med := func(v []float64) float64 { sort.Float64s(v); return v[len(v)/2] }
		l, g := med(times["llama"]), med(times["gemma3"])
		b.ReportMetric(l, "llama-s/step")
		b.ReportMetric(g, "gemma3-s/step")
		b.ReportMetric(g/l, "gemma3/llama")
	}
}
