package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/pkg/errors"
)

// This file reads Hugging Face config.json files as transformers 4 and transformers 5 write them.
// go-huggingface's transformer.Config cannot read the transformers-5 form (it expects rope_parameters
// to be an object of a fixed Go type and misses dtype), so the project parses configs itself.
//
// The two forms differ in the RoPE and dtype keys:
//
//	transformers 4: "rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 32.0, …} (or null),
//	                "torch_dtype": "bfloat16"; Gemma 3 adds "rope_local_base_freq": 10000.0
//	transformers 5: "rope_parameters": {"rope_theta": 500000.0, "rope_type": "llama3", "factor": 32.0, …},
//	                "dtype": "bfloat16"; Gemma 3 nests one such object per attention kind:
//	                "rope_parameters": {"full_attention": {…}, "sliding_attention": {…}}
//
// Unknown keys are ignored. A known key whose value the model does not implement (a yarn
// rope_type, an unsupported activation, sliding windows on Llama/Qwen, logit soft-capping, …) is an
// error naming the key; LoadConfig adds the file.

// hfConfig is config.json as raw values by key, with typed accessors that name the key in errors.
type hfConfig map[string]json.RawMessage

// present reports whether key is set to something other than null.
func (h hfConfig) present(key string) bool {
	v, ok := h[key]
	return ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

func (h hfConfig) decode(key string, dst any) error {
	if err := json.Unmarshal(h[key], dst); err != nil {
		return errors.Errorf("model: config key %q: %s", key, jsonTypeError(err))
	}
	return nil
}

// jsonTypeError shortens encoding/json's messages ("json: cannot unmarshal string into Go value of type int").
func jsonTypeError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("expected %s, got a JSON %s", goTypeWord(te.Type.String()), te.Value)
	}
	return err.Error()
}

func goTypeWord(t string) string {
	switch {
	case t == "int":
		return "an integer"
	case t == "float64":
		return "a number"
	case t == "string":
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "an object"
	}
	return t
}

// int reads an integer key; def if absent or null. Floats with a fractional part are errors.
func (h hfConfig) int(key string, def int) (int, error) {
	if !h.present(key) {
		return def, nil
	}
	var f float64
	if err := h.decode(key, &f); err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<40 {
		return 0, errors.Errorf("model: config key %q: expected an integer, got %v", key, f)
	}
	return int(f), nil
}

func (h hfConfig) float(key string, def float64) (float64, error) {
	if !h.present(key) {
		return def, nil
	}
	var f float64
	err := h.decode(key, &f)
	return f, err
}

func (h hfConfig) bool(key string, def bool) (bool, error) {
	if !h.present(key) {
		return def, nil
	}
	var b bool
	err := h.decode(key, &b)
	return b, err
}

func (h hfConfig) string(key string, def string) (string, error) {
	if !h.present(key) {
		return def, nil
	}
	var s string
	err := h.decode(key, &s)
	return s, err
}

// ids reads a token id that may be an integer or a list of integers (eos_token_id).
func (h hfConfig) ids(key string) ([]int, error) {
	if !h.present(key) {
		return nil, nil
	}
	var one int
	if err := json.Unmarshal(h[key], &one); err == nil {
		return []int{one}, nil
	}
	var many []int
	if err := json.Unmarshal(h[key], &many); err != nil {
		return nil, errors.Errorf("model: config key %q: expected an integer or a list of integers, got %s", key, truncate(string(h[key]), 40))
	}
	return many, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ParseConfig reads a Hugging Face config.json of a supported architecture (transformers 4 or 5
// form) and validates it.
func ParseConfig(data []byte) (*Config, error) {
	c, err := decodeConfig(data)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// decodeConfig maps config.json to a Config without Validate (so architectures whose model is not
// implemented yet can be read and checked).
func decodeConfig(data []byte) (*Config, error) {
	var h hfConfig
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, errors.Errorf("model: config.json is not a JSON object: %s", jsonTypeError(err))
	}
	if h == nil {
		return nil, errors.New("model: config.json is not a JSON object (null)")
	}
	mt, err := h.string("model_type", "")
	if err != nil {
		return nil, err
	}
	textOf := ""
	if mt == "gemma3" { // Gemma3ForConditionalGeneration: its text stack (gemma3.go)
		if h, err = gemma3TextConfig(h); err != nil {
			return nil, err
		}
		mt, textOf = string(Gemma3), gemma3Multimodal
	}
	arch := Arch(mt)
	if arch == Gemma3 {
		withGemma3Defaults(h)
	}
	fam, ok := families[arch]
	if !ok {
		return nil, errors.Errorf("model: config key \"model_type\": %q is unsupported (supported: %s)", mt, supportedArchs)
	}
	if h.present("architectures") {
		var archs []string
		if err := h.decode("architectures", &archs); err != nil {
			return nil, err
		}
		if len(archs) > 0 && !slices.Contains(archs, fam.class) {
			return nil, errors.Errorf("model: config key \"architectures\": %v: only %s is supported for model_type %s",
				archs, fam.class, mt)
		}
	}
	c := &Config{Arch: arch, BOSTokenID: -1, PadTokenID: -1, textOf: textOf}
	ints := []struct {
		dst *int
		key string
		def int
	}{
		{&c.VocabSize, "vocab_size", 0}, {&c.Hidden, "hidden_size", 0}, {&c.Layers, "num_hidden_layers", 0},
		{&c.Heads, "num_attention_heads", 0}, {&c.KVHeads, "num_key_value_heads", 0}, {&c.HeadDim, "head_dim", 0},
		{&c.Intermediate, "intermediate_size", 0}, {&c.MaxPositions, "max_position_embeddings", 2048},
		{&c.SlidingWindow, "sliding_window", 0},
	}
	for _, f := range ints {
		if *f.dst, err = h.int(f.key, f.def); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		key string
		min int
	}{{"vocab_size", 1}, {"hidden_size", 1}, {"num_hidden_layers", 1}, {"num_attention_heads", 1}, {"intermediate_size", 1}} {
		if v, _ := h.int(f.key, 0); v < f.min {
			return nil, errors.Errorf("model: config key %q must be a positive integer, got %s", f.key, truncate(string(h[f.key]), 40))
		}
	}
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.HeadDim == 0 {
		c.HeadDim = c.Hidden / c.Heads
	}
	// Values must fit what the graphs can allocate: refuse absurd sizes before anything is built.
	if c.VocabSize > 1<<24 || c.Hidden > 1<<17 || c.Layers > 1<<10 || c.Heads > 1<<12 || c.Intermediate > 1<<20 || c.HeadDim > 1<<12 {
		return nil, errors.Errorf("model: config sizes out of range (vocab_size %d, hidden_size %d, num_hidden_layers %d, num_attention_heads %d, head_dim %d, intermediate_size %d)",
			c.VocabSize, c.Hidden, c.Layers, c.Heads, c.HeadDim, c.Intermediate)
	}
	if c.RMSNormEps, err = h.float("rms_norm_eps", 1e-6); err != nil {
		return nil, err
	}
	if c.TieEmbeddings, err = h.bool("tie_word_embeddings", arch == Gemma3); err != nil { // Gemma ties by default
		return nil, err
	}
	if c.AttentionBias, err = h.bool("attention_bias", false); err != nil {
		return nil, err
	}
	if arch == Qwen3 && c.AttentionBias {
		return nil, errors.New(`model: config key "attention_bias": true is not implemented for qwen3`)
	}
	if mlpBias, err := h.bool("mlp_bias", false); err != nil {
		return nil, err
	} else if mlpBias {
		return nil, errors.New(`model: config key "mlp_bias": true is not implemented (MLP without biases only)`)
	}
	if err := c.readDType(h); err != nil {
		return nil, err
	}
	if err := c.readActivation(h); err != nil {
		return nil, err
	}
	if err := c.readRoPE(h); err != nil {
		return nil, err
	}
	if err := c.readAttentionKinds(h); err != nil {
		return nil, err
	}
	for _, key := range []string{"attn_logit_softcapping", "final_logit_softcapping"} {
		if h.present(key) {
			return nil, errors.Errorf("model: config key %q: logit soft-capping (Gemma 2's; Gemma 3 checkpoints have null) is not implemented (must be null or absent)", key)
		}
	}
	if bidi, err := h.bool("use_bidirectional_attention", false); err != nil {
		return nil, err
	} else if bidi {
		return nil, errors.New(`model: config key "use_bidirectional_attention": true (an encoder such as EmbeddingGemma) is not implemented: only causal language models`)
	}
	if v, err := h.float("partial_rotary_factor", 1); err != nil {
		return nil, err
	} else if v != 1 {
		return nil, errors.Errorf("model: config key \"partial_rotary_factor\": %g is not implemented (only 1)", v)
	}
	bos, err := h.ids("bos_token_id")
	if err != nil {
		return nil, err
	}
	pad, err := h.ids("pad_token_id")
	if err != nil {
		return nil, err
	}
	if len(bos) == 1 {
		c.BOSTokenID = bos[0]
	}
	if len(pad) == 1 {
		c.PadTokenID = pad[0]
	}
	if c.EOSTokenIDs, err = h.ids("eos_token_id"); err != nil {
		return nil, err
	}
	return c, nil
}

// readDType reads dtype (transformers 5) or torch_dtype (4); both present must agree.
func (c *Config) readDType(h hfConfig) error {
	d5, err := h.string("dtype", "")
	if err != nil {
		return err
	}
	d4, err := h.string("torch_dtype", "")
	if err != nil {
		return err
	}
	if d5 != "" && d4 != "" && d5 != d4 {
		return errors.Errorf("model: config keys \"dtype\" (%q) and \"torch_dtype\" (%q) disagree", d5, d4)
	}
	key := cmpOr(keyIf(d5 != "", "dtype"), "torch_dtype")
	c.DType = strings.TrimPrefix(cmpOr(d5, d4, "float32"), "torch.")
	switch c.DType {
	case "float32", "bfloat16", "float16", "float64":
	default:
		return errors.Errorf("model: config key %q: %q is not supported (float32, bfloat16, float16, float64)", key, c.DType)
	}
	return nil
}

func keyIf(ok bool, key string) string {
	if ok {
		return key
	}
	return ""
}

func cmpOr(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// readActivation reads hidden_act / hidden_activation: Llama and Qwen need "silu"; Gemma 3
// "gelu_pytorch_tanh".
func (c *Config) readActivation(h hfConfig) error {
	key := "hidden_act"
	want := "silu"
	if c.Arch == Gemma3 {
		// Gemma3TextConfig keeps hidden_activation; hidden_act, if written, is the legacy alias.
		key, want = "hidden_activation", "gelu_pytorch_tanh"
		if !h.present(key) && h.present("hidden_act") {
			key = "hidden_act"
		}
	}
	act, err := h.string(key, want)
	if err != nil {
		return err
	}
	if act != want {
		return errors.Errorf("model: config key %q: %q is not implemented for %s (only %s)", key, act, c.Arch, want)
	}
	c.HiddenAct = act
	if c.Arch != Gemma3 {
		c.HiddenAct = "" // the Llama family's only activation; not recorded
	}
	return nil
}

// ropeParams is one RoPE parameter set: rope_theta plus a scaling (either form).
type ropeParams struct {
	theta   float64
	scaling RoPEScaling
}

// parseRoPE reads one rope_parameters / rope_scaling object; key names it in errors. Unknown keys
// (e.g. "partial_rotary_factor": 1.0, or mrope fields) are ignored unless they change the math.
func parseRoPE(raw json.RawMessage, key string, maxPositions int) (ropeParams, bool, error) {
	var m hfConfig
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return ropeParams{}, false, errors.Errorf("model: config key %q: expected an object, got %s", key, truncate(string(raw), 60))
	}
	var p ropeParams
	sub := func(k string) string { return key + "." + k }
	var err error
	hasTheta := m.present("rope_theta")
	if p.theta, err = m.float("rope_theta", 0); err != nil {
		return p, false, errors.Errorf("model: config key %q: expected a number", sub("rope_theta"))
	}
	t, err := m.string("rope_type", "")
	if err != nil {
		return p, false, errors.Errorf("model: config key %q: expected a string", sub("rope_type"))
	}
	if t == "" {
		if t, err = m.string("type", ""); err != nil { // the pre-4.45 name
			return p, false, errors.Errorf("model: config key %q: expected a string", sub("type"))
		}
	}
	num := func(k string) (float64, error) {
		v, err := m.float(k, 0)
		if err != nil {
			return 0, errors.Errorf("model: config key %q: expected a number", sub(k))
		}
		return v, nil
	}
	s := RoPEScaling{Type: t}
	if s.Factor, err = num("factor"); err != nil {
		return p, false, err
	}
	switch t {
	case "", "default":
		s = RoPEScaling{}
	case "linear":
	case "llama3":
		if s.LowFreqFactor, err = num("low_freq_factor"); err != nil {
			return p, false, err
		}
		if s.HighFreqFactor, err = num("high_freq_factor"); err != nil {
			return p, false, err
		}
		omp, err := num("original_max_position_embeddings")
		if err != nil {
			return p, false, err
		}
		s.OriginalMaxPositions = int(omp)
	case "dynamic":
		// transformers' dynamic NTK recomputes the frequencies only once a sequence exceeds the
		// original context (max_position_embeddings); with any other original length it would
		// differ from default inside the accepted context, which is not implemented.
		omp, err := num("original_max_position_embeddings")
		if err != nil {
			return p, false, err
		}
		if omp != 0 && int(omp) < maxPositions {
			return p, false, errors.Errorf("model: config key %q: dynamic scaling with original_max_position_embeddings %d < max_position_embeddings %d is not implemented",
				sub("original_max_position_embeddings"), int(omp), maxPositions)
		}
	default:
		return p, false, errors.Errorf("model: config key %q: RoPE type %q is not implemented (supported: default, linear, llama3, dynamic; "+
			"yarn and longrope also rescale the attention logits)", sub(cmpOr(keyIf(m.present("rope_type"), "rope_type"), "type")), t)
	}
	if f, err := m.float("partial_rotary_factor", 1); err != nil || f != 1 {
		return p, false, errors.Errorf("model: config key %q: only 1 is implemented, got %s", sub("partial_rotary_factor"), truncate(string(m["partial_rotary_factor"]), 20))
	}
	if s.Type != "" {
		if err := s.validate(); err != nil {
			return p, false, errors.WithMessagef(err, "config key %q", key)
		}
	}
	p.scaling = s
	return p, hasTheta, nil
}

// readRoPE fills RoPETheta/RoPEScaling (and the local ones of sliding layers) from either form.
func (c *Config) readRoPE(h hfConfig) error {
	theta4, err := h.float("rope_theta", 0)
	if err != nil {
		return err
	}
	local4, err := h.float("rope_local_base_freq", 0)
	if err != nil {
		return err
	}
	var global, local ropeParams
	globalSet, localSet := false, false
	if h.present("rope_parameters") {
		var per map[string]json.RawMessage
		if err := json.Unmarshal(h["rope_parameters"], &per); err != nil || per == nil {
			return errors.Errorf("model: config key \"rope_parameters\": expected an object, got %s", truncate(string(h["rope_parameters"]), 60))
		}
		_, nestedFull := per[FullAttention]
		_, nestedSliding := per[SlidingAttention]
		if nestedFull || nestedSliding { // one parameter set per attention kind (Gemma 3, transformers 5)
			for _, k := range sortedKeys(per) {
				if k != FullAttention && k != SlidingAttention {
					return errors.Errorf("model: config key \"rope_parameters\": unknown attention kind %q next to full_attention/sliding_attention", k)
				}
			}
			if nestedFull {
				if global, globalSet, err = parseRoPE(per[FullAttention], "rope_parameters.full_attention", c.MaxPositions); err != nil {
					return err
				}
			}
			if nestedSliding {
				if local, localSet, err = parseRoPE(per[SlidingAttention], "rope_parameters.sliding_attention", c.MaxPositions); err != nil {
					return err
				}
			}
		} else if global, globalSet, err = parseRoPE(h["rope_parameters"], "rope_parameters", c.MaxPositions); err != nil {
			return err
		}
	}
	if h.present("rope_scaling") {
		scaling, _, err := parseRoPE(h["rope_scaling"], "rope_scaling", c.MaxPositions)
		if err != nil {
			return err
		}
		if h.present("rope_parameters") && scaling.scaling != global.scaling {
			return errors.Errorf("model: config keys \"rope_scaling\" (%+v) and \"rope_parameters\" (%+v) disagree", scaling.scaling, global.scaling)
		}
		global.scaling = scaling.scaling
	}
	switch {
	case globalSet && theta4 != 0 && theta4 != global.theta:
		return errors.Errorf("model: config keys \"rope_theta\" (%g) and \"rope_parameters\" rope_theta (%g) disagree", theta4, global.theta)
	case !globalSet:
		global.theta = cmpOrF(theta4, 10000)
	}
	switch {
	case localSet && local4 != 0 && local4 != local.theta:
		return errors.Errorf("model: config keys \"rope_local_base_freq\" (%g) and \"rope_parameters.sliding_attention\" rope_theta (%g) disagree", local4, local.theta)
	case !localSet:
		local.theta = cmpOrF(local4, 10000)
	}
	if !(global.theta > 0) || !(local.theta > 0) {
		return errors.Errorf("model: config: rope_theta must be positive, got %g (local %g)", global.theta, local.theta)
	}
	c.RoPETheta, c.RoPEScaling = global.theta, global.scaling
	if c.Arch == Gemma3 {
		c.RoPELocalTheta, c.RoPELocalScaling = local.theta, local.scaling
	} else if localSet {
		return errors.Errorf("model: config key \"rope_parameters.sliding_attention\": %s has no sliding-window layers", c.Arch)
	}
	return nil
}

func cmpOrF(a, def float64) float64 {
	if a != 0 {
		return a
	}
	return def
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// readAttentionKinds reads layer_types, sliding_window and the Gemma/Qwen keys around them.
func (c *Config) readAttentionKinds(h hfConfig) error {
	if h.present("layer_types") {
		if err := h.decode("layer_types", &c.LayerTypes); err != nil {
			return err
		}
		if len(c.LayerTypes) != c.Layers {
			return errors.Errorf("model: config key \"layer_types\" has %d entries, num_hidden_layers is %d", len(c.LayerTypes), c.Layers)
		}
		for i, lt := range c.LayerTypes {
			if lt != FullAttention && lt != SlidingAttention {
				return errors.Errorf("model: config key \"layer_types\": entry %d is %q (full_attention or sliding_attention)", i, lt)
			}
		}
	}
	var err error
	switch c.Arch {
	case Gemma3:
		if c.QueryPreAttnScalar, err = h.float("query_pre_attn_scalar", float64(c.HeadDim)); err != nil {
			return err
		}
		if !(c.QueryPreAttnScalar > 0) {
			return errors.Errorf("model: config key \"query_pre_attn_scalar\" must be positive, got %g", c.QueryPreAttnScalar)
		}
		if c.LayerTypes == nil {
			// transformers 4.50–4.52 configs: every sliding_window_pattern-th layer is global.
			pattern, err := h.int("sliding_window_pattern", 6)
			if err != nil {
				return err
			}
			if pattern <= 0 {
				return errors.Errorf("model: config key \"sliding_window_pattern\" must be positive, got %d", pattern)
			}
			c.LayerTypes = make([]string, c.Layers)
			for i := range c.LayerTypes {
				c.LayerTypes[i] = SlidingAttention
				if (i+1)%pattern == 0 {
					c.LayerTypes[i] = FullAttention
				}
			}
		}
		if slices.Contains(c.LayerTypes, SlidingAttention) && c.SlidingWindow <= 0 {
			return errors.Errorf("model: config key \"sliding_window\" must be positive with sliding_attention layers, got %d", c.SlidingWindow)
		}
	default:
		// Qwen2/3 write sliding_window (and layer_types, all full_attention) even when
		// use_sliding_window is false; the window then does nothing.
		use, err := h.bool("use_sliding_window", false)
		if err != nil {
			return err
		}
		if use {
			return errors.Errorf("model: config key \"use_sliding_window\": true is not implemented for %s", c.Arch)
		}
		if i := slices.Index(c.LayerTypes, SlidingAttention); i >= 0 {
			return errors.Errorf("model: config key \"layer_types\": entry %d is sliding_attention, not implemented for %s", i, c.Arch)
		}
		c.SlidingWindow = 0
	}
	return nil
}

// LoadConfig reads dir/config.json; errors name the file.
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
