package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "configs", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestParseConfigBothForms: every fixture parses to the published architecture, and the
// transformers-4 and transformers-5 files of the same model give the same Config.
func TestParseConfigBothForms(t *testing.T) {
	llama3 := RoPEScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}
	want := map[string]Config{
		"llama-3.2-1b": {Arch: Llama, VocabSize: 128256, Hidden: 2048, Layers: 16, Heads: 32, KVHeads: 8, HeadDim: 64,
			Intermediate: 8192, RMSNormEps: 1e-5, RoPETheta: 500000, RoPEScaling: llama3, TieEmbeddings: true,
			MaxPositions: 131072, BOSTokenID: 128000, EOSTokenIDs: []int{128001, 128008, 128009}, PadTokenID: -1, DType: "bfloat16"},
		"qwen3-0.6b": {Arch: Qwen3, VocabSize: 151936, Hidden: 1024, Layers: 28, Heads: 16, KVHeads: 8, HeadDim: 128, // ≠ 1024/16
			Intermediate: 3072, RMSNormEps: 1e-6, RoPETheta: 1e6, TieEmbeddings: true, MaxPositions: 40960,
			BOSTokenID: 151643, EOSTokenIDs: []int{151645}, PadTokenID: -1, DType: "bfloat16"},
		"qwen2.5-0.5b": {Arch: Qwen2, VocabSize: 151936, Hidden: 896, Layers: 24, Heads: 14, KVHeads: 2, HeadDim: 64,
			Intermediate: 4864, RMSNormEps: 1e-6, RoPETheta: 1e6, TieEmbeddings: true, MaxPositions: 32768,
			BOSTokenID: 151643, EOSTokenIDs: []int{151643}, PadTokenID: -1, DType: "bfloat16"},
	}
	for name, w := range want {
		for _, form := range []string{"t4", "t5"} {
			c, err := ParseConfig(readFixture(t, name+"."+form+".json"))
			if err != nil {
				t.Fatalf("%s.%s: %v", name, form, err)
			}
			layerTypes := c.LayerTypes
			c.LayerTypes = nil // transformers 5 writes all-full layer_types for Llama/Qwen; checked below
			if !c.Equal(&w) || c.DType != w.DType {
				t.Errorf("%s.%s:\n got %+v\nwant %+v", name, form, *c, w)
			}
			if layerTypes != nil && (len(layerTypes) != c.Layers || slices.ContainsFunc(layerTypes, func(s string) bool { return s != FullAttention })) {
				t.Errorf("%s.%s: layer_types %v", name, form, layerTypes)
			}
		}
	}
}

// TestParseGemma3Config: both forms of Gemma 3 text configs fill the Gemma fields (local RoPE base,
// sliding window, layer kinds, query_pre_attn_scalar) and validate.
func TestParseGemma3Config(t *testing.T) {
	var parsed []*Config
	for _, name := range []string{"gemma-3-4b-text.t4.json", "gemma-3-4b-text.t5.json"} {
		c, err := decodeConfig(readFixture(t, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.Arch != Gemma3 || c.Hidden != 2560 || c.Layers != 34 || c.HeadDim != 256 || c.KVHeads != 4 ||
			c.QueryPreAttnScalar != 256 || c.SlidingWindow != 1024 || c.RoPETheta != 1e6 || c.RoPELocalTheta != 1e4 ||
			c.RoPEScaling != (RoPEScaling{Type: "linear", Factor: 8}) || c.RoPELocalScaling != (RoPEScaling{}) ||
			!c.TieEmbeddings || c.HiddenAct != "gelu_pytorch_tanh" || c.DType != "bfloat16" {
			t.Errorf("%s: %+v", name, *c)
		}
		if c.LayerTypes[5] != FullAttention || c.LayerTypes[0] != SlidingAttention || c.LayerTypes[33] != SlidingAttention {
			t.Errorf("%s: layer_types %v", name, c.LayerTypes)
		}
		parsed = append(parsed, c)
		v, err := ParseConfig(readFixture(t, name))
		if err != nil || !v.Equal(c) {
			t.Errorf("%s: ParseConfig: %v", name, err)
		}
	}
	if !parsed[0].Equal(parsed[1]) {
		t.Errorf("gemma t4 and t5 differ:\n%+v\n%+v", *parsed[0], *parsed[1])
	}
	// The 4.50 form: no layer_types, every 6th layer global by sliding_window_pattern.
	c, err := decodeConfig(readFixture(t, "gemma-3-1b.t4.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.LayerTypes) != 26 || c.LayerTypes[5] != FullAttention || c.LayerTypes[23] != FullAttention || c.LayerTypes[24] != SlidingAttention ||
		c.SlidingWindow != 512 || c.RoPELocalTheta != 1e4 || c.RoPEScaling.Type != "" || c.HeadDim != 256 {
		t.Errorf("gemma-3-1b: %+v", *c)
	}
}

// TestParseConfigErrors: a known key with a value the model does not implement, or of the wrong
// type, is an error naming the key; LoadConfig adds the file.
func TestParseConfigErrors(t *testing.T) {
	base := string(readFixture(t, "qwen3-0.6b.t4.json"))
	edit := func(old, new string) string {
		if !strings.Contains(base, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(base, old, new, 1)
	}
	cases := []struct{ json, want string }{
		{edit(`"rope_scaling": null`, `"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}`), `"rope_scaling.rope_type": RoPE type "yarn" is not implemented`},
		{edit(`"rope_scaling": null`, `"rope_scaling": {"type": "longrope", "factor": 4.0}`), `"rope_scaling.type": RoPE type "longrope"`},
		{edit(`"rope_scaling": null`, `"rope_parameters": {"rope_theta": 1000000, "rope_type": "su"}`), `"rope_parameters.rope_type"`},
		{edit(`"rope_scaling": null`, `"rope_parameters": {"rope_theta": 10000, "rope_type": "default"}`), `"rope_theta" (1e+06) and "rope_parameters" rope_theta (10000) disagree`},
		{edit(`"rope_scaling": null`, `"rope_scaling": {"rope_type": "linear"}`), `linear needs factor > 0`},
		{edit(`"rope_scaling": null`, `"rope_scaling": 3`), `"rope_scaling": expected an object`},
		{edit(`"hidden_act": "silu"`, `"hidden_act": "gelu"`), `"hidden_act": "gelu" is not implemented`},
		{edit(`"use_sliding_window": false`, `"use_sliding_window": true`), `"use_sliding_window": true is not implemented`},
		{edit(`"torch_dtype": "bfloat16"`, `"torch_dtype": "int8"`), `"torch_dtype": "int8" is not supported`},
		{edit(`"torch_dtype": "bfloat16"`, `"torch_dtype": "bfloat16", "dtype": "float32"`), `"dtype" ("float32") and "torch_dtype" ("bfloat16") disagree`},
		{edit(`"hidden_size": 1024`, `"hidden_size": "1024"`), `"hidden_size": expected a number, got a JSON string`},
		{edit(`"hidden_size": 1024`, `"hidden_size": 1024.5`), `"hidden_size": expected an integer`},
		{edit(`"num_hidden_layers": 28`, `"num_hidden_layers": 0`), `"num_hidden_layers" must be a positive integer`},
		{edit(`"max_window_layers": 28`, `"layer_types": ["full_attention"]`), `"layer_types" has 1 entries, num_hidden_layers is 28`},
		{edit(`"eos_token_id": 151645`, `"eos_token_id": "x"`), `"eos_token_id": expected an integer or a list`},
		{edit(`"model_type": "qwen3"`, `"model_type": "mistral"`), `"model_type": "mistral" is unsupported`},
		{edit(`"model_type": "qwen3"`, `"model_type": "gemma3"`), `only Gemma3ForConditionalGeneration is supported for model_type gemma3`},
		{edit(`"Qwen3ForCausalLM"`, `"Qwen3ForSequenceClassification"`), `"architectures"`},
		{edit(`"attention_bias": false`, `"attention_bias": false, "mlp_bias": true`), `"mlp_bias": true is not implemented`},
		{edit(`"attention_bias": false`, `"attention_bias": false, "partial_rotary_factor": 0.5`), `"partial_rotary_factor"`},
		{`[1, 2]`, "not a JSON object"},
		{`null`, "not a JSON object"},
	}
	for _, c := range cases {
		_, err := ParseConfig([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want error containing %q, got %v", c.want, err)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cases[0].json), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "config.json")) || !strings.Contains(err.Error(), "rope_scaling.rope_type") {
		t.Errorf("LoadConfig: want an error naming the file and the key, got %v", err)
	}
}

// TestDynamicRoPE: transformers' dynamic NTK base, θ·(f·L/L₀ − (f−1))^(d/(d−2)) with
// L = max(seq_len, L₀), equals θ for every accepted sequence (L ≤ L₀ = max_position_embeddings),
// so the frequencies are the default ones; the config round-trips through MarshalHF.
func TestDynamicRoPE(t *testing.T) {
	base := string(readFixture(t, "llama-3.2-1b.t4.json"))
	i, j := strings.Index(base, `"rope_scaling"`), strings.Index(base, `"rope_theta"`)
	c, err := ParseConfig([]byte(base[:i] + `"rope_scaling": {"type": "dynamic", "factor": 2.0},` + "\n  " + base[j:]))
	if err != nil {
		t.Fatal(err)
	}
	if c.RoPEScaling != (RoPEScaling{Type: "dynamic", Factor: 2}) {
		t.Fatalf("scaling %+v", c.RoPEScaling)
	}
	d := float64(c.HeadDim)
	for _, seqLen := range []int{1, 100, c.MaxPositions} {
		L := float64(max(seqLen, c.MaxPositions))
		theta := c.RoPETheta * math.Pow(c.RoPEScaling.Factor*L/float64(c.MaxPositions)-(c.RoPEScaling.Factor-1), d/(d-2))
		want := InvFrequencies(c.HeadDim, theta, RoPEScaling{})
		got := c.InvFrequencies()
		for k := range want {
			if math.Abs(got[k]-want[k]) > 1e-15*want[k] {
				t.Fatalf("seq_len %d: inv_freq[%d] = %g, want %g", seqLen, k, got[k], want[k])
			}
		}
	}
	data, err := c.MarshalHF()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseConfig(data)
	if err != nil || !back.Equal(c) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, back, c)
	}
	// An original context shorter than max_position_embeddings would rescale inside it: refused.
	_, err = ParseConfig([]byte(base[:i] + `"rope_scaling": {"rope_type": "dynamic", "factor": 2.0, "original_max_position_embeddings": 4096},` + "\n  " + base[j:]))
	if err == nil || !strings.Contains(err.Error(), "rope_scaling.original_max_position_embeddings") {
		t.Fatalf("want a dynamic original-length error, got %v", err)
	}
}

// TestMarshalHFRoundTrip: configs written here read back identically, in both forms; the
// transformers-5 form written from a transformers-4 file has the rope_parameters and dtype
// transformers 5 itself wrote for the same model (Llama 3.2: flat; Gemma 3: one set per kind).
func TestMarshalHFRoundTrip(t *testing.T) {
	for _, name := range []string{"llama-3.2-1b.t5.json", "qwen3-0.6b.t5.json", "qwen2.5-0.5b.t4.json",
		"gemma-3-4b-text.t4.json", "gemma-3-4b-text.t5.json", "gemma-3-1b.t4.json"} {
		c, err := ParseConfig(readFixture(t, name))
		if err != nil {
			t.Fatal(err)
		}
		if c.Arch != Gemma3 {
			c.LayerTypes = nil
		}
		for form, marshal := range map[string]func() ([]byte, error){"t4": c.MarshalHF, "t5": c.MarshalHF5} {
			data, err := marshal()
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseConfig(data)
			if err != nil || !back.Equal(c) || back.DType != c.DType {
				t.Errorf("%s as %s: %v\n%+v\n%+v", name, form, err, back, c)
			}
		}
	}
	for _, model := range []string{"llama-3.2-1b", "gemma-3-4b-text"} {
		c, err := ParseConfig(readFixture(t, model+".t4.json"))
		if err != nil {
			t.Fatal(err)
		}
		data, err := c.MarshalHF5()
		if err != nil {
			t.Fatal(err)
		}
		var ours, theirs map[string]any
		if err := json.Unmarshal(data, &ours); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(readFixture(t, model+".t5.json"), &theirs); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"rope_parameters", "dtype", "layer_types", "rope_theta", "rope_scaling", "torch_dtype", "rope_local_base_freq"} {
			if !reflect.DeepEqual(ours[key], theirs[key]) {
				t.Errorf("%s: transformers-5 %q written here %v, by transformers %v", model, key, ours[key], theirs[key])
			}
		}
	}
}
