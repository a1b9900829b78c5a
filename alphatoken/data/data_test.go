package data

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alphatoken/alphatoken/model/tokenizer"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "d.jsonl")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadExamplesFormats(t *testing.T) {
	tok := tokenizer.NewByteLevel()
	p := writeFile(t, `{"prompt": "ab", "response": "c"}

{"prompt_ids": [1, 2, 3], "response_ids": [4, 5], "extra": 1}
{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "r"}]}
`)
	exs, st, err := ReadExamples(p, tok, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Examples != 3 || len(exs) != 3 {
		t.Fatalf("got %d examples", len(exs))
	}
	// Text: <bos> a b | c <eos>
	if !slices.Equal(exs[0].IDs, []int{tokenizer.ByteBOS, 'a', 'b', 'c', tokenizer.ByteEOS}) || exs[0].PromptLen != 3 {
		t.Errorf("text example: %v prompt %d", exs[0].IDs, exs[0].PromptLen)
	}
	if !slices.Equal(exs[0].LabelPositions(), []int{2, 3}) {
		t.Errorf("label positions %v", exs[0].LabelPositions())
	}
	// Pre-tokenized: exactly as given, no specials.
	if !slices.Equal(exs[1].IDs, []int{1, 2, 3, 4, 5}) || exs[1].PromptLen != 3 {
		t.Errorf("ids example: %v prompt %d", exs[1].IDs, exs[1].PromptLen)
	}
	if !strings.HasSuffix(exs[1].Source, "d.jsonl:3") {
		t.Errorf("source %q should name line 3", exs[1].Source)
	}
	want := append([]int{tokenizer.ByteBOS}, tok.Encode("System: s\nUser: u\nAssistant: ")...)
	if !slices.Equal(exs[2].Prompt(), want) || !slices.Equal(exs[2].Response(), []int{'r', tokenizer.ByteEOS}) {
		t.Errorf("chat example: prompt %q response %v", tok.Decode(exs[2].Prompt()), exs[2].Response())
	}
}

func TestReadExamplesErrors(t *testing.T) {
	tok := tokenizer.NewByteLevel()
	cases := map[string]string{
		"{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"a\", \"response\": \"b\"\n": "d.jsonl:2: malformed JSON",
		`{"prompt": "a", "response": ""}`:                  "d.jsonl:1: empty response",
		`{"prompt_ids": [1], "response_ids": []}`:          "d.jsonl:1: empty response",
		`{"prompt_ids": [1], "response_ids": [999]}`:       "outside the vocabulary",
		`{"messages": [{"role": "user", "content": "a"}]}`: "end with an assistant turn",
		`{"txt": "a"}`:    "d.jsonl:1: columns [] are not an SFT format",
		`{"prompt": "a"}`: "d.jsonl:1: columns [prompt] are not an SFT format",
		"":                "holds no examples",
	}
	for content, want := range cases {
		_, _, err := ReadExamples(writeFile(t, content), tok, Options{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: want error containing %q, got %v", content, want, err)
		}
	}
}

func TestTruncation(t *testing.T) {
	tok := tokenizer.NewByteLevel()
	p := writeFile(t, `{"prompt": "abc", "response": "defghij"}`+"\n")
	exs, st, err := ReadExamples(p, tok, Options{MaxLen: 6})
	if err != nil {
		t.Fatal(err)
	}
	if st.Truncated != 1 || len(exs[0].IDs) != 6 || exs[0].PromptLen != 4 {
		t.Fatalf("truncation: %+v %v", st, exs[0].IDs)
	}
	if _, _, err := ReadExamples(p, tok, Options{MaxLen: 4}); err == nil || !strings.Contains(err.Error(), "prompt alone") {
		t.Fatalf("want prompt-too-long error, got %v", err)
	}
}

func TestMakeBatch(t *testing.T) {
	exs := []Example{{IDs: []int{9, 1, 2, 3}, PromptLen: 2}, {IDs: []int{9, 4, 5}, PromptLen: 1}}
	b := MakeBatch(exs, []int{0, 1}, 3, 6, 0)
	if b.NumTokens != 4 || len(b.Tokens) != 3 || b.T() != 6 {
		t.Fatalf("batch: %+v", b)
	}
	if !slices.Equal(b.Weights[0], []float32{0, 1, 1, 0, 0, 0}) || !slices.Equal(b.Targets[0][:3], []int32{1, 2, 3}) {
		t.Errorf("row 0: w %v tgt %v", b.Weights[0], b.Targets[0])
	}
	if !slices.Equal(b.Weights[1], []float32{1, 1, 0, 0, 0, 0}) || b.Index[2] != -1 {
		t.Errorf("row 1: w %v; padding row index %d", b.Weights[1], b.Index[2])
	}
}

func TestSamplerDeterministicAndComplete(t *testing.T) {
	lengths := make([]int, 103)
	for i := range lengths {
		lengths[i] = (i * 37) % 50
	}
	s := Sampler{Lengths: lengths, BatchSize: 8, Seed: 5}
	a, b := s.Epoch(2), s.Epoch(2)
	if !slices.EqualFunc(a, b, slices.Equal) {
		t.Fatal("same (seed, epoch) gave different batches")
	}
	if slices.EqualFunc(a, s.Epoch(3), slices.Equal) {
		t.Fatal("different epochs gave identical batches")
	}
	seen := map[int]bool{}
	for _, batch := range a {
		for _, i := range batch {
			if seen[i] {
				t.Fatalf("example %d twice", i)
			}
			seen[i] = true
		}
	}
	if len(seen) != len(lengths) || len(a) != s.BatchesPerEpoch() {
		t.Fatalf("epoch covers %d of %d examples", len(seen), len(lengths))
	}
}
