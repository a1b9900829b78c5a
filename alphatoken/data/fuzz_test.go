package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// fuzzSeeds are JSONL lines of every format, and broken ones.
var fuzzSeeds = []string{
	`{"text": "abc"}`,
	`{"prompt": "ab", "completion": "c"}`,
	`{"prompt": "ab", "response": "c"}`,
	`{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "r"}]}`,
	`{"prompt": [{"role": "user", "content": "ab"}], "completion": [{"role": "assistant", "content": "c"}]}`,
	`{"prompt_ids": [1, 2], "completion_ids": [3]}`,
	`{"prompt": "The sky is", "chosen": " blue.", "rejected": " green."}`,
	`{"chosen": "The sky is blue.", "rejected": "The sky is green."}`,
	`{"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]}`,
	`{"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [3]}`,
	`{"messAges":[{}]}`,
	`{"messages": [{"role": "", "content": "hi"}]}`,
	"{\"prompt\": \"a\xff\", \"completion\": \"b\"}",
	`{"prompt": "a\udc00", "completion": "b"}`,
	`null`,
}

// FuzzReadJSONL: any file content gives examples, pairs and prompts or errors naming file:line,
// never a panic; every example has a prompt, a response and ids inside the vocabulary.
func FuzzReadJSONL(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s + "\n"))
	}
	f.Add([]byte(strings.Join(fuzzSeeds[:6], "\n")))
	tok := tokenizer.NewByteLevel()
	f.Fuzz(func(t *testing.T, content []byte) {
		path := filepath.Join(t.TempDir(), "d.jsonl")
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, maxLen := range []int{0, 8} {
			opts := Options{MaxLen: maxLen}
			if exs, _, err := ReadExamples(path, tok, opts); err == nil {
				for _, ex := range exs {
					checkExample(t, ex, tok, maxLen)
				}
			} else if !strings.Contains(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
			if pairs, _, err := ReadPairs(path, tok, opts); err == nil {
				for _, p := range pairs {
					checkExample(t, p.Chosen, tok, maxLen)
					checkExample(t, p.Rejected, tok, maxLen)
				}
			}
			_, _ = ReadPrompts(path, tok, opts)
		}
	})
}

func checkExample(t *testing.T, ex Example, tok tokenizer.Tokenizer, maxLen int) {
	t.Helper()
	if ex.PromptLen < 1 || ex.PromptLen >= len(ex.IDs) || (maxLen > 0 && len(ex.IDs) > maxLen) {
		t.Fatalf("bad example %+v", ex)
	}
	for _, id := range ex.IDs {
		if id < 0 || id >= tok.VocabSize() {
			t.Fatalf("id %d outside the vocabulary", id)
		}
	}
}

// FuzzReadParquet: any file content named .parquet is read or refused with an error naming the
// file, never a panic.
func FuzzReadParquet(f *testing.F) {
	for _, rows := range [][]pqText{{{"a", "b"}}, {{"", ""}, {"x", "y"}}} {
		f.Add(parquetBytes(f, rows))
	}
	f.Add(parquetBytes(f, []pqRow{{Prompt: []pqMessage{{"user", "ab"}}, Completion: []pqMessage{{"assistant", "c"}}}}))
	f.Add(parquetBytes(f, []pqIDs{{PromptIDs: []int64{1}, CompletionIDs: []int64{2, 3}}}))
	f.Add([]byte("PAR1"))
	tok := tokenizer.NewByteLevel()
	f.Fuzz(func(t *testing.T, content []byte) {
		path := filepath.Join(t.TempDir(), "d.parquet")
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		exs, _, err := ReadExamples(path, tok, Options{})
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, ex := range exs {
			checkExample(t, ex, tok, 0)
		}
	})
}

// FuzzChatTemplate: checkpoint templates (the three real ones, and fuzzed sources) with fuzzed
// messages render or fail with an error naming the template file, never a panic.
func FuzzChatTemplate(f *testing.F) {
	var templates []string
	for _, name := range []string{"qwen3", "llama3", "gemma3"} {
		src, err := os.ReadFile(filepath.Join("testdata", "templates", name+".jinja"))
		if err != nil {
			f.Fatal(err)
		}
		templates = append(templates, string(src))
	}
	f.Add("", "Hi", "Hello", uint8(0))
	f.Add("{% for m in messages %}{{ m.role }}: {{ m.content | trim }}\n{% endfor %}", "a\n\n", "  b ", uint8(3))
	f.Add("{{ messages[1:] | tojson }}{% if loop is defined %}{% endif %}", "é", "✓", uint8(3))
	tok := tokenizer.NewByteLevel()
	f.Fuzz(func(t *testing.T, src, user, reply string, which uint8) {
		if int(which) < len(templates) {
			src = templates[which]
		} else if len(src) > 300 || strings.Contains(src, "range") || strings.Contains(src, "*") {
			// A template is code: range(10**9) or string repetition would run for as long as the
			// template says; the fuzzer explores syntax, not run time.
			return
		}
		j, err := NewJinjaTemplate(src, "fuzz.jinja", tok)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.jinja") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		msgs := []Message{{Role: "system", Content: reply}, {Role: "user", Content: user}}
		if _, _, err := j.RenderTurn(tok, msgs, reply); err != nil && !strings.Contains(err.Error(), "fuzz.jinja") {
			t.Fatalf("error does not name the file: %v", err)
		}
	})
}
