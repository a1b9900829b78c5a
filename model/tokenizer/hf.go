package tokenizer

import (
	"encoding/json"
	"path/filepath"

	"github.com/gomlx/go-huggingface/tokenizers/api"
	"github.com/gomlx/go-huggingface/tokenizers/hftokenizer"

	"github.com/alphatoken/alphatoken/internal/atomicfile"
)

// HF wraps a Hugging Face tokenizer.json (go-huggingface's hftokenizer).
type HF struct {
	tok           *hftokenizer.Tokenizer
	bos, eos, pad int
	family        string
	content       []byte         // tokenizer.json as read, re-written by Save
	config        map[string]any // tokenizer_config.json as read
}

func newHF(tok *hftokenizer.Tokenizer, cfg *api.Config, content []byte, raw map[string]any) *HF {
	_ = tok.With(api.EncodeOptions{AddSpecialTokens: false})
	h := &HF{tok: tok, bos: -1, eos: -1, pad: -1, content: content, config: raw}
	idOf := func(s string, fallback api.SpecialToken) int {
		if s != "" {
			if id, ok := tok.TokenToID(s); ok {
				return id
			}
		}
		if id, err := tok.SpecialTokenID(fallback); err == nil {
			return id
		}
		return -1
	}
	h.bos = idOf(cfg.BosToken, api.TokBeginningOfSentence)
	h.eos = idOf(cfg.EosToken, api.TokEndOfSentence)
	h.pad = idOf(cfg.PadToken, api.TokPad)
	switch {
	case hasToken(tok, "<|im_start|>"):
		h.family = "chatml" // Qwen
	case hasToken(tok, "<|start_header_id|>"):
		h.family = "llama3"
	}
	if h.pad < 0 {
		h.pad = h.eos // a common convention; padding never reaches the loss
	}
	return h
}

func hasToken(tok *hftokenizer.Tokenizer, s string) bool { _, ok := tok.TokenToID(s); return ok }

func (h *HF) Encode(text string) []int { return h.tok.Encode(text) }
func (h *HF) Decode(ids []int) string  { return h.tok.Decode(ids) }
func (h *HF) TokenText(id int) string  { return h.tok.Decode([]int{id}) }
func (h *HF) VocabSize() int           { return h.tok.VocabSize() }
func (h *HF) BOS() int                 { return h.bos }
func (h *HF) EOS() int                 { return h.eos }
func (h *HF) PAD() int                 { return h.pad }
func (h *HF) Family() string           { return h.family }

// TokenID returns the id of a token string of the vocabulary (e.g. "<|im_end|>").
func (h *HF) TokenID(token string) (int, bool) { return h.tok.TokenToID(token) }

// Save copies tokenizer.json and tokenizer_config.json as they were read.
func (h *HF) Save(dir string) error {
	if err := atomicfile.WriteBytes(filepath.Join(dir, "tokenizer.json"), h.content); err != nil {
		return err
	}
	b, err := json.MarshalIndent(h.config, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(dir, "tokenizer_config.json"), b)
}
