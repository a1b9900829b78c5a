package data

import (
	"strings"

	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// Template renders examples as token ids. Prompt returns the context up to where the assistant's
// reply starts; Response returns the reply followed by its end-of-turn token, so a model trained on
// it learns to stop. The built-in templates (plain, chatml, llama3, gemma) implement the families
// directly; JinjaTemplate renders a checkpoint's own chat_template (Hugging Face's Jinja), and
// implements Conversation, through which the readers go (RenderPrompt, encodeTurn).
type Template interface {
	Name() string
	Prompt(tok tokenizer.Tokenizer, msgs []Message) []int
	Response(tok tokenizer.Tokenizer, content string) []int
	// Stop lists the ids that end a generated reply.
	Stop(tok tokenizer.Tokenizer) []int
}

// Conversation is implemented by templates whose rendering can fail or whose reply depends on the
// conversation (JinjaTemplate): the prompt ids (generation prompt added) and the reply's ids.
type Conversation interface {
	RenderPrompt(tok tokenizer.Tokenizer, msgs []Message) ([]int, error)
	RenderTurn(tok tokenizer.Tokenizer, msgs []Message, reply string) (prompt, response []int, err error)
}

// RenderPrompt encodes msgs as a generation context with tmpl.
func RenderPrompt(tmpl Template, tok tokenizer.Tokenizer, msgs []Message) ([]int, error) {
	for i, m := range msgs {
		if err := checkRole(m.Role); err != nil {
			return nil, errors.Errorf("data: message %d: %v", i, err)
		}
	}
	if c, ok := tmpl.(Conversation); ok {
		return c.RenderPrompt(tok, msgs)
	}
	return tmpl.Prompt(tok, msgs), nil
}

// encodeTurn encodes a prompt conversation and the assistant's reply; src names the record.
func encodeTurn(src string, tmpl Template, tok tokenizer.Tokenizer, msgs []Message, reply string) ([]int, []int, error) {
	if c, ok := tmpl.(Conversation); ok {
		p, r, err := c.RenderTurn(tok, msgs, reply)
		if err != nil {
			return nil, nil, errors.WithMessage(err, src)
		}
		return p, r, nil
	}
	return tmpl.Prompt(tok, msgs), tmpl.Response(tok, reply), nil
}

// ChatTemplater is implemented by tokenizers that carry a checkpoint's chat template.
type ChatTemplater interface {
	// ChatTemplate returns the Jinja source and the file it came from ("" if none).
	ChatTemplate() (source, file string)
}

// TemplateByName returns "plain", "chatml", "llama3" or "gemma"; "auto" (or "") uses the
// checkpoint's own chat template when its tokenizer has one, else the tokenizer's family, else
// plain; "jinja" requires the checkpoint's template.
func TemplateByName(name string, tok tokenizer.Tokenizer) (Template, error) {
	if name == "" || name == "auto" || name == "jinja" {
		if ct, ok := tok.(ChatTemplater); ok {
			if src, file := ct.ChatTemplate(); src != "" {
				return NewJinjaTemplate(src, file, tok)
			}
		}
		if name == "jinja" {
			return nil, errors.New("data: --template jinja: the checkpoint has no chat template (tokenizer_config.json chat_template or chat_template.jinja)")
		}
		name = tok.Family()
		if name == "" {
			name = "plain"
		}
	}
	switch name {
	case "plain":
		return PlainTemplate{}, nil
	case "chatml":
		return ChatMLTemplate{}, nil
	case "llama3":
		return Llama3Template{}, nil
	case "gemma":
		return GemmaTemplate{}, nil
	}
	return nil, errors.Errorf("data: unknown template %q (auto, jinja, plain, chatml, llama3, gemma)", name)
}

func withSpecial(ids []int, id int, prepend bool) []int {
	if id < 0 {
		return ids
	}
	if prepend {
		return append([]int{id}, ids...)
	}
	return append(ids, id)
}

// PlainTemplate is for base models: <bos> prompt | response <eos>. A chat is rendered as
// "User: …\nAssistant: " lines (roles capitalised), the prompt ending with "Assistant: ".
type PlainTemplate struct{}

func (PlainTemplate) Name() string { return "plain" }

func (PlainTemplate) Prompt(tok tokenizer.Tokenizer, msgs []Message) []int {
	var text string
	if len(msgs) == 1 && msgs[0].Role == "user" {
		text = msgs[0].Content
	} else {
		var sb strings.Builder
		for _, m := range msgs {
			role := m.Role
			if role != "" { // roles are validated by the readers; an empty one renders as ": …"
				role = strings.ToUpper(role[:1]) + role[1:]
			}
			sb.WriteString(role + ": " + m.Content + "\n")
		}
		sb.WriteString("Assistant: ")
		text = sb.String()
	}
	return withSpecial(tok.Encode(text), tok.BOS(), true)
}

func (PlainTemplate) Response(tok tokenizer.Tokenizer, content string) []int {
	return withSpecial(tok.Encode(content), tok.EOS(), false)
}

func (PlainTemplate) Stop(tok tokenizer.Tokenizer) []int { return withSpecial(nil, tok.EOS(), false) }

// ChatMLTemplate is Qwen's: <|im_start|>role\ncontent<|im_end|>\n per turn.
type ChatMLTemplate struct{}

func (ChatMLTemplate) Name() string { return "chatml" }

func (ChatMLTemplate) Prompt(tok tokenizer.Tokenizer, msgs []Message) []int {
	var sb strings.Builder
	for _, m := range msgs {
		sb.WriteString("<|im_start|>" + m.Role + "\n" + m.Content + "<|im_end|>\n")
	}
	sb.WriteString("<|im_start|>assistant\n")
	return tok.Encode(sb.String())
}

func (ChatMLTemplate) Response(tok tokenizer.Tokenizer, content string) []int {
	return tok.Encode(content + "<|im_end|>")
}

func (ChatMLTemplate) Stop(tok tokenizer.Tokenizer) []int {
	return append(tok.Encode("<|im_end|>"), withSpecial(nil, tok.EOS(), false)...)
}

// Llama3Template is Llama 3's header format, ending each turn with <|eot_id|>.
type Llama3Template struct{}

func (Llama3Template) Name() string { return "llama3" }

func (Llama3Template) Prompt(tok tokenizer.Tokenizer, msgs []Message) []int {
	var sb strings.Builder
	sb.WriteString("<|begin_of_text|>")
	for _, m := range msgs {
		sb.WriteString("<|start_header_id|>" + m.Role + "<|end_header_id|>\n\n" + m.Content + "<|eot_id|>")
	}
	sb.WriteString("<|start_header_id|>assistant<|end_header_id|>\n\n")
	return tok.Encode(sb.String())
}

func (Llama3Template) Response(tok tokenizer.Tokenizer, content string) []int {
	return tok.Encode(content + "<|eot_id|>")
}

func (Llama3Template) Stop(tok tokenizer.Tokenizer) []int {
	return append(tok.Encode("<|eot_id|>"), withSpecial(nil, tok.EOS(), false)...)
}

// GemmaTemplate is Gemma's turn format: <bos><start_of_turn>user\n…<end_of_turn>\n, the assistant
// role written "model", a system message prefixed to the first user turn (as Gemma 3's template
// does), each turn's content trimmed.
type GemmaTemplate struct{}

func (GemmaTemplate) Name() string { return "gemma" }

func (GemmaTemplate) Prompt(tok tokenizer.Tokenizer, msgs []Message) []int {
	var sb strings.Builder
	sb.WriteString("<bos>")
	prefix := ""
	if len(msgs) > 0 && msgs[0].Role == "system" {
		prefix = msgs[0].Content + "\n\n"
		msgs = msgs[1:]
	}
	for i, m := range msgs {
		role := m.Role
		if role == "assistant" {
			role = "model"
		}
		sb.WriteString("<start_of_turn>" + role + "\n")
		if i == 0 {
			sb.WriteString(prefix)
		}
		sb.WriteString(strings.TrimSpace(m.Content) + "<end_of_turn>\n")
	}
	sb.WriteString("<start_of_turn>model\n")
	return tok.Encode(sb.String())
}

func (GemmaTemplate) Response(tok tokenizer.Tokenizer, content string) []int {
	return tok.Encode(strings.TrimSpace(content) + "<end_of_turn>\n")
}

func (GemmaTemplate) Stop(tok tokenizer.Tokenizer) []int {
	return append(tok.Encode("<end_of_turn>"), withSpecial(nil, tok.EOS(), false)...)
}
