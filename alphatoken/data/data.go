// Package data reads post-training examples and turns them into padded batches.
//
// An Example is a token sequence x_0 … x_{T-1} with a mark on every token that is part of the
// response (SPEC §1). Its label positions are R = {p : x_{p+1} is a response token}: logits at p
// predict x_{p+1}, and only those positions carry loss and value.
//
// JSONL formats, one object per line (unknown keys are ignored):
//
//	{"prompt": "...", "response": "..."}                 text, encoded with a Template
//	{"messages": [{"role": "user", "content": "..."}, …]} chat; the response is the last assistant turn
//	{"prompt_ids": [...], "response_ids": [...]}          pre-tokenized: used exactly as given
//
// Preference pairs (for DPO) use "chosen"/"rejected" (text) or "chosen_ids"/"rejected_ids".
//
// Errors name the file and line. Sequences longer than the context are truncated at the end of
// the response, with a count reported (Stats.Truncated); an example whose prompt alone fills the
// context is an error.
package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// Example is one tokenized training example.
type Example struct {
	IDs       []int  // the whole sequence: prompt ++ response
	PromptLen int    // number of prompt tokens; IDs[PromptLen:] is the response
	Source    string // "file:line", for messages
}

// Response returns the response token ids.
func (e *Example) Response() []int { return e.IDs[e.PromptLen:] }

// Prompt returns the prompt token ids.
func (e *Example) Prompt() []int { return e.IDs[:e.PromptLen] }

// LabelPositions returns R: the positions p whose logits predict a response token.
func (e *Example) LabelPositions() []int {
	var r []int
	for p := max(e.PromptLen-1, 0); p+1 < len(e.IDs); p++ {
		r = append(r, p)
	}
	return r
}

// Pair is one tokenized preference pair: a shared prompt, a chosen and a rejected response.
type Pair struct {
	Chosen, Rejected Example
	Source           string
}

// Options controls how text is encoded.
type Options struct {
	// MaxLen is the context length (0: no limit). Longer examples lose the end of their response.
	MaxLen int
	// Template encodes text examples; nil means PlainTemplate.
	Template Template
}

// Stats reports what reading did to the data.
type Stats struct {
	Examples  int
	Truncated int // examples whose response was cut to fit MaxLen
}

// line is the union of the accepted JSONL schemas.
type line struct {
	Prompt      *string   `json:"prompt"`
	Response    *string   `json:"response"`
	Messages    []Message `json:"messages"`
	PromptIDs   []int     `json:"prompt_ids"`
	ResponseIDs []int     `json:"response_ids"`
	Chosen      *string   `json:"chosen"`
	Rejected    *string   `json:"rejected"`
	ChosenIDs   []int     `json:"chosen_ids"`
	RejectedIDs []int     `json:"rejected_ids"`
}

// Message is one chat turn.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ReadExamples reads an SFT JSONL file.
func ReadExamples(path string, tok tokenizer.Tokenizer, opts Options) ([]Example, Stats, error) {
	var out []Example
	var st Stats
	err := eachLine(path, func(src string, l *line) error {
		ex, truncated, err := exampleOf(src, l, tok, opts)
		if err != nil {
			return err
		}
		if truncated {
			st.Truncated++
		}
		out = append(out, ex)
		return nil
	})
	if err != nil {
		return nil, st, err
	}
	if len(out) == 0 {
		return nil, st, errors.Errorf("data: %s holds no examples", path)
	}
	st.Examples = len(out)
	return out, st, nil
}

// ReadPairs reads a preference-pair JSONL file.
func ReadPairs(path string, tok tokenizer.Tokenizer, opts Options) ([]Pair, Stats, error) {
	var out []Pair
	var st Stats
	err := eachLine(path, func(src string, l *line) error {
		var chosen, rejected line
		switch {
		case l.ChosenIDs != nil || l.RejectedIDs != nil:
			chosen = line{PromptIDs: l.PromptIDs, ResponseIDs: l.ChosenIDs}
			rejected = line{PromptIDs: l.PromptIDs, ResponseIDs: l.RejectedIDs}
		case l.Chosen != nil || l.Rejected != nil:
			chosen = line{Prompt: l.Prompt, Response: l.Chosen}
			rejected = line{Prompt: l.Prompt, Response: l.Rejected}
		default:
			return errors.Errorf("%s: a pair needs \"chosen\"/\"rejected\" or \"chosen_ids\"/\"rejected_ids\"", src)
		}
		c, tc, err := exampleOf(src+" (chosen)", &chosen, tok, opts)
		if err != nil {
			return err
		}
		r, tr, err := exampleOf(src+" (rejected)", &rejected, tok, opts)
		if err != nil {
			return err
		}
		if tc || tr {
			st.Truncated++
		}
		out = append(out, Pair{Chosen: c, Rejected: r, Source: src})
		return nil
	})
	if err != nil {
		return nil, st, err
	}
	if len(out) == 0 {
		return nil, st, errors.Errorf("data: %s holds no pairs", path)
	}
	st.Examples = len(out)
	return out, st, nil
}

// ReadPrompts reads the prompts of a JSONL file ("prompt", "messages" without the final assistant
// turn, or "prompt_ids"), encoded as the generation context (template applied).
func ReadPrompts(path string, tok tokenizer.Tokenizer, opts Options) ([][]int, error) {
	var out [][]int
	tmpl := opts.Template
	if tmpl == nil {
		tmpl = PlainTemplate{}
	}
	err := eachLine(path, func(src string, l *line) error {
		switch {
		case l.PromptIDs != nil:
			if err := checkIDs(src, "prompt_ids", l.PromptIDs, tok); err != nil {
				return err
			}
			out = append(out, l.PromptIDs)
		case l.Prompt != nil:
			out = append(out, tmpl.Prompt(tok, []Message{{Role: "user", Content: *l.Prompt}}))
		case len(l.Messages) > 0:
			msgs := l.Messages
			if msgs[len(msgs)-1].Role == "assistant" {
				msgs = msgs[:len(msgs)-1]
			}
			out = append(out, tmpl.Prompt(tok, msgs))
		default:
			return errors.Errorf("%s: no \"prompt\", \"messages\" or \"prompt_ids\"", src)
		}
		if opts.MaxLen > 0 && len(out[len(out)-1]) >= opts.MaxLen {
			return errors.Errorf("%s: prompt has %d tokens, the context is %d", src, len(out[len(out)-1]), opts.MaxLen)
		}
		return nil
	})
	if err == nil && len(out) == 0 {
		err = errors.Errorf("data: %s holds no prompts", path)
	}
	return out, err
}

// eachLine parses every non-blank line of a JSONL file, naming file:line in errors.
func eachLine(path string, fn func(src string, l *line) error) error {
	f, err := os.Open(path)
	if err != nil {
		return errors.Wrapf(err, "data: opening %s", path)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	n := 0
	for sc.Scan() {
		n++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		src := fmt.Sprintf("%s:%d", path, n)
		var l line
		dec := json.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(&l); err != nil {
			return errors.Errorf("%s: malformed JSON: %v", src, err)
		}
		if dec.More() {
			return errors.Errorf("%s: malformed JSONL: more than one JSON value on the line", src)
		}
		if err := fn(src, &l); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return errors.Wrapf(err, "data: reading %s (line %d)", path, n+1)
	}
	return nil
}

// exampleOf encodes one parsed line.
func exampleOf(src string, l *line, tok tokenizer.Tokenizer, opts Options) (Example, bool, error) {
	tmpl := opts.Template
	if tmpl == nil {
		tmpl = PlainTemplate{}
	}
	var prompt, response []int
	switch {
	case l.PromptIDs != nil || l.ResponseIDs != nil:
		if err := checkIDs(src, "prompt_ids", l.PromptIDs, tok); err != nil {
			return Example{}, false, err
		}
		if err := checkIDs(src, "response_ids", l.ResponseIDs, tok); err != nil {
			return Example{}, false, err
		}
		prompt, response = l.PromptIDs, l.ResponseIDs
		if len(prompt) == 0 {
			return Example{}, false, errors.Errorf("%s: empty prompt_ids: the first response token needs a position to be predicted from", src)
		}
	case l.Messages != nil:
		msgs := l.Messages
		if len(msgs) == 0 || msgs[len(msgs)-1].Role != "assistant" {
			return Example{}, false, errors.Errorf("%s: \"messages\" must end with an assistant turn (the response)", src)
		}
		for i, m := range msgs {
			if m.Role != "system" && m.Role != "user" && m.Role != "assistant" {
				return Example{}, false, errors.Errorf("%s: messages[%d] has unknown role %q", src, i, m.Role)
			}
		}
		if msgs[len(msgs)-1].Content == "" {
			return Example{}, false, errors.Errorf("%s: empty response (last assistant turn)", src)
		}
		prompt = tmpl.Prompt(tok, msgs[:len(msgs)-1])
		response = tmpl.Response(tok, msgs[len(msgs)-1].Content)
	case l.Prompt != nil || l.Response != nil:
		if l.Prompt == nil || l.Response == nil {
			return Example{}, false, errors.Errorf("%s: needs both \"prompt\" and \"response\"", src)
		}
		if *l.Response == "" {
			return Example{}, false, errors.Errorf("%s: empty response", src)
		}
		prompt = tmpl.Prompt(tok, []Message{{Role: "user", Content: *l.Prompt}})
		response = tmpl.Response(tok, *l.Response)
	default:
		return Example{}, false, errors.Errorf("%s: no \"prompt\"/\"response\", \"messages\" or \"prompt_ids\"/\"response_ids\"", src)
	}
	if len(response) == 0 {
		return Example{}, false, errors.Errorf("%s: empty response", src)
	}
	ids := append(append(make([]int, 0, len(prompt)+len(response)), prompt...), response...)
	truncated := false
	if opts.MaxLen > 0 && len(ids) > opts.MaxLen {
		if len(prompt) >= opts.MaxLen {
			return Example{}, false, errors.Errorf("%s: the prompt alone has %d tokens, the context is %d: no room for the response",
				src, len(prompt), opts.MaxLen)
		}
		ids = ids[:opts.MaxLen]
		truncated = true
	}
	return Example{IDs: ids, PromptLen: len(prompt), Source: src}, truncated, nil
}

func checkIDs(src, field string, ids []int, tok tokenizer.Tokenizer) error {
	v := tok.VocabSize()
	for i, id := range ids {
		if id < 0 || id >= v {
			return errors.Errorf("%s: %s[%d] = %d is outside the vocabulary [0, %d)", src, field, i, id, v)
		}
	}
	return nil
}
