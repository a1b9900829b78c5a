// Package tokenizer turns text into token ids and back for the models of this toolkit.
//
// Two kinds are supported:
//
//   - ByteLevel, built in: one token per byte (ids 0–255) plus <pad>, <bos> and <eos>. Small models
//     trained here use it, so nothing is ever downloaded. It is saved as a genuine Hugging Face
//     tokenizer.json (a ByteLevel BPE with no merges), so the checkpoints load in transformers too.
//   - HF: a tokenizer.json with a BPE model (Qwen, Llama 3, Gemma 3, GPT-2 style), encoded by this
//     package's own pipeline (added tokens, normalizer, Split/ByteLevel pre-tokenizers with the
//     file's regex, BPE merges with ignore_merges and byte fallback), with the special tokens named
//     in tokenizer_config.json. It is verified id for id against the tokenizers' JavaScript port
//     on the real Qwen3, Llama 3 and Gemma 3 files (hf_real_test.go).
//
// Load picks the kind from the files in a checkpoint directory. Encode never adds special tokens:
// callers add BOS/EOS and chat markup explicitly (see the data package's templates).
package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/gomlx/go-huggingface/tokenizers/api"
	"github.com/pkg/errors"
)

// Tokenizer converts between text and token ids.
type Tokenizer interface {
	// Encode returns the ids of text, without any special token.
	Encode(text string) []int
	// Decode returns the text of ids; special tokens are dropped.
	Decode(ids []int) string
	// TokenText is the text one token stands for (for reports; may be a partial UTF-8 sequence).
	TokenText(id int) string
	// VocabSize is the number of ids (the model's vocab_size must be at least this).
	VocabSize() int
	// BOS, EOS and PAD return the special ids, or -1 if the tokenizer has none.
	BOS() int
	EOS() int
	PAD() int
	// Family names the chat-template family: "plain" (ByteLevel), "chatml", "llama3", "gemma" or "" if unknown.
	Family() string
	// Save writes tokenizer.json and tokenizer_config.json to dir (atomically).
	Save(dir string) error
}

// Load reads the tokenizer of a checkpoint directory. A missing tokenizer.json is an error that
// names the directory.
func Load(dir string) (Tokenizer, error) {
	tjPath := filepath.Join(dir, "tokenizer.json")
	content, err := os.ReadFile(tjPath)
	if err != nil {
		return nil, errors.Errorf("tokenizer: %s has no tokenizer.json (%v); checkpoints made here save one, "+
			"HF checkpoints ship one", dir, err)
	}
	cfg, raw, err := readConfig(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		return nil, err
	}
	if isByteLevel, _ := raw[byteLevelMarker].(bool); isByteLevel {
		return NewByteLevel(), nil
	}
	h, err := parseHF(content, tjPath, cfg, raw)
	if err != nil {
		return nil, err
	}
	h.chatTemplate, h.chatTemplateFile, err = readChatTemplate(dir, raw)
	return h, err
}

// readConfig parses tokenizer_config.json leniently: special tokens may be strings or
// {"content": ...} objects. A missing file gives an empty config.
func readConfig(path string) (*api.Config, map[string]any, error) {
	cfg := &api.Config{}
	raw := map[string]any{}
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return cfg, raw, nil
	}
	if err != nil {
		return nil, nil, errors.Wrapf(err, "tokenizer: reading %s", path)
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, nil, errors.Wrapf(err, "tokenizer: parsing %s", path)
	}
	tokenOf := func(key string) string {
		switch v := raw[key].(type) {
		case string:
			return v
		case map[string]any:
			s, _ := v["content"].(string)
			return s
		}
		return ""
	}
	cfg.ConfigFile = path
	cfg.BosToken, cfg.EosToken, cfg.PadToken, cfg.UnkToken = tokenOf("bos_token"), tokenOf("eos_token"), tokenOf("pad_token"), tokenOf("unk_token")
	cfg.ChatTemplate, _ = raw["chat_template"].(string)
	cfg.TokenizerClass, _ = raw["tokenizer_class"].(string)
	return cfg, raw, nil
}

// readChatTemplate finds a checkpoint's chat template: chat_template.jinja (transformers ≥ 4.43
// writes it there), else tokenizer_config.json's "chat_template", a string or a list of
// {"name", "template"} entries of which "default" is used.
func readChatTemplate(dir string, raw map[string]any) (string, string, error) {
	jinjaPath := filepath.Join(dir, "chat_template.jinja")
	if data, err := os.ReadFile(jinjaPath); err == nil {
		return string(data), jinjaPath, nil
	}
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	switch v := raw["chat_template"].(type) {
	case nil:
		return "", "", nil
	case string:
		return v, cfgPath, nil
	case []any:
		for _, e := range v {
			if m, ok := e.(map[string]any); ok && m["name"] == "default" {
				if t, ok := m["template"].(string); ok {
					return t, cfgPath, nil
				}
			}
		}
		return "", "", errors.Errorf("tokenizer: %s: \"chat_template\" is a list without a \"default\" template", cfgPath)
	default:
		return "", "", errors.Errorf("tokenizer: %s: \"chat_template\" must be a string or a list of {name, template}", cfgPath)
	}
}
