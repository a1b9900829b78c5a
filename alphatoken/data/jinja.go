package data

import (
	"strings"

	"github.com/ardanlabs/jinja"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// JinjaTemplate renders a checkpoint's own chat template (tokenizer_config.json "chat_template" or
// chat_template.jinja) as transformers' apply_chat_template does: Jinja with trim_blocks and
// lstrip_blocks, the variables messages, add_generation_prompt, bos_token and eos_token, and
// raise_exception. The engine is github.com/ardanlabs/jinja, a Go Jinja written for chat templates
// (namespace(), loop.last, tojson, slicing, string methods); its output is compared with Debian's
// python3-jinja2 in the tests.
//
// As TRL does for prompt-completion data, the prompt is the conversation rendered with the
// generation prompt, and the reply is what the conversation with the assistant's turn adds after
// it: render(prompt + reply)[len(render(prompt, generation prompt)):]. Prompt and reply are
// tokenized separately.
type JinjaTemplate struct {
	tmpl     *jinja.Template
	file     string
	bos, eos string
	stop     []string
}

// NewJinjaTemplate compiles a chat template; file names it in errors. A trial render of a short
// conversation catches templates that cannot render here.
func NewJinjaTemplate(source, file string, tok tokenizer.Tokenizer) (*JinjaTemplate, error) {
	t, err := compileJinja(source)
	if err != nil {
		return nil, errors.Errorf("data: chat template of %s: %v", file, err)
	}
	j := &JinjaTemplate{tmpl: t, file: file}
	if tok.BOS() >= 0 {
		j.bos = tok.TokenText(tok.BOS())
	}
	if tok.EOS() >= 0 {
		j.eos = tok.TokenText(tok.EOS())
	}
	switch tok.Family() {
	case "chatml":
		j.stop = []string{"<|im_end|>"}
	case "llama3":
		j.stop = []string{"<|eot_id|>"}
	case "gemma":
		j.stop = []string{"<end_of_turn>"}
	}
	if _, _, err := j.RenderTurn(tok, []Message{{Role: "user", Content: "Hi"}}, "Hello"); err != nil {
		return nil, err
	}
	return j, nil
}

func (j *JinjaTemplate) Name() string { return "jinja:" + j.file }

// Render renders msgs; generation adds the assistant's generation prompt.
func (j *JinjaTemplate) Render(msgs []Message, generation bool) (string, error) {
	list := make([]any, len(msgs))
	for i, m := range msgs {
		list[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	out, err := renderJinja(j.tmpl, map[string]any{
		"messages": list, "add_generation_prompt": generation, "bos_token": j.bos, "eos_token": j.eos,
	})
	if err != nil {
		return "", errors.Errorf("data: chat template of %s: %v", j.file, err)
	}
	return out, nil
}

func (j *JinjaTemplate) RenderPrompt(tok tokenizer.Tokenizer, msgs []Message) ([]int, error) {
	s, err := j.Render(msgs, true)
	if err != nil {
		return nil, err
	}
	return tok.Encode(s), nil
}

func (j *JinjaTemplate) RenderTurn(tok tokenizer.Tokenizer, msgs []Message, reply string) ([]int, []int, error) {
	prompt, err := j.Render(msgs, true)
	if err != nil {
		return nil, nil, err
	}
	full, err := j.Render(append(append([]Message{}, msgs...), Message{Role: "assistant", Content: reply}), false)
	if err != nil {
		return nil, nil, err
	}
	if !strings.HasPrefix(full, prompt) {
		return nil, nil, errors.Errorf("data: chat template of %s: the conversation with the reply does not start with the prompt "+
			"rendered with the generation prompt (%q…), so the reply cannot be separated", j.file, truncateText(prompt, 80))
	}
	return tok.Encode(prompt), tok.Encode(full[len(prompt):]), nil
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Prompt implements Template; a render error gives nil (the readers use RenderPrompt, which
// reports it).
func (j *JinjaTemplate) Prompt(tok tokenizer.Tokenizer, msgs []Message) []int {
	ids, _ := j.RenderPrompt(tok, msgs)
	return ids
}

// Response implements Template for a reply to a single user turn (RenderTurn is exact).
func (j *JinjaTemplate) Response(tok tokenizer.Tokenizer, content string) []int {
	_, r, _ := j.RenderTurn(tok, []Message{{Role: "user", Content: ""}}, content)
	return r
}

// Stop lists the end-of-turn token of the family and EOS.
func (j *JinjaTemplate) Stop(tok tokenizer.Tokenizer) []int {
	var ids []int
	for _, s := range j.stop {
		ids = append(ids, tok.Encode(s)...)
	}
	return withSpecial(ids, tok.EOS(), false)
}

// compileJinja and renderJinja turn a panic of the engine on an unusual template into an error
// (a checkpoint's template is outside input).
func compileJinja(source string) (t *jinja.Template, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.Errorf("the Jinja engine failed: %v", p)
		}
	}()
	return jinja.Compile(source)
}

func renderJinja(t *jinja.Template, vars map[string]any) (out string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.Errorf("the Jinja engine failed: %v", p)
		}
	}()
	return t.Render(vars)
}
