package data

import (
	"strings"

	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// Template renders examples as token ids. Prompt returns the context up to where the assistant's
// reply starts; Response returns the reply followed by its end-of-turn token, so a model trained on
// it learns to stop. Hugging Face stores chat templates as Jinja in tokenizer_config.json; this
// package implements the families it supports directly instead of a Jinja engine.
type Template interface {
	Name() string
	Prompt(tok tokenizer.Tokenizer, msgs []Message) []int
	Response(tok tokenizer.Tokenizer, content string) []int
	// Stop lists the ids that end a generated reply.
	Stop(tok tokenizer.Tokenizer) []int
}

// TemplateByName returns "plain", "chatml" or "llama3"; "" or "auto" picks the tokenizer's family.
func TemplateByName(name string, tok tokenizer.Tokenizer) (Template, error) {
	if name == "" || name == "auto" {
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
	}
	return nil, errors.Errorf("data: unknown template %q (plain, chatml, llama3)", name)
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
			sb.WriteString(strings.ToUpper(m.Role[:1]) + m.Role[1:] + ": " + m.Content + "\n")
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
