package data

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ardanlabs/jinja"

	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// jinjaPython is Debian's python3 with python3-jinja2 (.ci/setup installs it).
const jinjaPython = "/usr/bin/python3"

type jinjaCase struct {
	Messages            []Message `json:"messages"`
	AddGenerationPrompt bool      `json:"add_generation_prompt"`
}

// TestJinjaMatchesPython: the Qwen3, Llama 3 and Gemma 3 chat templates (as shipped in the npm
// packages' tokenizer_config.json) render identically here and in Debian's python3-jinja2 with
// transformers' environment, for conversations with system turns, several turns, code, unicode and
// whitespace, with and without the generation prompt; templates that raise do so in both.
func TestJinjaMatchesPython(t *testing.T) {
	if out, err := exec.Command(jinjaPython, "-c", "import jinja2").CombinedOutput(); err != nil {
		msg := "the chat-template check needs " + jinjaPython + " with python3-jinja2 (.ci/setup installs it): " + string(out)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	u := func(s string) Message { return Message{Role: "user", Content: s} }
	a := func(s string) Message { return Message{Role: "assistant", Content: s} }
	sys := Message{Role: "system", Content: "You are a careful assistant."}
	code := "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n"
	convs := [][]Message{
		{u("Hi")},
		{sys, u("Write fib in Python.")},
		{sys, u("Write fib in Python."), a(code)},
		{u("  padded question  \n"), a("  padded answer \n\n"), u("naïve café ✓ 日本語 😀")},
		{u("first"), a("<think>\nreasoning\n</think>\n\nanswer"), u("second"), a("done")},
		{u("a"), u("b")}, // Gemma raises: roles must alternate
		{a("starts with the assistant")},
	}
	var cases []jinjaCase
	for _, c := range convs {
		for _, gen := range []bool{true, false} {
			cases = append(cases, jinjaCase{c, gen})
		}
	}
	specials := map[string][2]string{"qwen3": {"", "<|im_end|>"}, "llama3": {"<|begin_of_text|>", "<|end_of_text|>"}, "gemma3": {"<bos>", "<end_of_turn>"}}
	for name, sp := range specials {
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("testdata", "templates", name+".jinja"))
			if err != nil {
				t.Fatal(err)
			}
			tmpl, err := jinja.Compile(string(src))
			if err != nil {
				t.Fatal(err)
			}
			j := &JinjaTemplate{tmpl: tmpl, file: name + ".jinja", bos: sp[0], eos: sp[1]}
			req, _ := json.Marshal(map[string]any{"template": string(src), "bos_token": sp[0], "eos_token": sp[1], "cases": cases})
			cmd := exec.Command(jinjaPython, filepath.Join("testdata", "render_jinja.py"))
			cmd.Stdin = bytes.NewReader(req)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("render_jinja.py: %v", err)
			}
			var want []struct {
				Text  *string `json:"text"`
				Error string  `json:"error"`
			}
			if err := json.Unmarshal(out, &want); err != nil || len(want) != len(cases) {
				t.Fatalf("python output: %v (%d for %d cases)", err, len(want), len(cases))
			}
			rendered, errs := 0, 0
			for i, c := range cases {
				got, err := j.Render(c.Messages, c.AddGenerationPrompt)
				switch {
				case want[i].Text == nil && err == nil:
					t.Errorf("case %d: python raised %q, Go rendered %q", i, want[i].Error, got)
				case want[i].Text != nil && err != nil:
					t.Errorf("case %d: Go failed (%v), python rendered %q", i, err, *want[i].Text)
				case want[i].Text != nil && got != *want[i].Text:
					t.Errorf("case %d:\n got %q\nwant %q", i, got, *want[i].Text)
				case err != nil:
					errs++
					if !strings.Contains(err.Error(), name+".jinja") {
						t.Errorf("case %d: the error does not name the template file: %v", i, err)
					}
				default:
					rendered++
				}
			}
			t.Logf("%s: %d renders identical to python3-jinja2, %d raise in both", name, rendered, errs)
		})
	}
}

// templated is a byte-level tokenizer carrying a checkpoint chat template.
type templated struct {
	*tokenizer.ByteLevel
	src string
}

func (t templated) ChatTemplate() (string, string) { return t.src, "/ckpt/tokenizer_config.json" }

// TestTemplateAuto: --template auto uses the checkpoint's template; the reply is what the
// conversation with the assistant's turn adds after the generation prompt; errors name the file.
func TestTemplateAuto(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "templates", "qwen3.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	tok := templated{tokenizer.NewByteLevel(), string(src)}
	tmpl, err := TemplateByName("auto", tok)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tmpl.(*JinjaTemplate); !ok {
		t.Fatalf("auto gave %T", tmpl)
	}
	exs, _, err := ReadExamples(writeFile(t, `{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}`), tok, Options{Template: tmpl})
	if err != nil {
		t.Fatal(err)
	}
	if p, r := tok.Decode(exs[0].Prompt()), tok.Decode(exs[0].Response()); p != "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n" ||
		r != "<think>\n\n</think>\n\nHello<|im_end|>\n" {
		t.Errorf("prompt %q response %q", p, r)
	}
	for _, bad := range []string{"{% if %}", "{{ raise_exception('no') }}"} {
		_, err := TemplateByName("auto", templated{tokenizer.NewByteLevel(), bad})
		if err == nil || !strings.Contains(err.Error(), "/ckpt/tokenizer_config.json") {
			t.Errorf("%q: want an error naming the file, got %v", bad, err)
		}
	}
	if _, err := TemplateByName("jinja", tokenizer.NewByteLevel()); err == nil {
		t.Error("--template jinja without a template must fail")
	}
}

// TestBuiltinsMatchCheckpointTemplates: the built-in gemma and llama3 templates render the text
// Gemma 3's and Llama 3's own templates render (content without surrounding whitespace, which
// those templates trim).
func TestBuiltinsMatchCheckpointTemplates(t *testing.T) {
	tok := tokenizer.NewByteLevel()
	conv := []Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Write fib."}, {Role: "assistant", Content: "def fib(n):\n    return n"}, {Role: "user", Content: "Again ✓"}}
	for _, c := range []struct {
		name     string
		builtin  Template
		bos, eos string
		msgs     []Message
	}{
		{"gemma3", GemmaTemplate{}, "<bos>", "<end_of_turn>", conv},
		{"llama3", Llama3Template{}, "<|begin_of_text|>", "<|end_of_text|>", conv},
	} {
		src, err := os.ReadFile(filepath.Join("testdata", "templates", c.name+".jinja"))
		if err != nil {
			t.Fatal(err)
		}
		tmpl, err := jinja.Compile(string(src))
		if err != nil {
			t.Fatal(err)
		}
		j := &JinjaTemplate{tmpl: tmpl, file: c.name, bos: c.bos, eos: c.eos}
		for n := 1; n <= len(c.msgs); n++ {
			if c.msgs[n-1].Role == "assistant" {
				continue
			}
			want, err := j.Render(c.msgs[:n], true)
			if err != nil {
				t.Fatal(err)
			}
			if got := tok.Decode(c.builtin.Prompt(tok, c.msgs[:n])); got != want {
				t.Errorf("%s prompt of %d messages:\n got %q\nwant %q", c.name, n, got, want)
			}
		}
		if c.name == "llama3" {
			// This Llama 3 template (the original Meta-Llama-3-Instruct one) appends the assistant
			// header even without add_generation_prompt, so its rendered reply ends with it; the
			// built-in stops at <|eot_id|>.
			continue
		}
		jp, jr, err := j.RenderTurn(tok, c.msgs[:2], "Hello")
		if err != nil {
			t.Fatal(err)
		}
		if bp, br := c.builtin.Prompt(tok, c.msgs[:2]), c.builtin.Response(tok, "Hello"); tok.Decode(bp) != tok.Decode(jp) || tok.Decode(br) != tok.Decode(jr) {
			t.Errorf("%s turn: builtin %q|%q, template %q|%q", c.name, tok.Decode(bp), tok.Decode(br), tok.Decode(jp), tok.Decode(jr))
		}
	}
}
