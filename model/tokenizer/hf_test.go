package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Pre-tokenizer patterns of the real files (tokenizer.json pre_tokenizer.pretokenizers[0]).
const (
	qwenPattern   = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

func splitPreTokenizer(t *testing.T, pattern string) preTokenizer {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"type": "Split", "pattern": map[string]string{"Regex": pattern},
		"behavior": "Isolated", "invert": false})
	p, _, err := parsePreTokenizer(raw, "pre_tokenizer")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Bug 1 of go-huggingface's hftokenizer (v0.4.8): Go's regexp cannot compile \s+(?!\S), and the
// library then splits on single spaces, so indentation became one token per space
// (220,220,220 for Qwen3/Llama 3 where the models have 262 = "   "). The look-ahead keeps the last
// space of a run for the next word.
func TestBugRunsOfSpacesPreTokenizer(t *testing.T) {
	for _, pattern := range []string{qwenPattern, llama3Pattern} {
		got := splitPreTokenizer(t, pattern)("def f():\n    if x  \n")
		want := []string{"def", " f", "():\n", "   ", " if", " x", "  \n"}
		if !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// Bug 2: Llama 3 splits digits in groups of at most three (\p{N}{1,3}); without the regex the
// whole run was one word and BPE merged it as 123,456,78,90,….
func TestBugLlama3DigitGroups(t *testing.T) {
	got := splitPreTokenizer(t, llama3Pattern)("12345678901234567890")
	want := []string{"123", "456", "789", "012", "345", "678", "90"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := splitPreTokenizer(t, qwenPattern)("2024"); !slices.Equal(got, []string{"2", "0", "2", "4"}) {
		t.Errorf("Qwen digits: %q", got)
	}
}

// testTokenizerJSON builds a small byte-level BPE tokenizer.json: the 256 byte symbols, the given
// extra tokens and merges.
func testTokenizerJSON(t *testing.T, extra map[string]int, merges []string, model map[string]any, added []map[string]any) string {
	t.Helper()
	vocab := map[string]int{}
	for b, r := range bytesToUnicode() {
		vocab[string(r)] = b
	}
	for k, v := range extra {
		vocab[k] = v
	}
	m := map[string]any{"type": "BPE", "vocab": vocab, "merges": merges, "dropout": nil, "unk_token": nil}
	for k, v := range model {
		m[k] = v
	}
	tj := map[string]any{
		"added_tokens":  added,
		"normalizer":    nil,
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
		"decoder":       map[string]any{"type": "ByteLevel"},
		"model":         m,
	}
	data, _ := json.Marshal(tj)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Bug 3: ignore_merges (Llama 3): a word that is itself in the vocabulary is one token even when
// the merges would not build it.
func TestIgnoreMerges(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		dir := testTokenizerJSON(t, map[string]int{"ab": 300, "abc": 301}, []string{"a b"}, map[string]any{"ignore_merges": ignore}, nil)
		tok, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		want := []int{300, 'c'}
		if ignore {
			want = []int{301}
		}
		if got := tok.Encode("abc"); !slices.Equal(got, want) {
			t.Errorf("ignore_merges %v: %v, want %v", ignore, got, want)
		}
		if d := tok.Decode(tok.Encode("abc abd")); d != "abc abd" {
			t.Errorf("decode %q", d)
		}
	}
}

// Merges apply lowest rank first, leftmost on ties, repeatedly (a 3-level merge tree).
func TestBPEMergeOrder(t *testing.T) {
	dir := testTokenizerJSON(t, map[string]int{"aa": 300, "aaa": 301, "aaaa": 302},
		[]string{"a a", "aa a", "aa aa"}, nil, nil)
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	// aaaaa: a a a a a → aa a a a → aa aa a ("a a" rank 0 before "aa a" rank 1) → aa aaa ("aa a"
	// rank 1 before "aa aa" rank 2); aaaa: aa a a → aa aa → aaaa.
	if got := tok.Encode("aaaaa"); !slices.Equal(got, []int{300, 301}) {
		t.Errorf("aaaaa: %v", got)
	}
	if got := tok.Encode("aaaa"); !slices.Equal(got, []int{302}) {
		t.Errorf("aaaa: %v", got)
	}
}

// Bug 4: byte_fallback (Gemma 3): a character outside the vocabulary becomes its UTF-8 bytes as
// <0xXX> tokens; hftokenizer gave <unk> (emoji, "\r", NBSP, control characters).
func TestByteFallback(t *testing.T) {
	vocab := map[string]any{"<unk>": 0, "a": 1, "<0xE2>": 2, "<0x9C>": 3, "<0x93>": 4, "▁": 5}
	tj := map[string]any{
		"normalizer":    map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"},
		"pre_tokenizer": map[string]any{"type": "Split", "pattern": map[string]any{"String": " "}, "behavior": "MergedWithPrevious", "invert": false},
		"decoder": map[string]any{"type": "Sequence", "decoders": []any{
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": "▁"}, "content": " "},
			map[string]any{"type": "ByteFallback"}, map[string]any{"type": "Fuse"}}},
		"model": map[string]any{"type": "BPE", "vocab": vocab, "merges": []any{}, "unk_token": "<unk>", "byte_fallback": true, "fuse_unk": true},
	}
	data, _ := json.Marshal(tj)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	// ✓ = E2 9C 93 (all byte tokens present); é = C3 A9 (absent: one fused unk for éé).
	if got := tok.Encode("a ✓éé"); !slices.Equal(got, []int{1, 5, 2, 3, 4, 0}) {
		t.Errorf("got %v", got)
	}
	if d := tok.Decode([]int{1, 5, 2, 3, 4}); d != "a ✓" {
		t.Errorf("decode %q", d)
	}
}

// TestLoadRefusesBadFiles: issue 14 #6 (an added token with empty content made go-huggingface
// allocate without bound) and unsupported components are errors naming the file and the key.
func TestLoadRefusesBadFiles(t *testing.T) {
	cases := []struct {
		model map[string]any
		added []map[string]any
		want  string
	}{
		{nil, []map[string]any{{"id": 400, "content": "", "special": true}}, "added_tokens[0] (id 400) has empty content"},
		{nil, []map[string]any{{"id": -1, "content": "<x>", "special": true}}, "added_tokens[0] (\"<x>\") has id -1"},
		{nil, []map[string]any{{"id": 1 << 30, "content": "<x>"}}, "outside [0, 16777216)"},
		{map[string]any{"type": "Unigram"}, nil, `model.type "Unigram" is not supported`},
		{map[string]any{"dropout": 0.1}, nil, "model.dropout"},
		{map[string]any{"merges": []string{"a b c"}}, nil, "model.merges"},
		{map[string]any{"merges": []string{"x y"}}, nil, "merged token is not in the vocabulary"},
	}
	for _, c := range cases {
		dir := testTokenizerJSON(t, map[string]int{"ab": 300}, []string{"a b"}, c.model, c.added)
		_, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Join(dir, "tokenizer.json")) {
			t.Errorf("want an error naming the file and %q, got %v", c.want, err)
		}
	}
}

// Per-bug checks on the real files (ids from the npm packages' JavaScript tokenizer).
func TestRealTokenizerBugs(t *testing.T) {
	cases := []struct {
		name, text string
		want       []int
	}{
		{"qwen3", "def fib(n):\n    if n < 2:\n        return n", []int{750, 15801, 1445, 982, 262, 421, 308, 366, 220, 17, 510, 286, 470, 308}},
		{"llama3", "def fib(n):\n    if n < 2:\n        return n", []int{755, 16178, 1471, 997, 262, 422, 308, 366, 220, 17, 512, 286, 471, 308}},
		{"llama3", "12345678901234567890", []int{4513, 10961, 16474, 11531, 12901, 17458, 1954}},
		{"gemma3", "if (x) {\n\treturn y;\n\t\t// nested\n}\r\nwindows\r\n", []int{584, 568, 236781, 236768, 642, 107, 255968, 2060, 570,
			236793, 107, 255969, 715, 43927, 107, 236783, 251, 107, 33908, 251, 107}},
	}
	for _, c := range cases {
		tok, err := Load(RealTokenizerDir(t, c.name))
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.Encode(c.text); !slices.Equal(got, c.want) {
			t.Errorf("%s %q:\n got %v\nwant %v", c.name, c.text, got, c.want)
		}
	}
}
