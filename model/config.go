package model

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/pkg/errors"
)

// Arch names a supported architecture, spelled as Hugging Face's config "model_type".
type Arch string

const (
	Llama Arch = "llama" // LlamaForCausalLM: RMSNorm, RoPE, GQA, SwiGLU; optional attention_bias.
	Qwen2 Arch = "qwen2" // Qwen2ForCausalLM: as Llama with q/k/v biases.
	Qwen3 Arch = "qwen3" // Qwen3ForCausalLM: as Llama with per-head RMSNorm of q and k (q_norm, k_norm).
	// Gemma3 is Gemma3ForCausalLM, the text stack of Gemma 3 (gemma3.go): scaled embeddings, Gemma
	// RMSNorm before and after attention and MLP, q/k norms, GELU-tanh MLP, sliding-window layers.
	Gemma3 Arch = "gemma3_text"
)

// supportedArchs lists the model_types for error messages.
const supportedArchs = "llama, qwen2, qwen3, gemma3_text"

// Attention kinds of layer_types.
const (
	FullAttention    = "full_attention"
	SlidingAttention = "sliding_attention"
)

// RoPEScaling is HF's "rope_scaling" block (transformers 4) or the scaling part of
// "rope_parameters" (transformers 5). Type "" means no scaling.
type RoPEScaling struct {
	// Type is "", "default", "linear", "llama3" or "dynamic". ("dynamic" NTK scaling changes the
	// frequencies only for sequences longer than max_position_embeddings, which are refused, so it
	// computes exactly as "default" here; "yarn" and "longrope" are refused by ParseConfig.)
	Type string `json:"rope_type"`
	// Factor divides the positions ("linear") or the low frequencies ("llama3").
	Factor float64 `json:"factor,omitempty"`
	// LowFreqFactor, HighFreqFactor and OriginalMaxPositions parametrise "llama3" scaling.
	LowFreqFactor        float64 `json:"low_freq_factor,omitempty"`
	HighFreqFactor       float64 `json:"high_freq_factor,omitempty"`
	OriginalMaxPositions int     `json:"original_max_position_embeddings,omitempty"`
}

// Config is the architecture of a decoder-only transformer of the Llama family, as read from (and
// written to) a Hugging Face config.json. Field comments give the HF key.
type Config struct {
	Arch          Arch        // model_type
	VocabSize     int         // vocab_size
	Hidden        int         // hidden_size (d)
	Layers        int         // num_hidden_layers
	Heads         int         // num_attention_heads (query heads)
	KVHeads       int         // num_key_value_heads (grouped-query attention; = Heads for MHA)
	HeadDim       int         // head_dim (default Hidden/Heads)
	Intermediate  int         // intermediate_size of the SwiGLU MLP
	RMSNormEps    float64     // rms_norm_eps
	RoPETheta     float64     // rope_theta (default 10000)
	RoPEScaling   RoPEScaling // rope_scaling
	TieEmbeddings bool        // tie_word_embeddings: the LM head reuses model.embed_tokens.weight
	AttentionBias bool        // biases on q/k/v (qwen2 always; llama: attention_bias, which also adds o_proj.bias)
	MaxPositions  int         // max_position_embeddings: sequences longer than this are refused
	BOSTokenID    int         // bos_token_id (-1 if none)
	EOSTokenIDs   []int       // eos_token_id (int or list in HF)
	PadTokenID    int         // pad_token_id (-1 if none)
	DType         string      // torch_dtype (transformers 4) or dtype (5): "float32", "bfloat16", "float16", "float64"
	HiddenAct     string      // hidden_act (Llama, Qwen: "silu") or hidden_activation (Gemma: "gelu_pytorch_tanh")

	// LayerTypes is layer_types: the attention kind of each block, FullAttention or
	// SlidingAttention (nil: all full). Llama and Qwen accept only full attention.
	LayerTypes []string
	// SlidingWindow is sliding_window: the number of keys a sliding_attention layer sees (0: none).
	SlidingWindow int
	// RoPELocalTheta and RoPELocalScaling are the RoPE base and scaling of sliding_attention layers
	// (Gemma 3: rope_local_base_freq, or rope_parameters.sliding_attention in transformers 5);
	// full_attention layers use RoPETheta and RoPEScaling.
	RoPELocalTheta   float64
	RoPELocalScaling RoPEScaling
	// QueryPreAttnScalar is Gemma's query_pre_attn_scalar: attention scores are scaled by its
	// inverse square root instead of head_dim's (0: not set).
	QueryPreAttnScalar float64

	// textOf names the multimodal architecture whose text stack this is, when config.json was a
	// Gemma3ForConditionalGeneration's (its weights are then read under their language-model
	// prefix, see gemma3TextTensor); "" for a causal LM's own config. Saving writes a text-only
	// Gemma3ForCausalLM checkpoint.
	textOf string
}

// Validate checks the internal consistency of the configuration.
func (c *Config) Validate() error {
	if _, ok := families[c.Arch]; !ok {
		return errors.Errorf("model: unsupported architecture %q (supported: %s)", c.Arch, supportedArchs)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"vocab_size", c.VocabSize}, {"hidden_size", c.Hidden}, {"num_hidden_layers", c.Layers},
		{"num_attention_heads", c.Heads}, {"num_key_value_heads", c.KVHeads}, {"head_dim", c.HeadDim},
		{"intermediate_size", c.Intermediate}, {"max_position_embeddings", c.MaxPositions}} {
		if f.v <= 0 {
			return errors.Errorf("model: config %s must be positive, got %d", f.name, f.v)
		}
	}
	if c.Heads%c.KVHeads != 0 {
		return errors.Errorf("model: num_attention_heads (%d) must be a multiple of num_key_value_heads (%d)", c.Heads, c.KVHeads)
	}
	if c.HeadDim%2 != 0 {
		return errors.Errorf("model: head_dim must be even for RoPE, got %d", c.HeadDim)
	}
	if c.RMSNormEps <= 0 || c.RoPETheta <= 0 {
		return errors.Errorf("model: rms_norm_eps (%g) and rope_theta (%g) must be positive", c.RMSNormEps, c.RoPETheta)
	}
	if err := c.RoPEScaling.validate(); err != nil {
		return err
	}
	switch c.DType {
	case "float32", "bfloat16", "float64", "float16":
	default:
		return errors.Errorf("model: unsupported torch_dtype %q", c.DType)
	}
	if len(c.LayerTypes) != 0 && len(c.LayerTypes) != c.Layers {
		return errors.Errorf("model: layer_types has %d entries for %d layers", len(c.LayerTypes), c.Layers)
	}
	if c.Arch == Gemma3 {
		return c.validateGemma3()
	}
	if c.HiddenAct != "" && c.HiddenAct != "silu" {
		return errors.Errorf("model: hidden_act %q unsupported for %s (only silu/SwiGLU)", c.HiddenAct, c.Arch)
	}
	for i, lt := range c.LayerTypes {
		if lt != FullAttention {
			return errors.Errorf("model: layer_types[%d] is %q: %s supports only full_attention", i, lt, c.Arch)
		}
	}
	if c.QueryPreAttnScalar != 0 || c.SlidingWindow != 0 {
		return errors.Errorf("model: query_pre_attn_scalar and sliding_window are Gemma's, not %s's", c.Arch)
	}
	return nil
}

// HasSlidingLayers reports whether some block is a sliding_attention layer.
func (c *Config) HasSlidingLayers() bool { return slices.Contains(c.LayerTypes, SlidingAttention) }

// AttnScale is the factor of the attention scores q·k: query_pre_attn_scalar^−½ where set (Gemma),
// else head_dim^−½.
func (c *Config) AttnScale() float64 {
	if c.QueryPreAttnScalar > 0 {
		return 1 / math.Sqrt(c.QueryPreAttnScalar)
	}
	return 1 / math.Sqrt(float64(c.HeadDim))
}

// validate checks the parameters a scaling type needs.
func (s RoPEScaling) validate() error {
	switch s.Type {
	case "", "default":
	case "linear", "dynamic":
		if !(s.Factor > 0) {
			return errors.Errorf("model: rope_scaling %s needs factor > 0, got %g", s.Type, s.Factor)
		}
	case "llama3":
		if !(s.Factor > 0) || !(s.LowFreqFactor > 0) || !(s.HighFreqFactor > s.LowFreqFactor) || s.OriginalMaxPositions <= 0 {
			return errors.Errorf("model: rope_scaling llama3 needs factor>0, 0<low_freq_factor<high_freq_factor, original_max_position_embeddings>0, got %+v", s)
		}
	default:
		return errors.Errorf("model: unsupported rope_scaling type %q (supported: default, linear, llama3, dynamic)", s.Type)
	}
	return nil
}

// Groups is the number of query heads sharing one key/value head.
func (c *Config) Groups() int { return c.Heads / c.KVHeads }

// QKVBias reports whether q/k/v projections carry biases; OBias whether o_proj does.
func (c *Config) QKVBias() bool { return c.Arch == Qwen2 || c.AttentionBias }
func (c *Config) OBias() bool   { return (c.Arch == Llama || c.Arch == Gemma3) && c.AttentionBias }

// QKNorm reports whether q and k get a per-head norm (Qwen3, Gemma 3).
func (c *Config) QKNorm() bool { return c.family().qkNorm }

// ParamSpec names one parameter tensor the HF way, with its shape.
type ParamSpec struct {
	Name  string // e.g. "model.layers.3.self_attn.v_proj.weight"
	Shape []int  // HF layout: Linear weights are [d_out, d_in]
}

// LinearKind enumerates the linear maps of a block, the scored layers of SPEC §2.
type LinearKind int

const (
	QProj LinearKind = iota
	KProj
	VProj
	OProj
	GateProj
	UpProj
	DownProj
	NumLinearKinds
)

var linearNames = [NumLinearKinds]string{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
	"self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}

// String returns the HF module path inside a block, e.g. "self_attn.v_proj".
func (k LinearKind) String() string { return linearNames[k] }

// Short returns the module's last name, e.g. "v_proj".
func (k LinearKind) Short() string { return linearNames[k][strings.IndexByte(linearNames[k], '.')+1:] }

// LinearName is the HF tensor name of a block's linear weight, e.g. "model.layers.3.self_attn.v_proj.weight".
func LinearName(block int, kind LinearKind) string {
	return fmt.Sprintf("model.layers.%d.%s.weight", block, kind)
}

// LinearShape is the [d_out, d_in] shape of a block's linear weight.
func (c *Config) LinearShape(kind LinearKind) []int {
	d, hd, ff := c.Hidden, c.HeadDim, c.Intermediate
	switch kind {
	case QProj:
		return []int{c.Heads * hd, d}
	case KProj, VProj:
		return []int{c.KVHeads * hd, d}
	case OProj:
		return []int{d, c.Heads * hd}
	case GateProj, UpProj:
		return []int{ff, d}
	case DownProj:
		return []int{d, ff}
	}
	panic(fmt.Sprintf("model: unknown linear kind %d", kind))
}

// ParamSpecs lists every parameter tensor of the architecture, in a fixed order.
func (c *Config) ParamSpecs() []ParamSpec {
	d, hd := c.Hidden, c.HeadDim
	specs := []ParamSpec{{"model.embed_tokens.weight", []int{c.VocabSize, d}}}
	for i := range c.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		specs = append(specs, ParamSpec{p + "input_layernorm.weight", []int{d}})
		for k := QProj; k <= OProj; k++ {
			specs = append(specs, ParamSpec{LinearName(i, k), c.LinearShape(k)})
		}
		if c.QKVBias() {
			specs = append(specs,
				ParamSpec{p + "self_attn.q_proj.bias", []int{c.Heads * hd}},
				ParamSpec{p + "self_attn.k_proj.bias", []int{c.KVHeads * hd}},
				ParamSpec{p + "self_attn.v_proj.bias", []int{c.KVHeads * hd}})
		}
		if c.OBias() {
			specs = append(specs, ParamSpec{p + "self_attn.o_proj.bias", []int{d}})
		}
		if c.QKNorm() {
			specs = append(specs,
				ParamSpec{p + "self_attn.q_norm.weight", []int{hd}},
				ParamSpec{p + "self_attn.k_norm.weight", []int{hd}})
		}
		specs = append(specs, ParamSpec{p + "post_attention_layernorm.weight", []int{d}})
		if c.family().ffnNorms {
			specs = append(specs,
				ParamSpec{p + "pre_feedforward_layernorm.weight", []int{d}},
				ParamSpec{p + "post_feedforward_layernorm.weight", []int{d}})
		}
		for k := GateProj; k <= DownProj; k++ {
			specs = append(specs, ParamSpec{LinearName(i, k), c.LinearShape(k)})
		}
	}
	specs = append(specs, ParamSpec{"model.norm.weight", []int{d}})
	if !c.TieEmbeddings {
		specs = append(specs, ParamSpec{"lm_head.weight", []int{c.VocabSize, d}})
	}
	return specs
}

// NumParams counts the parameters (embedding included; a tied head is counted once).
func (c *Config) NumParams() int64 {
	var n int64
	for _, s := range c.ParamSpecs() {
		m := int64(1)
		for _, d := range s.Shape {
			m *= int64(d)
		}
		n += m
	}
	return n
}

// MarshalHF renders the configuration as a Hugging Face config.json that transformers can load, in
// the transformers-4 form (rope_theta, rope_scaling, torch_dtype; see hfconfig.go), or the -5 form
// for a Gemma 3 configuration with a scaled local RoPE, which only that form can express.
func (c *Config) MarshalHF() ([]byte, error) { return c.marshalHF(false) }

// MarshalHF5 renders the configuration in the transformers-5 form: rope_parameters (one object per
// attention kind for Gemma 3) and dtype.
func (c *Config) MarshalHF5() ([]byte, error) { return c.marshalHF(true) }

func (c *Config) marshalHF(form5 bool) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	m := map[string]any{
		"architectures":           []string{c.family().class},
		"model_type":              string(c.Arch),
		"vocab_size":              c.VocabSize,
		"hidden_size":             c.Hidden,
		"num_hidden_layers":       c.Layers,
		"num_attention_heads":     c.Heads,
		"num_key_value_heads":     c.KVHeads,
		"head_dim":                c.HeadDim,
		"intermediate_size":       c.Intermediate,
		"hidden_act":              "silu",
		"rms_norm_eps":            c.RMSNormEps,
		"rope_theta":              c.RoPETheta,
		"tie_word_embeddings":     c.TieEmbeddings,
		"max_position_embeddings": c.MaxPositions,
		"torch_dtype":             c.DType, // transformers < 4.56
		"dtype":                   c.DType, // transformers ≥ 4.56
		"attention_dropout":       0.0,
		"initializer_range":       0.02,
		"use_cache":               true,
	}
	if c.Arch == Llama {
		m["attention_bias"] = c.AttentionBias
		m["mlp_bias"] = false
	}
	if c.RoPEScaling.Type != "" && c.RoPEScaling.Type != "default" {
		m["rope_scaling"] = c.RoPEScaling
	}
	if c.Arch == Gemma3 {
		c.gemma3Keys(m)
		if c.RoPELocalScaling.Type != "" && c.RoPELocalScaling.Type != "default" {
			form5 = true // transformers 4 has no key for a scaled local RoPE: only the -5 form says it
		}
	}
	if form5 {
		rope5(m)
	}
	if c.BOSTokenID >= 0 {
		m["bos_token_id"] = c.BOSTokenID
	}
	if c.PadTokenID >= 0 {
		m["pad_token_id"] = c.PadTokenID
	}
	switch len(c.EOSTokenIDs) {
	case 0:
	case 1:
		m["eos_token_id"] = c.EOSTokenIDs[0]
	default:
		m["eos_token_id"] = c.EOSTokenIDs
	}
	return json.MarshalIndent(m, "", "  ")
}

// Equal reports whether two configurations describe the same architecture and weights layout.
func (c *Config) Equal(o *Config) bool {
	a, b := *c, *o
	return a.Arch == b.Arch && a.VocabSize == b.VocabSize && a.Hidden == b.Hidden && a.Layers == b.Layers &&
		a.Heads == b.Heads && a.KVHeads == b.KVHeads && a.HeadDim == b.HeadDim && a.Intermediate == b.Intermediate &&
		a.RMSNormEps == b.RMSNormEps && a.RoPETheta == b.RoPETheta && a.RoPEScaling == b.RoPEScaling &&
		a.TieEmbeddings == b.TieEmbeddings && a.AttentionBias == b.AttentionBias && a.MaxPositions == b.MaxPositions &&
		a.BOSTokenID == b.BOSTokenID && a.PadTokenID == b.PadTokenID && slices.Equal(a.EOSTokenIDs, b.EOSTokenIDs) &&
		a.HiddenAct == b.HiddenAct && slices.Equal(a.LayerTypes, b.LayerTypes) && a.SlidingWindow == b.SlidingWindow &&
		a.RoPELocalTheta == b.RoPELocalTheta && a.RoPELocalScaling == b.RoPELocalScaling &&
		a.QueryPreAttnScalar == b.QueryPreAttnScalar
}

// LocalInvFrequencies are the inverse frequencies of sliding_attention layers (Gemma 3's local
// base rope_local_base_freq and its scaling).
func (c *Config) LocalInvFrequencies() []float64 {
	return InvFrequencies(c.HeadDim, c.RoPELocalTheta, c.RoPELocalScaling)
}

// InvFrequencies returns RoPE's inverse frequencies (length HeadDim/2) after rope_scaling, computed
// in float64 exactly as HF's rope initialisation functions do.
func (c *Config) InvFrequencies() []float64 {
	return InvFrequencies(c.HeadDim, c.RoPETheta, c.RoPEScaling)
}

// InvFrequencies returns the inverse frequencies θ^(-2i/headDim), i < headDim/2, after scaling s
// (transformers' _compute_{default,linear_scaling,llama3}_parameters; "dynamic" is the default
// table for every sequence no longer than max_position_embeddings).
func InvFrequencies(headDim int, theta float64, s RoPEScaling) []float64 {
	half := headDim / 2
	inv := make([]float64, half)
	for i := range half {
		inv[i] = 1 / math.Pow(theta, float64(2*i)/float64(headDim))
	}
	switch s.Type {
	case "linear":
		for i := range inv {
			inv[i] /= s.Factor
		}
	case "llama3":
		// HF _compute_llama3_parameters: long wavelengths are divided by factor, short ones kept,
		// and the band in between interpolated smoothly.
		lowWavelen := float64(s.OriginalMaxPositions) / s.LowFreqFactor
		highWavelen := float64(s.OriginalMaxPositions) / s.HighFreqFactor
		for i, f := range inv {
			wavelen := 2 * math.Pi / f
			switch {
			case wavelen > lowWavelen:
				inv[i] = f / s.Factor
			case wavelen < highWavelen:
				inv[i] = f
			default:
				smooth := (float64(s.OriginalMaxPositions)/wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
				inv[i] = (1-smooth)*f/s.Factor + smooth*f
			}
		}
	}
	return inv
}

// Presets are byte-level Llama configurations for models trained here (vocab_size from the
// tokenizer). "tiny" is for tests, "mini" for the CPU demo, "small" for the fuller suite, and
// "deep12" a 12-block model for the valuation benchmarks.
var Presets = map[string]Config{
	"tiny":   {Hidden: 64, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, Intermediate: 192, MaxPositions: 256},
	"mini":   {Hidden: 128, Layers: 4, Heads: 4, KVHeads: 2, HeadDim: 32, Intermediate: 384, MaxPositions: 256},
	"small":  {Hidden: 256, Layers: 6, Heads: 4, KVHeads: 2, HeadDim: 64, Intermediate: 768, MaxPositions: 512},
	"deep12": {Hidden: 256, Layers: 12, Heads: 4, KVHeads: 2, HeadDim: 64, Intermediate: 768, MaxPositions: 1024},
}

// Preset returns a Llama configuration of the named preset for a vocabulary and special ids.
func Preset(name string, vocab, bos, eos, pad int) (*Config, error) {
	p, ok := Presets[name]
	if !ok {
		return nil, errors.Errorf("model: unknown preset %q (tiny, mini, small, deep12)", name)
	}
	c := p
	c.Arch, c.VocabSize, c.RMSNormEps, c.RoPETheta, c.DType = Llama, vocab, 1e-5, 10000, "float32"
	c.BOSTokenID, c.PadTokenID = bos, pad
	if eos >= 0 {
		c.EOSTokenIDs = []int{eos}
	}
	return &c, c.Validate()
}

// rope5 turns a transformers-4 config map into the transformers-5 form: rope_theta, rope_scaling
// (and Gemma's rope_local_base_freq) become rope_parameters, torch_dtype becomes dtype.
func rope5(m map[string]any) {
	params := func(theta any, scaling any) map[string]any {
		p := map[string]any{"rope_theta": theta, "rope_type": "default"}
		if s, ok := scaling.(RoPEScaling); ok {
			b, _ := json.Marshal(s)
			_ = json.Unmarshal(b, &p)
		}
		return p
	}
	global := params(m["rope_theta"], m["rope_scaling"])
	if local, ok := m["rope_local_base_freq"]; ok {
		m["rope_parameters"] = map[string]any{FullAttention: global, SlidingAttention: params(local, m["rope_local_scaling"])}
	} else {
		m["rope_parameters"] = global
	}
	m["dtype"] = m["torch_dtype"]
	for _, k := range []string{"rope_theta", "rope_scaling", "rope_local_base_freq", "rope_local_scaling", "torch_dtype"} {
		delete(m, k)
	}
	m["transformers_version"] = "5.0.0"
}
