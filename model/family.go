package model

import (
	. "github.com/gomlx/gomlx/core/graph"
)

// A family is what one architecture brings to the shared decoder. Everything else is common to all
// of them: the linear layers and their taps, RoPE, grouped-query attention with its visibility masks
// (causal, sliding window), the diagonal-gradient copy, the key/value cache and sampling
// (transformer.go, attention.go, decode.go). A new family is one small file with its embedding,
// block and norm (gemma3.go) plus a row in families; its parameters are named after the HF
// checkpoint (Config.ParamSpecs), so checkpoints map by rule.
//
//	family   class               embed    block                                  norm            q/k norm
//	llama    LlamaForCausalLM    x_t      x + attn(n(x)); x + swiglu(n(x))       x/rms(x)·w      –
//	qwen2    Qwen2ForCausalLM    x_t      as llama, with q/k/v biases            x/rms(x)·w      –
//	qwen3    Qwen3ForCausalLM    x_t      as llama                               x/rms(x)·w      yes
//	gemma3   Gemma3ForCausalLM   √d·x_t   x + n(attn(n(x))); x + n(geglu(n(x)))  x/rms(x)·(1+w)  yes
type family struct {
	class string // the HF "architectures" entry of config.json
	// embed maps token ids [b, t] to the residual stream [b, t, d].
	embed func(cfg *Config, w *Weights, tokens *Node) *Node
	// block is one decoder block: the residual stream [b, t, d] in and out. It calls the shared
	// attention core with ctx (the block's attention kind, see attnContext.layer), diagonal, taps
	// and cache as it gets them, and records its MLP's linear layers in taps.
	block func(cfg *Config, w *BlockWeights, x *Node, ctx *attnContext, diagonal bool, taps *BlockTaps, cache *kvCache) *Node
	// norm is the family's RMSNorm over the last axis, used everywhere (blocks, q/k, final).
	norm func(x, weight *Node, eps float64) *Node
	// normOne is the norm weight that scales by one, the initial value of every norm weight.
	normOne float64
	// qkNorm: q and k get a per-head norm (self_attn.q_norm, self_attn.k_norm) before RoPE.
	qkNorm bool
	// ffnNorms: blocks also have pre_feedforward_layernorm and post_feedforward_layernorm (and
	// post_attention_layernorm normalises the attention output rather than the MLP input).
	ffnNorms bool
}

// families lists the supported architectures (filled in init: the blocks refer back to it).
var families map[Arch]*family

func init() {
	families = map[Arch]*family{
		Llama:  {class: "LlamaForCausalLM", embed: embedTokens, block: preNormBlock, norm: rmsNorm, normOne: 1},
		Qwen2:  {class: "Qwen2ForCausalLM", embed: embedTokens, block: preNormBlock, norm: rmsNorm, normOne: 1},
		Qwen3:  {class: "Qwen3ForCausalLM", embed: embedTokens, block: preNormBlock, norm: rmsNorm, normOne: 1, qkNorm: true},
		Gemma3: {class: "Gemma3ForCausalLM", embed: gemma3Embed, block: gemma3Block, norm: gemmaRMSNorm, normOne: 0, qkNorm: true, ffnNorms: true},
	}
}

// family returns the configuration's architecture (Validate checks that it is one of families).
func (c *Config) family() *family {
	f, ok := families[c.Arch]
	if !ok {
		panic("model: no family for architecture " + string(c.Arch))
	}
	return f
}

// embedTokens looks the tokens [b, t] up in the embedding table: [b, t, d].
func embedTokens(_ *Config, w *Weights, tokens *Node) *Node {
	b, t := tokens.Shape().Dimensions[0], tokens.Shape().Dimensions[1]
	return Gather(w.Embed, Reshape(tokens, b, t, 1))
}
