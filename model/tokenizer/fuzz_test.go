package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/gomlx/go-huggingface/tokenizers/api"
)

// fuzzTokenizerJSON is a small byte-level BPE tokenizer.json with the Qwen pre-tokenizer regex,
// a few merges and special tokens.
func fuzzTokenizerJSON() []byte {
	vocab := map[string]int{}
	for b, r := range bytesToUnicode() {
		vocab[string(r)] = b
	}
	extra := []string{"ĠĠ", "ĠĠĠ", "de", "def", "Ġf", "in", "Ġin", "12", "123"}
	for i, e := range extra {
		vocab[e] = 256 + i
	}
	tj := map[string]any{
		"added_tokens": []map[string]any{
			{"id": 300, "content": "<|im_start|>", "special": true},
			{"id": 301, "content": "<|im_end|>", "special": true},
			{"id": 302, "content": "<think>", "special": false, "lstrip": true, "rstrip": true},
		},
		"normalizer": nil,
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": qwenPattern}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}}},
		"decoder": map[string]any{"type": "ByteLevel"},
		"model": map[string]any{"type": "BPE", "vocab": vocab, "ignore_merges": true,
			"merges": []string{"Ġ Ġ", "ĠĠ Ġ", "d e", "de f", "Ġ f", "i n", "Ġ in", "1 2", "12 3"}},
	}
	data, _ := json.Marshal(tj)
	return data
}

// FuzzLoadTokenizer: any tokenizer.json content loads or fails with an error, never a panic or an
// unbounded allocation (issue 14 #6); a loaded tokenizer encodes a few strings to ids inside its
// vocabulary.
func FuzzLoadTokenizer(f *testing.F) {
	f.Add(fuzzTokenizerJSON())
	f.Add([]byte(`{"added_tokens": [{"id": 5, "content": ""}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]], "byte_fallback": true}, "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		h, err := parseHF(data, "tokenizer.json", &api.Config{}, map[string]any{})
		if err != nil {
			return
		}
		for _, s := range []string{"", "def f():\n    x = 123", "<|im_start|>héllo<|im_end|> <think> ✓"} {
			for _, id := range h.Encode(s) {
				if id < 0 || id >= h.VocabSize() {
					t.Fatalf("%q: id %d outside [0, %d)", s, id, h.VocabSize())
				}
			}
		}
	})
}

// FuzzEncode: on a byte-level tokenizer every valid UTF-8 string decodes back exactly, and the
// special tokens in it come out as their ids.
func FuzzEncode(f *testing.F) {
	h, err := parseHF(fuzzTokenizerJSON(), "tokenizer.json", &api.Config{}, map[string]any{})
	if err != nil {
		f.Fatal(err)
	}
	var hard []string
	if data, err := os.ReadFile(filepath.Join("testdata", "hard_strings.json")); err == nil {
		_ = json.Unmarshal(data, &hard)
	}
	for _, s := range hard {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		ids := h.Encode(s)
		// Special tokens are dropped by Decode; the rest must come back byte for byte.
		var kept []int
		want := s
		for _, seg := range h.added.split(s) {
			if seg.id >= 0 && h.special[seg.id] {
				continue
			}
			kept = append(kept, h.Encode(seg.text)...)
		}
		if got := h.Decode(ids); got != h.Decode(kept) {
			t.Fatalf("%q: decode %q vs segment-wise %q", want, got, h.Decode(kept))
		}
		if !slices.ContainsFunc(ids, func(id int) bool { return h.special[id] }) && !containsAdded(h, s) {
			if got := h.Decode(ids); got != s {
				t.Fatalf("%q: decodes to %q", s, got)
			}
		}
	})
}

func containsAdded(h *HF, s string) bool {
	for _, seg := range h.added.split(s) {
		if seg.id >= 0 {
			return true
		}
	}
	return false
}
