package model

import (
	"encoding/json"
	"math"
	"slices"
	"strings"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/pkg/errors"
)

// Gemma 3 text models (Gemma3ForCausalLM: the 1B model, and the text stack of the 4B/12B/27B
// ones), as transformers' modeling_gemma3.py computes them. Names follow the checkpoint:
//
//	x ← √d · embed_tokens[x_t]                          (√d rounded to the embedding dtype)
//	x ← x + post_attention_layernorm(attn(input_layernorm(x)))
//	x ← x + post_feedforward_layernorm(down(gelu_tanh(gate(a)) ⊙ up(a))),  a = pre_feedforward_layernorm(x)
//	logits = norm(x) · embed_tokensᵀ                    (tied head by default)
//
// Every norm, q_norm and k_norm included, is Gemma's RMSNorm x/rms(x)·(1+w), computed in float32
// (or float64) and cast back; its weights are zero at initialisation. Attention is the shared core
// with q/k norms, scores scaled by query_pre_attn_scalar^−½ (Config.AttnScale), and per layer kind:
// sliding_attention layers see the last sliding_window positions (themselves included) and rotate
// with the local RoPE base (rope_local_base_freq, unscaled in Gemma 3), full_attention layers see every earlier
// position and use rope_theta with its scaling (attnContext.layer). Logit soft-capping
// (attn_logit_softcapping, final_logit_softcapping) is Gemma 2's; Gemma 3 checkpoints set neither,
// and a config that sets one is refused (hfconfig.go).

// gemma3Embed is Gemma3TextScaledWordEmbedding: the embedding rows times √hidden_size, the
// normaliser cast to the embedding dtype first (√2560 = 50.596… is 50.5 in bfloat16).
func gemma3Embed(cfg *Config, w *Weights, tokens *Node) *Node {
	x := embedTokens(cfg, w, tokens)
	return MulScalar(x, math.Sqrt(float64(cfg.Hidden))) // the scalar becomes a constant of x's dtype
}

// gemma3Block is Gemma3DecoderLayer: norms before and after both attention and MLP ("sandwich").
func gemma3Block(cfg *Config, w *BlockWeights, x *Node, ctx *attnContext, diagonal bool, taps *BlockTaps, cache *kvCache) *Node {
	eps := cfg.RMSNormEps
	attn := attention(cfg, w, gemmaRMSNorm(x, w.InputNorm, eps), ctx, diagonal, taps, cache)
	x = Add(x, gemmaRMSNorm(attn, w.PostAttnNorm, eps))
	ffn := gemma3MLP(w, gemmaRMSNorm(x, w.PreFFNNorm, eps), taps)
	return Add(x, gemmaRMSNorm(ffn, w.PostFFNNorm, eps))
}

// gemma3MLP is Gemma3MLP with hidden_activation gelu_pytorch_tanh: down(geluTanh(gate(a)) ⊙ up(a)).
func gemma3MLP(w *BlockWeights, a *Node, taps *BlockTaps) *Node {
	gate := tappedLinear(a, w.Linear[GateProj], nil, taps, GateProj)
	up := tappedLinear(a, w.Linear[UpProj], nil, taps, UpProj)
	return tappedLinear(Mul(geluTanh(gate), up), w.Linear[DownProj], nil, taps, DownProj)
}

// geluTanh is PyTorch's gelu(approximate="tanh"): x/2·(1 + tanh(√(2/π)(x + 0.044715x³))). It is
// written out in graph ops rather than GoMLX's activation.GeluApproximate, whose fused backward on
// the go backend (compute v0.1.14) returns wrong gradients (TestFusedGeluApproxGradient).
func geluTanh(x *Node) *Node {
	inner := MulScalar(Add(x, MulScalar(Mul(Square(x), x), 0.044715)), math.Sqrt(2/math.Pi))
	return Mul(MulScalar(x, 0.5), OnePlus(Tanh(inner)))
}

// gemmaRMSNorm is Gemma3RMSNorm: x/sqrt(mean(x²) + eps) ⊙ (1 + weight) over the last axis, computed
// in float32 for half-precision inputs (weight included, as HF's (x·(1+w)).to(dtype)) and cast back.
// (Div/Sqrt rather than Rsqrt: GoMLX has no Rsqrt gradient.)
func gemmaRMSNorm(x, weight *Node, eps float64) *Node {
	dtype := x.DType()
	if dtype == dtypes.BFloat16 || dtype == dtypes.Float16 {
		x = ConvertDType(x, dtypes.Float32)
	}
	if weight.DType() != x.DType() {
		weight = ConvertDType(weight, x.DType())
	}
	ms := ReduceAndKeep(Square(x), ReduceMean, -1)
	y := Mul(Div(x, Sqrt(AddScalar(ms, eps))), ExpandLeftToRank(OnePlus(weight), x.Rank()))
	if y.DType() != dtype {
		y = ConvertDType(y, dtype)
	}
	return y
}

// gemma3Keys adds Gemma 3's own keys to a config.json being written (transformers-4 form; see
// MarshalHF5 for the other).
func (c *Config) gemma3Keys(m map[string]any) {
	delete(m, "hidden_act")
	m["hidden_activation"] = c.HiddenAct
	m["query_pre_attn_scalar"] = c.QueryPreAttnScalar
	m["sliding_window"] = c.SlidingWindow
	m["layer_types"] = c.LayerTypes
	m["rope_local_base_freq"] = c.RoPELocalTheta
	if c.RoPELocalScaling.Type != "" && c.RoPELocalScaling.Type != "default" {
		m["rope_local_scaling"] = c.RoPELocalScaling // only in the transformers-5 form (rope5)
	}
	m["attention_bias"] = c.AttentionBias
	m["attn_logit_softcapping"] = nil
	m["final_logit_softcapping"] = nil
	m["use_bidirectional_attention"] = false
}

// validateGemma3 checks what a Gemma 3 configuration adds to the common fields.
func (c *Config) validateGemma3() error {
	if c.HiddenAct != "gelu_pytorch_tanh" {
		return errors.Errorf("model: gemma3_text needs hidden_activation gelu_pytorch_tanh, got %q", c.HiddenAct)
	}
	if !(c.QueryPreAttnScalar > 0) {
		return errors.Errorf("model: gemma3_text needs query_pre_attn_scalar > 0, got %g", c.QueryPreAttnScalar)
	}
	if len(c.LayerTypes) != c.Layers {
		return errors.Errorf("model: gemma3_text needs layer_types for its %d layers, got %d entries", c.Layers, len(c.LayerTypes))
	}
	for i, lt := range c.LayerTypes {
		if lt != FullAttention && lt != SlidingAttention {
			return errors.Errorf("model: layer_types[%d] is %q (full_attention or sliding_attention)", i, lt)
		}
	}
	if c.HasSlidingLayers() && c.SlidingWindow <= 0 {
		return errors.Errorf("model: sliding_window must be positive with sliding_attention layers, got %d", c.SlidingWindow)
	}
	if !(c.RoPELocalTheta > 0) {
		return errors.Errorf("model: rope_local_base_freq must be positive, got %g", c.RoPELocalTheta)
	}
	return errors.WithMessage(c.RoPELocalScaling.validate(), "sliding_attention RoPE")
}

// The multimodal Gemma 3 checkpoints (google/gemma-3-4b-it and the other 4B/12B/27B ones) are
// Gemma3ForConditionalGeneration: config.json has model_type "gemma3" with the text stack's
// config under text_config (only the keys that differ from Gemma3TextConfig's defaults), and the
// text weights sit under a prefix next to the vision tower's and the projector's. Load reads the
// text stack and leaves the rest: the model here is the causal LM of text.
const gemma3Multimodal = "Gemma3ForConditionalGeneration"

// TextStackOf names the multimodal architecture whose text stack the model is, when config.json
// was that architecture's (Gemma3ForConditionalGeneration); "" for a causal LM's own config.
func (c *Config) TextStackOf() string { return c.textOf }

// gemma3TextDefaults are Gemma3TextConfig's defaults (transformers' configuration_gemma3.py) for
// the keys a config.json may leave out, as JSON.
var gemma3TextDefaults = map[string]string{
	"vocab_size": "262208", "hidden_size": "2304", "intermediate_size": "9216", "num_hidden_layers": "26",
	"num_attention_heads": "8", "num_key_value_heads": "4", "head_dim": "256",
	"hidden_activation": `"gelu_pytorch_tanh"`, "max_position_embeddings": "131072", "rms_norm_eps": "1e-6",
	"pad_token_id": "0", "eos_token_id": "1", "bos_token_id": "2", "tie_word_embeddings": "true",
	"attention_bias": "false", "query_pre_attn_scalar": "256", "sliding_window": "4096", "sliding_window_pattern": "6",
	// transformers 4 only; transformers 5 spells them rope_parameters
	"rope_theta": "1000000", "rope_local_base_freq": "10000",
}

// withGemma3Defaults fills in the Gemma3TextConfig defaults of keys h does not have.
func withGemma3Defaults(h hfConfig) {
	for k, v := range gemma3TextDefaults {
		if (k == "rope_theta" || k == "rope_local_base_freq") && h.present("rope_parameters") {
			continue
		}
		if _, ok := h[k]; !ok {
			h[k] = json.RawMessage(v)
		}
	}
}

// gemma3TextConfig returns the text_config of a Gemma3ForConditionalGeneration config.json, with
// the outer dtype and special token ids where text_config has none of its own.
func gemma3TextConfig(outer hfConfig) (hfConfig, error) {
	if outer.present("architectures") {
		var archs []string
		if err := outer.decode("architectures", &archs); err != nil {
			return nil, err
		}
		if len(archs) > 0 && !slices.Contains(archs, gemma3Multimodal) {
			return nil, errors.Errorf("model: config key \"architectures\": %v: only %s is supported for model_type gemma3", archs, gemma3Multimodal)
		}
	}
	var text hfConfig
	if err := json.Unmarshal(outer["text_config"], &text); err != nil || text == nil {
		return nil, errors.Errorf("model: config key \"text_config\": model_type gemma3 (%s) needs its text model's config as an object, got %s",
			gemma3Multimodal, truncate(string(outer["text_config"]), 40))
	}
	if mt, err := text.string("model_type", string(Gemma3)); err != nil || mt != string(Gemma3) {
		return nil, errors.Errorf("model: config key \"text_config.model_type\": want %q, got %s", Gemma3, truncate(string(text["model_type"]), 40))
	}
	for _, k := range []string{"dtype", "torch_dtype", "bos_token_id", "eos_token_id", "pad_token_id"} {
		if _, ok := text[k]; !ok && outer.present(k) {
			text[k] = outer[k]
		}
	}
	delete(text, "architectures")
	text["model_type"] = json.RawMessage(`"` + string(Gemma3) + `"`)
	return text, nil
}

// gemma3TextTensor maps a tensor name of a Gemma3ForConditionalGeneration checkpoint to the
// Gemma3ForCausalLM name of the text stack: "language_model.model.X" (transformers < 4.52) and
// "model.language_model.X" (4.52 and later) become "model.X", "language_model.lm_head.weight"
// becomes "lm_head.weight". ok is false for the vision tower's and the projector's tensors.
func gemma3TextTensor(name string) (string, bool) {
	for _, p := range [][2]string{{"language_model.model.", "model."}, {"model.language_model.", "model."},
		{"language_model.lm_head.", "lm_head."}, {"lm_head.", "lm_head."}} {
		if rest, ok := strings.CutPrefix(name, p[0]); ok {
			return p[1] + rest, true
		}
	}
	return "", false
}
