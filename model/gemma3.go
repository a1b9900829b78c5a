package model

import (
	"math"

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
// with the local RoPE base (rope_local_base_freq, unscaled), full_attention layers see every earlier
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
