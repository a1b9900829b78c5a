package tokenizer

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gomlx/go-huggingface/tokenizers/api"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/internal/atomicfile"
)

// MaxTokenID bounds the ids a tokenizer.json may use (16M; the largest published vocabularies
// have ~262k): a corrupt file cannot make the model allocate an absurd embedding.
const MaxTokenID = 1 << 24

// HF is a Hugging Face tokenizer.json with a BPE model (Qwen, Llama 3, Gemma 3, GPT-2 style),
// encoded by this package's pipeline (pipeline.go, bpe.go) and checked token for token against the
// tokenizers' own JavaScript port on the real Qwen3, Llama 3 and Gemma 3 files (hf_real_test.go).
type HF struct {
	model     bpeModel
	added     *addedMatcher // added tokens matched on the raw text
	normAdded *addedMatcher // added tokens with normalized: true, matched after the normalizer
	normalize normalizer
	preTok    preTokenizer
	decoders  []tokenDecoder
	idToToken map[int]string
	special   map[int]bool // special added tokens: Decode drops them
	vocabSize int
	bos, eos  int
	pad       int
	family    string
	content   []byte // tokenizer.json as read, re-written by Save
	// chatTemplate is the Jinja chat template; chatTemplateFile the file it was read from.
	chatTemplate, chatTemplateFile string
	config                         map[string]any // tokenizer_config.json as read
}

// tokenDecoder is one step of tokenizers' decode chain: it maps the token strings.
type tokenDecoder func([]string) []string

// parseHF builds the tokenizer from tokenizer.json content; file names it in errors.
func parseHF(content []byte, file string, cfg *api.Config, raw map[string]any) (*HF, error) {
	var tj tokenizerJSON
	if err := json.Unmarshal(content, &tj); err != nil {
		return nil, errors.Errorf("tokenizer: parsing %s: %v", file, err)
	}
	fail := func(format string, args ...any) error {
		return errors.Errorf("tokenizer: %s: %s", file, fmt.Sprintf(format, args...))
	}
	m := &tj.Model
	if m.Type != "BPE" && !(m.Type == "" && m.Vocab != nil) {
		return nil, fail("model.type %q is not supported (BPE only: Llama, Qwen, Gemma, GPT-2 style tokenizers)", m.Type)
	}
	if m.Dropout != nil && *m.Dropout != 0 {
		return nil, fail("model.dropout %g: BPE dropout is not supported for encoding", *m.Dropout)
	}
	if m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "" {
		return nil, fail("model.continuing_subword_prefix %q is not supported", *m.ContinuingSubwordPrefix)
	}
	if m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "" {
		return nil, fail("model.end_of_word_suffix %q is not supported", *m.EndOfWordSuffix)
	}
	if len(m.Vocab) == 0 {
		return nil, fail("model.vocab is empty")
	}
	h := &HF{idToToken: make(map[int]string, len(m.Vocab)+len(tj.AddedTokens)), special: map[int]bool{},
		content: content, config: raw, bos: -1, eos: -1, pad: -1}
	for tok, id := range m.Vocab {
		if id < 0 || id >= MaxTokenID {
			return nil, fail("model.vocab[%q] = %d is outside [0, %d)", tok, id, MaxTokenID)
		}
		h.idToToken[id] = tok
		h.vocabSize = max(h.vocabSize, id+1)
	}
	bm := bpeModel{vocab: m.Vocab, unk: -1, ignoreMerges: m.IgnoreMerges, byteFallback: m.ByteFallback, fuseUnk: m.FuseUnk}
	if m.UnkToken != nil {
		id, ok := m.Vocab[*m.UnkToken]
		if !ok {
			return nil, fail("model.unk_token %q is not in the vocabulary", *m.UnkToken)
		}
		bm.unk = id
	}
	for b := range 256 {
		bm.byteTokens[b] = -1
		if id, ok := m.Vocab[byteTokenName(byte(b))]; ok {
			bm.byteTokens[b] = id
		}
	}
	pairs, err := parseMerges(m.Merges)
	if err != nil {
		return nil, fail("model.merges: %v", err)
	}
	bm.merges = make(map[[2]int]merge, len(pairs))
	for rank, p := range pairs {
		a, okA := m.Vocab[p[0]]
		b, okB := m.Vocab[p[1]]
		id, okM := m.Vocab[p[0]+p[1]]
		if !okA || !okB || !okM {
			return nil, fail("model.merges[%d] (%q %q): a part or the merged token is not in the vocabulary", rank, p[0], p[1])
		}
		if _, dup := bm.merges[[2]int{a, b}]; !dup {
			bm.merges[[2]int{a, b}] = merge{rank: rank, id: id}
		}
	}
	h.model = bm
	// Added tokens. go-huggingface's hftokenizer loops without end (allocating until the process
	// dies) on an added token whose content is empty; this package no longer calls it to encode,
	// and refuses such a file here, where an empty pattern would match everywhere.
	seen := map[string]bool{}
	for i, at := range tj.AddedTokens {
		switch {
		case at.Content == "":
			return nil, fail("added_tokens[%d] (id %d) has empty content", i, at.ID)
		case at.ID < 0 || at.ID >= MaxTokenID:
			return nil, fail("added_tokens[%d] (%q) has id %d outside [0, %d)", i, at.Content, at.ID, MaxTokenID)
		case seen[at.Content]:
			return nil, fail("added_tokens[%d]: %q is listed twice", i, at.Content)
		}
		seen[at.Content] = true
		h.idToToken[at.ID] = at.Content
		h.vocabSize = max(h.vocabSize, at.ID+1)
		if at.Special {
			h.special[at.ID] = true
		}
	}
	if h.normalize, err = parseNormalizer(tj.Normalizer, "normalizer"); err != nil {
		return nil, fail("%v", err)
	}
	if h.preTok, _, err = parsePreTokenizer(tj.PreTokenizer, "pre_tokenizer"); err != nil {
		return nil, fail("%v", err)
	}
	if h.decoders, err = parseDecoder(tj.Decoder, "decoder"); err != nil {
		return nil, fail("%v", err)
	}
	// Tokens matched on the raw text (special, or normalized: false) and on the normalized text.
	var rawTokens, normTokens []*addedTokenJSON
	for _, at := range sortedAdded(tj.AddedTokens) {
		if at.Special || !at.Normalized || h.normalize == nil {
			rawTokens = append(rawTokens, at)
		} else {
			normTokens = append(normTokens, at)
		}
	}
	h.added = newAddedMatcher(rawTokens)
	var normAdded *addedMatcher
	if len(normTokens) > 0 {
		normAdded = newAddedMatcher(normTokens)
	}
	h.normAdded = normAdded
	h.setSpecials(cfg)
	return h, nil
}

// parseMerges reads merges as ["a b", …] (tokenizers < 0.20) or [["a", "b"], …].
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		out := make([][2]string, len(strs))
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok || strings.Contains(b, " ") {
				return nil, errors.Errorf("entry %d %q is not two tokens separated by one space", i, s)
			}
			out[i] = [2]string{a, b}
		}
		return out, nil
	}
	var lists [][]string
	if err := json.Unmarshal(raw, &lists); err != nil {
		return nil, errors.Errorf("expected a list of \"a b\" strings or of [a, b] pairs: %v", err)
	}
	out := make([][2]string, len(lists))
	for i, l := range lists {
		if len(l) != 2 {
			return nil, errors.Errorf("entry %d has %d tokens, want 2", i, len(l))
		}
		out[i] = [2]string{l[0], l[1]}
	}
	return out, nil
}

// parseDecoder compiles tokenizers' decoders: ByteLevel, Replace, ByteFallback, Fuse, Strip and
// Sequence (nil JSON: the token strings are joined).
func parseDecoder(raw json.RawMessage, key string) ([]tokenDecoder, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, errors.Errorf("%s: %v", key, err)
	}
	switch c.Type {
	case "ByteLevel":
		inv := map[rune]byte{}
		for b, r := range bytesToUnicode() {
			inv[r] = byte(b)
		}
		return []tokenDecoder{func(toks []string) []string {
			var b strings.Builder
			for _, t := range toks {
				for _, r := range t {
					if by, ok := inv[r]; ok {
						b.WriteByte(by)
					} else {
						b.WriteRune(r)
					}
				}
			}
			return []string{b.String()}
		}}, nil
	case "Replace":
		if c.Pattern == nil || c.Pattern.String == nil || *c.Pattern.String == "" {
			return nil, errors.Errorf("%s: Replace decoders with a non-empty String pattern only", key)
		}
		old, repl := *c.Pattern.String, c.Content
		return []tokenDecoder{func(toks []string) []string {
			for i, t := range toks {
				toks[i] = strings.ReplaceAll(t, old, repl)
			}
			return toks
		}}, nil
	case "ByteFallback":
		return []tokenDecoder{func(toks []string) []string {
			for i, t := range toks {
				if len(t) == 6 && strings.HasPrefix(t, "<0x") && t[5] == '>' {
					if v, err := strconv.ParseUint(t[3:5], 16, 8); err == nil {
						toks[i] = string([]byte{byte(v)})
					}
				}
			}
			return toks
		}}, nil
	case "Fuse":
		return []tokenDecoder{func(toks []string) []string { return []string{strings.Join(toks, "")} }}, nil
	case "Strip":
		content, start, stop := c.Content, c.Start, c.Stop
		return []tokenDecoder{func(toks []string) []string {
			for i, t := range toks {
				for k := 0; k < start && strings.HasPrefix(t, content) && content != ""; k++ {
					t = t[len(content):]
				}
				for k := 0; k < stop && strings.HasSuffix(t, content) && content != ""; k++ {
					t = t[:len(t)-len(content)]
				}
				toks[i] = t
			}
			return toks
		}}, nil
	case "Sequence":
		var list []json.RawMessage
		if err := json.Unmarshal(c.Decoders, &list); err != nil {
			return nil, errors.Errorf("%s.decoders: %v", key, err)
		}
		var out []tokenDecoder
		for i, sub := range list {
			d, err := parseDecoder(sub, fmt.Sprintf("%s.decoders[%d]", key, i))
			if err != nil {
				return nil, err
			}
			out = append(out, d...)
		}
		return out, nil
	}
	return nil, errors.Errorf("%s: decoder type %q is not supported (ByteLevel, Replace, ByteFallback, Fuse, Strip, Sequence)", key, c.Type)
}

// setSpecials resolves BOS/EOS/PAD from tokenizer_config.json and the chat family from the vocabulary.
func (h *HF) setSpecials(cfg *api.Config) {
	idOf := func(s string) int {
		if id, ok := h.TokenID(s); ok && s != "" {
			return id
		}
		return -1
	}
	h.bos, h.eos, h.pad = idOf(cfg.BosToken), idOf(cfg.EosToken), idOf(cfg.PadToken)
	switch {
	case h.has("<|im_start|>"):
		h.family = "chatml" // Qwen
	case h.has("<|start_header_id|>"):
		h.family = "llama3"
	case h.has("<start_of_turn>"):
		h.family = "gemma"
	}
	if h.pad < 0 {
		h.pad = h.eos // a common convention; padding never reaches the loss
	}
}

func (h *HF) has(s string) bool { _, ok := h.TokenID(s); return ok }

// Encode returns the ids of text without special tokens added (special tokens written in the
// text are recognised, as tokenizers does by default).
func (h *HF) Encode(text string) []int {
	var ids []int
	for _, seg := range h.added.split(text) {
		if seg.id >= 0 {
			ids = append(ids, seg.id)
			continue
		}
		s := seg.text
		if h.normalize != nil {
			s = h.normalize(s)
		}
		for _, nseg := range h.normAdded.split(s) {
			if nseg.id >= 0 {
				ids = append(ids, nseg.id)
				continue
			}
			words := []string{nseg.text}
			if h.preTok != nil {
				words = h.preTok(nseg.text)
			}
			for _, w := range words {
				ids = h.model.encodeWord(w, ids)
			}
		}
	}
	return ids
}

// Decode returns the text of ids; special tokens and unknown ids are dropped.
func (h *HF) Decode(ids []int) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if t, ok := h.idToToken[id]; ok && !h.special[id] {
			toks = append(toks, t)
		}
	}
	return h.decode(toks)
}

func (h *HF) decode(toks []string) string {
	for _, d := range h.decoders {
		toks = d(toks)
	}
	return strings.Join(toks, "")
}

// TokenText is the text of one token (special tokens included; may be a partial UTF-8 sequence).
func (h *HF) TokenText(id int) string {
	t, ok := h.idToToken[id]
	if !ok {
		return ""
	}
	if h.special[id] {
		return t
	}
	return h.decode([]string{t})
}

func (h *HF) VocabSize() int { return h.vocabSize }
func (h *HF) BOS() int       { return h.bos }
func (h *HF) EOS() int       { return h.eos }
func (h *HF) PAD() int       { return h.pad }
func (h *HF) Family() string { return h.family }

// ChatTemplate returns the checkpoint's Jinja chat template and the file it came from
// (chat_template.jinja, or tokenizer_config.json's "chat_template": a string, or the entry named
// "default" of a list of {name, template}); "" if none.
func (h *HF) ChatTemplate() (source, file string) { return h.chatTemplate, h.chatTemplateFile }

// TokenID returns the id of a token string of the vocabulary or an added token (e.g. "<|im_end|>").
func (h *HF) TokenID(token string) (int, bool) {
	for _, seg := range h.added.split(token) {
		if seg.text == token && seg.id >= 0 {
			return seg.id, true
		}
	}
	id, ok := h.model.vocab[token]
	return id, ok
}

// Save copies tokenizer.json and tokenizer_config.json as they were read.
func (h *HF) Save(dir string) error {
	if err := atomicfile.WriteBytes(filepath.Join(dir, "tokenizer.json"), h.content); err != nil {
		return err
	}
	b, err := json.MarshalIndent(h.config, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, "tokenizer_config.json"), b); err != nil {
		return err
	}
	if filepath.Base(h.chatTemplateFile) == "chat_template.jinja" {
		return atomicfile.WriteBytes(filepath.Join(dir, "chat_template.jinja"), []byte(h.chatTemplate))
	}
	return nil
}
