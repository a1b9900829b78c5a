package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	hftransformer "github.com/gomlx/go-huggingface/models/transformer"
	"github.com/pkg/errors"
)

// Arch names a supported architecture, spelled as Hugging Face's config "model_type".
type Arch string

const (
	Llama Arch = "llama" // LlamaForCausalLM: RMSNorm, RoPE, GQA, SwiGLU; optional attention_bias.
	Qwen2 Arch = "qwen2" // Qwen2ForCausalLM: as Llama with q/k/v biases.
	Qwen3 Arch = "qwen3" // Qwen3ForCausalLM: as Llama with per-head RMSNorm of q and k (q_norm, k_norm).
)

// architectures maps the Arch to the HF "architectures" entry written to config.json.
var architectures = map[Arch]string{
	Llama: "LlamaForCausalLM",
	Qwen2: "Qwen2ForCausalLM",
	Qwen3: "Qwen3ForCausalLM",
}

// RoPEScaling is HF's "rope_scaling" block. Type "" means no scaling.
type RoPEScaling struct {
	Type string `json:"rope_type"` // "", "default", "linear" or "llama3".
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
	DType         string      // torch_dtype: "float32", "bfloat16", "float64" (storage dtype of the weights)
}

// Validate checks the internal consistency of the configuration.
func (c *Config) Validate() error {
	if _, ok := architectures[c.Arch]; !ok {
		return errors.Errorf("model: unsupported architecture %q (supported: llama, qwen2, qwen3)", c.Arch)
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
	switch c.RoPEScaling.Type {
	case "", "default":
	case "linear":
		if c.RoPEScaling.Factor <= 0 {
			return errors.Errorf("model: rope_scaling linear needs factor > 0")
		}
	case "llama3":
		s := c.RoPEScaling
		if s.Factor <= 0 || s.LowFreqFactor <= 0 || s.HighFreqFactor <= s.LowFreqFactor || s.OriginalMaxPositions <= 0 {
			return errors.Errorf("model: rope_scaling llama3 needs factor>0, 0<low_freq_factor<high_freq_factor, original_max_position_embeddings>0, got %+v", s)
		}
	default:
		return errors.Errorf("model: unsupported rope_scaling type %q (supported: linear, llama3)", c.RoPEScaling.Type)
	}
	switch c.DType {
	case "float32", "bfloat16", "float64", "float16":
	default:
		return errors.Errorf("model: unsupported torch_dtype %q", c.DType)
	}
	return nil
}

// Groups is the number of query heads sharing one key/value head.
func (c *Config) Groups() int { return c.Heads / c.KVHeads }

// QKVBias reports whether q/k/v projections carry biases; OBias whether o_proj does.
func (c *Config) QKVBias() bool { return c.Arch == Qwen2 || c.AttentionBias }
func (c *Config) OBias() bool   { return c.Arch == Llama && c.AttentionBias }

// QKNorm reports whether q and k get a per-head RMSNorm (Qwen3).
func (c *Config) QKNorm() bool { return c.Arch == Qwen3 }

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

// ParseConfig reads a Hugging Face config.json. The standard fields are parsed by go-huggingface's
// transformer.Config; the ones it does not keep (tie_word_embeddings, attention_bias, the llama3
// rope_scaling parameters, token ids) come from its Extra map.
func ParseConfig(data []byte) (*Config, error) {
	var hf hftransformer.Config
	if err := json.Unmarshal(data, &hf); err != nil {
		return nil, errors.Wrap(err, "model: parsing config.json")
	}
	arch := Arch(hf.ModelType)
	if _, ok := architectures[arch]; !ok {
		return nil, errors.Errorf("model: config.json has model_type %q, architectures %v: unsupported (supported: llama, qwen2, qwen3)",
			hf.ModelType, hf.Architectures)
	}
	c := &Config{
		Arch: arch, VocabSize: hf.VocabSize, Hidden: hf.HiddenSize, Layers: hf.NumHiddenLayers,
		Heads: hf.NumAttentionHeads, KVHeads: hf.NumKeyValueHeads, HeadDim: hf.HeadDim,
		Intermediate: hf.IntermediateSize, RMSNormEps: hf.RMSNormEps, RoPETheta: hf.RoPETheta,
		MaxPositions: hf.MaxPositionEmbeddings, BOSTokenID: -1, PadTokenID: -1, DType: hf.TorchDtype,
	}
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.HeadDim == 0 && c.Heads > 0 {
		c.HeadDim = c.Hidden / c.Heads
	}
	if c.RoPETheta == 0 {
		c.RoPETheta = 10000
	}
	if c.RMSNormEps == 0 {
		c.RMSNormEps = 1e-6
	}
	if c.DType == "" {
		c.DType = hf.DType
	}
	if c.DType == "" {
		c.DType = "float32"
	}
	if c.MaxPositions == 0 {
		c.MaxPositions = 2048
	}
	x := hf.Extra
	// HF defaults: Llama ties only if asked; Qwen2/3 configs always state it.
	c.TieEmbeddings = boolOr(x["tie_word_embeddings"], false)
	c.AttentionBias = boolOr(x["attention_bias"], false)
	if v, ok := x["hidden_act"].(string); ok && v != "silu" {
		return nil, errors.Errorf("model: hidden_act %q unsupported (only silu/SwiGLU)", v)
	}
	if raw, ok := x["rope_scaling"]; ok && raw != nil {
		m, ok := raw.(map[string]any)
		if !ok {
			return nil, errors.Errorf("model: rope_scaling must be an object, got %v", raw)
		}
		t, _ := m["rope_type"].(string)
		if t == "" {
			t, _ = m["type"].(string)
		}
		c.RoPEScaling = RoPEScaling{Type: t, Factor: numOr(m["factor"], 0),
			LowFreqFactor: numOr(m["low_freq_factor"], 0), HighFreqFactor: numOr(m["high_freq_factor"], 0),
			OriginalMaxPositions: int(numOr(m["original_max_position_embeddings"], 0))}
	}
	if v, ok := x["bos_token_id"].(float64); ok {
		c.BOSTokenID = int(v)
	}
	if v, ok := x["pad_token_id"].(float64); ok {
		c.PadTokenID = int(v)
	}
	switch v := x["eos_token_id"].(type) {
	case float64:
		c.EOSTokenIDs = []int{int(v)}
	case []any:
		for _, e := range v {
			if f, ok := e.(float64); ok {
				c.EOSTokenIDs = append(c.EOSTokenIDs, int(f))
			}
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// LoadConfig reads dir/config.json.
func LoadConfig(dir string) (*Config, error) {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, errors.Wrapf(err, "model: reading %s", path)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, errors.WithMessage(err, path)
	}
	return c, nil
}

// MarshalHF renders the configuration as a Hugging Face config.json that transformers can load.
func (c *Config) MarshalHF() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	m := map[string]any{
		"architectures":           []string{architectures[c.Arch]},
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
		a.BOSTokenID == b.BOSTokenID && a.PadTokenID == b.PadTokenID && slices.Equal(a.EOSTokenIDs, b.EOSTokenIDs)
}

// InvFrequencies returns RoPE's inverse frequencies (length HeadDim/2) after rope_scaling, computed
// in float64 exactly as HF's rope initialisation functions do.
func (c *Config) InvFrequencies() []float64 {
	half := c.HeadDim / 2
	inv := make([]float64, half)
	for i := range half {
		inv[i] = 1 / math.Pow(c.RoPETheta, float64(2*i)/float64(c.HeadDim))
	}
	s := c.RoPEScaling
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

func boolOr(v any, def bool) bool {
	if b, ok := v.(bool); ok {
		return b
	}
	return def
}

func numOr(v any, def float64) float64 {
	if f, ok := v.(float64); ok {
		return f
	}
	return def
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
