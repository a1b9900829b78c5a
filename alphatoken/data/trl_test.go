package data

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// TestTRLFormats: every TRL SFT format reads to the expected prompt/response split, with the
// plain template: <bos> prompt | response <eos>.
func TestTRLFormats(t *testing.T) {
	tok := tokenizer.NewByteLevel()
	bos, eos := tokenizer.ByteBOS, tokenizer.ByteEOS
	enc := func(s string) []int { return tok.Encode(s) }
	cat := func(parts ...[]int) []int { return slices.Concat(parts...) }
	cases := []struct {
		line           string
		prompt, answer []int
	}{
		{`{"text": "abc"}`, []int{bos}, cat(enc("abc"), []int{eos})},
		{`{"prompt": "ab", "completion": "c"}`, cat([]int{bos}, enc("ab")), cat(enc("c"), []int{eos})},
		{`{"prompt": "ab", "response": "c"}`, cat([]int{bos}, enc("ab")), cat(enc("c"), []int{eos})},
		{`{"messages": [{"role": "user", "content": "ab"}, {"role": "assistant", "content": "c"}]}`, cat([]int{bos}, enc("ab")), cat(enc("c"), []int{eos})},
		{`{"prompt": [{"role": "user", "content": "ab"}], "completion": [{"role": "assistant", "content": "c"}]}`, cat([]int{bos}, enc("ab")), cat(enc("c"), []int{eos})},
		{`{"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], "completion": [{"role": "assistant", "content": "c"}], "id": 7}`,
			cat([]int{bos}, enc("System: s\nUser: u\nAssistant: ")), cat(enc("c"), []int{eos})},
		{`{"prompt_ids": [1, 2], "completion_ids": [3]}`, []int{1, 2}, []int{3}},
		{`{"prompt_ids": [1, 2], "response_ids": [3, 4]}`, []int{1, 2}, []int{3, 4}},
	}
	for _, c := range cases {
		exs, _, err := ReadExamples(writeFile(t, c.line), tok, Options{})
		if err != nil {
			t.Errorf("%s: %v", c.line, err)
			continue
		}
		if !slices.Equal(exs[0].Prompt(), c.prompt) || !slices.Equal(exs[0].Response(), c.answer) {
			t.Errorf("%s:\n prompt %v response %v\n want %v %v", c.line, exs[0].Prompt(), exs[0].Response(), c.prompt, c.answer)
		}
	}
}

// TestBadInputErrors: issue 14 #2 and #9 and malformed columns: errors naming file:line and the column.
func TestBadInputErrors(t *testing.T) {
	tok := tokenizer.NewByteLevel()
	cases := map[string]string{
		`{"messages": [{"role": "", "content": "hi"}, {"role": "assistant", "content": "x"}]}`: `d.jsonl:1: messages[0]: empty role`,
		`{"messAges": [{}]}`: `d.jsonl:1: columns [] are not an SFT format`,
		`{"messages": [{}, {"role": "assistant", "content": "x"}]}`:                                        `messages[0]: message has no "role"`,
		`{"messages": [{"Role": "user", "content": "a"}, {"role": "assistant", "content": "x"}]}`:          `messages[0]: message has no "role"`,
		`{"messages": [{"role": "wizard", "content": "a"}, {"role": "assistant", "content": "x"}]}`:        `unknown role "wizard"`,
		`{"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "x"}]}`:            `"content" must be a string`,
		"{\"prompt\": \"a\xff\", \"completion\": \"b\"}":                                                   `d.jsonl:1: invalid UTF-8 at byte 14`,
		`{"prompt": "a\udc00", "completion": "b"}`:                                                         `column "prompt": invalid \u escape`,
		`{"prompt": "a", "completion": [{"role": "assistant", "content": "b"}]}`:                           `both be strings or both lists`,
		`{"prompt": [{"role": "user", "content": "a"}], "completion": [{"role": "user", "content": "b"}]}`: `column "completion" must be one assistant message`,
		`{"prompt_ids": [1], "completion_ids": "x"}`:                                                       `column "completion_ids" must be a list of integer token ids`,
		`{"prompt": "a", "chosen": "b", "rejected": "c"}`:                                                  `a preference pair`,
		`{"text": "a", "messages": []}`:                                                                    `columns [text messages] are not an SFT format`,
		`null`:                                                                                             `must be a JSON object`,
	}
	for content, want := range cases {
		_, _, err := ReadExamples(writeFile(t, content), tok, Options{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want error containing %q, got %v", content, want, err)
		}
	}
	// ReadPrompts (fisher, generate) validates roles too.
	for _, content := range []string{`{"messages": [{"role": "", "content": "hi"}]}`, `{"prompt": [{"role": "", "content": "hi"}]}`} {
		_, err := ReadPrompts(writeFile(t, content), tok, Options{})
		if err == nil || !strings.Contains(err.Error(), "d.jsonl:1") || !strings.Contains(err.Error(), "empty role") {
			t.Errorf("ReadPrompts %s: got %v", content, err)
		}
	}
	// A U+FFFD the text really contains is kept.
	exs, _, err := ReadExamples(writeFile(t, `{"prompt": "a\ufffd", "completion": "b"}`), tok, Options{})
	if err != nil || !strings.Contains(tok.Decode(exs[0].IDs), "\ufffd") {
		t.Errorf("U+FFFD: %v", err)
	}
}

// TestPairs: standard, conversational, implicit-prompt (TRL's extract_prompt) and pre-tokenized
// preference pairs, and the bad pairs.
func TestPairs(t *testing.T) {
	tok := tokenizer.NewByteLevel()
	content := strings.Join([]string{
		`{"prompt": "The sky is", "chosen": " blue.", "rejected": " green."}`,
		`{"chosen": "The sky is blue.", "rejected": "The sky is green."}`,
		`{"prompt": [{"role": "user", "content": "The sky is"}], "chosen": [{"role": "assistant", "content": " blue."}], "rejected": [{"role": "assistant", "content": " green."}]}`,
		`{"chosen": [{"role": "user", "content": "The sky is"}, {"role": "assistant", "content": " blue."}], "rejected": [{"role": "user", "content": "The sky is"}, {"role": "assistant", "content": " green."}]}`,
		`{"prompt": [{"role": "user", "content": "ignored: not the kind of chosen"}], "chosen": "The sky is blue.", "rejected": "The sky is green."}`,
	}, "\n")
	pairs, _, err := ReadPairs(writeFile(t, content), tok, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pairs {
		if got := tok.Decode(p.Chosen.Prompt()); got != "The sky is" {
			t.Errorf("pair %d: prompt %q", i, got)
		}
		if c, r := tok.Decode(p.Chosen.Response()), tok.Decode(p.Rejected.Response()); c != " blue." || r != " green." {
			t.Errorf("pair %d: chosen %q rejected %q", i, c, r)
		}
	}
	ids, _, err := ReadPairs(writeFile(t, `{"prompt_ids": [1, 2], "chosen_ids": [3], "rejected_ids": [4, 5]}`), tok, Options{})
	if err != nil || !slices.Equal(ids[0].Rejected.IDs, []int{1, 2, 4, 5}) || ids[0].Chosen.PromptLen != 2 {
		t.Fatalf("ids pair: %v %+v", err, ids)
	}
	bad := map[string]string{
		`{"prompt": "a", "chosen": "b", "rejected": "b"}`:            "d.jsonl:1: chosen and rejected are identical",
		`{"prompt": "a", "chosen": "", "rejected": "b"}`:             `d.jsonl:1: empty chosen`,
		`{"chosen": "xyz", "rejected": "abc"}`:                       "share no prefix",
		`{"prompt_ids": [1], "chosen_ids": [], "rejected_ids": [2]}`: "empty chosen or rejected",
		`{"prompt": "a", "chosen": "bbbbbbbbbbbb", "rejected": "c"}`: "prompt + chosen has 15 tokens, longer than the context 8",
		`{"prompt": "a", "completion": "b"}`:                         "not a preference format",
	}
	for c, want := range bad {
		_, _, err := ReadPairs(writeFile(t, c), tok, Options{MaxLen: 8})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want %q, got %v", c, want, err)
		}
	}
}

// TestExtractPrompt follows TRL's extract_prompt, quirks included: the space before the first
// difference goes to the completions, and without a difference the prompt stops one short of
// the shorter side.
func TestExtractPrompt(t *testing.T) {
	eq := func(a, b rune) bool { return a == b }
	sp := func(r rune) bool { return r == ' ' }
	cases := []struct{ c, r, p, c2, r2 string }{
		{"The sky is blue.", "The sky is green.", "The sky is", " blue.", " green."},
		{"abc", "abd", "ab", "c", "d"},
		{"abc", "abcd", "ab", "c", "cd"},
	}
	for _, c := range cases {
		p, c2, r2, ok := extractPrompt([]rune(c.c), []rune(c.r), eq, sp)
		if !ok || string(p) != c.p || string(c2) != c.c2 || string(r2) != c.r2 {
			t.Errorf("%q/%q: %q %q %q %v", c.c, c.r, string(p), string(c2), string(r2), ok)
		}
	}
}

type pqMessage struct {
	Role    string `parquet:"role"`
	Content string `parquet:"content"`
}

type pqRow struct {
	Prompt     []pqMessage `parquet:"prompt,list"`
	Completion []pqMessage `parquet:"completion,list"`
}

type pqIDs struct {
	PromptIDs     []int64 `parquet:"prompt_ids,list"`
	CompletionIDs []int64 `parquet:"completion_ids,list"`
}

type pqText struct {
	Prompt     string `parquet:"prompt"`
	Completion string `parquet:"completion"`
}

type pqOther struct {
	Foo string `parquet:"foo"`
}

func parquetBytes[T any](t testing.TB, rows []T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[T](&buf)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeParquet[T any](t *testing.T, rows []T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "d.parquet")
	if err := os.WriteFile(p, parquetBytes(t, rows), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestParquet: Parquet rows read exactly as the same JSONL lines; errors name the file, row and column.
func TestParquet(t *testing.T) {
	tok := tokenizer.NewByteLevel()
	conv := writeParquet(t, []pqRow{
		{Prompt: []pqMessage{{"user", "ab"}}, Completion: []pqMessage{{"assistant", "c"}}},
		{Prompt: []pqMessage{{"system", "s"}, {"user", "u"}}, Completion: []pqMessage{{"assistant", "dd"}}},
	})
	jsonl := writeFile(t, `{"prompt": [{"role": "user", "content": "ab"}], "completion": [{"role": "assistant", "content": "c"}]}
{"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], "completion": [{"role": "assistant", "content": "dd"}]}`)
	a, _, err := ReadExamples(conv, tok, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := ReadExamples(jsonl, tok, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		if !slices.Equal(a[i].IDs, b[i].IDs) || a[i].PromptLen != b[i].PromptLen {
			t.Errorf("row %d: parquet %v/%d, jsonl %v/%d", i, a[i].IDs, a[i].PromptLen, b[i].IDs, b[i].PromptLen)
		}
	}
	if !strings.HasSuffix(a[1].Source, "d.parquet row 1") {
		t.Errorf("source %q", a[1].Source)
	}
	ids := writeParquet(t, []pqIDs{{PromptIDs: []int64{1, 2}, CompletionIDs: []int64{3}}})
	if exs, _, err := ReadExamples(ids, tok, Options{}); err != nil || !slices.Equal(exs[0].IDs, []int{1, 2, 3}) {
		t.Errorf("ids: %v %v", err, exs)
	}
	cases := []struct {
		path, want string
	}{
		{writeParquet(t, []pqText{{"a", "b"}, {"a", ""}}), "d.parquet row 1: empty completion"},
		{writeParquet(t, []pqText{{"a\xffb", "b"}}), `d.parquet row 0: column "prompt": invalid UTF-8`},
		{writeParquet(t, []pqRow{{Prompt: []pqMessage{{"", "a"}}, Completion: []pqMessage{{"assistant", "b"}}}}), "d.parquet row 0: prompt[0]: empty role"},
		{writeParquet(t, []pqIDs{{PromptIDs: []int64{1}, CompletionIDs: []int64{999}}}), "completion_ids[0] = 999 is outside the vocabulary"},
		{writeParquet(t, []pqOther{{"x"}}), "has none of the dataset columns"},
		{writeFile(t, "not parquet"), ""},
	}
	cases[len(cases)-1].path = strings.TrimSuffix(cases[len(cases)-1].path, ".jsonl") + ".parquet"
	if err := os.WriteFile(cases[len(cases)-1].path, []byte("PAR1 not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases[len(cases)-1].want = "is not a readable Parquet file"
	for _, c := range cases {
		_, _, err := ReadExamples(c.path, tok, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path) {
			t.Errorf("%s: want %q, got %v", c.path, c.want, err)
		}
	}
}
