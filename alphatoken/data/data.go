// Package data reads post-training examples and turns them into padded batches.
//
// An Example is a token sequence x_0 … x_{T-1} with a mark on every token that is part of the
// response (SPEC §1). Its label positions are R = {p : x_{p+1} is a response token}: logits at p
// predict x_{p+1}, and only those positions carry loss and value.
//
// Files are JSONL (one object per line) or Parquet (a .parquet file, one example per row, as
// Hugging Face datasets store them), in TRL's dataset formats. Column names match exactly;
// unknown columns are ignored.
//
//	{"text": "..."}                                            language modelling: every token after <bos> is trained
//	{"prompt": "...", "completion": "..."}                     prompt-completion ("response" is an alias of "completion")
//	{"messages": [{"role": "user", "content": "..."}, …]}      conversational; the response is the last assistant turn
//	{"prompt": [messages], "completion": [assistant message]}  conversational prompt-completion
//	{"prompt_ids": [...], "completion_ids": [...]}             pre-tokenized ("response_ids" alias): used exactly as given
//
// Preference pairs (ReadPairs, for DPO) are TRL's preference format:
//
//	{"prompt": "...", "chosen": "...", "rejected": "..."}      standard (or all three as message lists)
//	{"chosen": "...", "rejected": "..."}                       implicit prompt: the shared prefix is the prompt (TRL's extract_prompt)
//	{"prompt_ids": [...], "chosen_ids": [...], "rejected_ids": [...]}
//
// Text is encoded with a Template (the checkpoint's chat template, or a built-in one). Errors name
// file:line (or the Parquet file and row) and the column. Invalid UTF-8 and empty or unknown chat
// roles are errors. SFT sequences longer than the context are truncated at the end of the
// response, with a count reported (Stats.Truncated); an example whose prompt alone fills the
// context is an error. A preference pair longer than the context is an error.
package data

import (
	"slices"

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

// ReadExamples reads an SFT file (JSONL or Parquet) in one of the formats of the package doc.
func ReadExamples(path string, tok tokenizer.Tokenizer, opts Options) ([]Example, Stats, error) {
	var out []Example
	var st Stats
	err := eachRecord(path, func(r *record) error {
		ex, truncated, err := exampleOf(r, tok, opts)
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

// sftFormats names the accepted column sets, for errors.
const sftFormats = `{"text"}, {"prompt","completion"} (or "response"), {"messages"}, or {"prompt_ids","completion_ids"} (or "response_ids")`

// exampleOf encodes one SFT record.
func exampleOf(r *record, tok tokenizer.Tokenizer, opts Options) (Example, bool, error) {
	tmpl := templateOf(opts)
	completionKey := "completion"
	if r.has("response") {
		completionKey = "response"
	}
	var prompt, response []int
	var err error
	switch {
	case r.only("prompt_ids", "completion_ids") || r.only("prompt_ids", "response_ids"):
		idsKey := "completion_ids"
		if r.has("response_ids") {
			idsKey = "response_ids"
		}
		if prompt, err = r.ids("prompt_ids"); err != nil {
			return Example{}, false, err
		}
		if response, err = r.ids(idsKey); err != nil {
			return Example{}, false, err
		}
		if err := checkIDs(r.src, "prompt_ids", prompt, tok); err != nil {
			return Example{}, false, err
		}
		if err := checkIDs(r.src, idsKey, response, tok); err != nil {
			return Example{}, false, err
		}
		if len(prompt) == 0 {
			return Example{}, false, errors.Errorf("%s: empty prompt_ids: the first response token needs a position to be predicted from", r.src)
		}
		if len(response) == 0 {
			return Example{}, false, errors.Errorf("%s: empty response (%s)", r.src, idsKey)
		}
	case r.only("messages"):
		msgs, err := r.messages("messages")
		if err != nil {
			return Example{}, false, err
		}
		if len(msgs) < 2 || msgs[len(msgs)-1].Role != "assistant" {
			return Example{}, false, errors.Errorf("%s: column \"messages\" must hold a prompt and end with an assistant turn (the response)", r.src)
		}
		if prompt, response, err = encodeTurn(r.src, tmpl, tok, msgs[:len(msgs)-1], msgs[len(msgs)-1].Content); err != nil {
			return Example{}, false, err
		}
	case r.only("prompt", completionKey):
		msgs, reply, err := promptCompletion(r, "prompt", completionKey)
		if err != nil {
			return Example{}, false, err
		}
		if prompt, response, err = encodeTurn(r.src, tmpl, tok, msgs, reply); err != nil {
			return Example{}, false, err
		}
	case r.only("text"):
		text, err := r.str("text")
		if err != nil {
			return Example{}, false, err
		}
		ids := tok.Encode(text)
		if tok.BOS() >= 0 {
			ids = append([]int{tok.BOS()}, ids...)
		}
		if tok.EOS() >= 0 {
			ids = append(ids, tok.EOS())
		}
		if len(ids) < 2 {
			return Example{}, false, errors.Errorf("%s: column \"text\" encodes to %d tokens: nothing to predict", r.src, len(ids))
		}
		prompt, response = ids[:1], ids[1:] // every token after the first is a label
	case r.has("chosen") || r.has("rejected") || r.has("chosen_ids") || r.has("rejected_ids"):
		return Example{}, false, errors.Errorf("%s: a preference pair (columns %v): SFT needs %s", r.src, r.columns(), sftFormats)
	default:
		return Example{}, false, errors.Errorf("%s: columns %v are not an SFT format: want %s", r.src, r.columns(), sftFormats)
	}
	if len(response) == 0 {
		return Example{}, false, errors.Errorf("%s: empty response", r.src)
	}
	ids := append(append(make([]int, 0, len(prompt)+len(response)), prompt...), response...)
	truncated := false
	if opts.MaxLen > 0 && len(ids) > opts.MaxLen {
		if len(prompt) >= opts.MaxLen {
			return Example{}, false, errors.Errorf("%s: the prompt alone has %d tokens, the context is %d: no room for the response",
				r.src, len(prompt), opts.MaxLen)
		}
		ids = ids[:opts.MaxLen]
		truncated = true
	}
	return Example{IDs: ids, PromptLen: len(prompt), Source: r.src}, truncated, nil
}

// promptCompletion reads a prompt and its completion, both text or both conversational (the
// completion a single assistant message). It returns the prompt as messages and the reply text.
func promptCompletion(r *record, promptKey, completionKey string) ([]Message, string, error) {
	pk, ck := r.kind(promptKey), r.kind(completionKey)
	switch {
	case pk == "string" && ck == "string":
		p, err := r.str(promptKey)
		if err != nil {
			return nil, "", err
		}
		c, err := r.str(completionKey)
		if err != nil {
			return nil, "", err
		}
		if c == "" {
			return nil, "", errors.Errorf("%s: empty %s", r.src, completionKey)
		}
		return []Message{{Role: "user", Content: p}}, c, nil
	case pk == "list" && ck == "list":
		p, err := r.messages(promptKey)
		if err != nil {
			return nil, "", err
		}
		c, err := r.messages(completionKey)
		if err != nil {
			return nil, "", err
		}
		if len(p) == 0 {
			return nil, "", errors.Errorf("%s: column %q is an empty conversation", r.src, promptKey)
		}
		reply, err := singleReply(r.src, completionKey, c)
		return p, reply, err
	}
	return nil, "", errors.Errorf("%s: columns %q (%s) and %q (%s) must both be strings or both lists of messages",
		r.src, promptKey, pk, completionKey, ck)
}

// singleReply is the content of a completion given as messages: one non-empty assistant turn.
func singleReply(src, key string, msgs []Message) (string, error) {
	if len(msgs) != 1 || msgs[0].Role != "assistant" {
		return "", errors.Errorf("%s: column %q must be one assistant message, got %d message(s)", src, key, len(msgs))
	}
	if msgs[0].Content == "" {
		return "", errors.Errorf("%s: column %q: empty assistant message", src, key)
	}
	return msgs[0].Content, nil
}

// ReadPairs reads a preference file (JSONL or Parquet): standard, conversational, implicit-prompt
// or pre-tokenized pairs. A pair whose branches are equal or empty, or that does not fit
// opts.MaxLen, is an error naming file:line.
func ReadPairs(path string, tok tokenizer.Tokenizer, opts Options) ([]Pair, Stats, error) {
	var out []Pair
	var st Stats
	err := eachRecord(path, func(r *record) error {
		p, err := pairOf(r, tok, opts)
		if err != nil {
			return err
		}
		out = append(out, p)
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

const pairFormats = `{"prompt","chosen","rejected"} (text or messages), {"chosen","rejected"} (implicit prompt), or {"prompt_ids","chosen_ids","rejected_ids"}`

func pairOf(r *record, tok tokenizer.Tokenizer, opts Options) (Pair, error) {
	tmpl := templateOf(opts)
	var prompt, chosen, rejected []int
	switch {
	case r.only("prompt_ids", "chosen_ids", "rejected_ids"):
		var err error
		for _, f := range []struct {
			key string
			dst *[]int
		}{{"prompt_ids", &prompt}, {"chosen_ids", &chosen}, {"rejected_ids", &rejected}} {
			if *f.dst, err = r.ids(f.key); err != nil {
				return Pair{}, err
			}
			if err := checkIDs(r.src, f.key, *f.dst, tok); err != nil {
				return Pair{}, err
			}
		}
		if len(prompt) == 0 {
			return Pair{}, errors.Errorf("%s: empty prompt_ids", r.src)
		}
	case r.only("prompt", "chosen", "rejected") || r.only("chosen", "rejected"):
		msgs, c, rj, err := preferenceTexts(r)
		if err != nil {
			return Pair{}, err
		}
		var pc, pr []int
		if pc, chosen, err = encodeTurn(r.src+" (chosen)", tmpl, tok, msgs, c); err != nil {
			return Pair{}, err
		}
		if pr, rejected, err = encodeTurn(r.src+" (rejected)", tmpl, tok, msgs, rj); err != nil {
			return Pair{}, err
		}
		if !slices.Equal(pc, pr) {
			return Pair{}, errors.Errorf("%s: the template renders different prompts for chosen and rejected", r.src)
		}
		prompt = pc
	default:
		return Pair{}, errors.Errorf("%s: columns %v are not a preference format: want %s", r.src, r.columns(), pairFormats)
	}
	switch {
	case len(chosen) == 0 || len(rejected) == 0:
		return Pair{}, errors.Errorf("%s: empty chosen or rejected response", r.src)
	case slices.Equal(chosen, rejected):
		return Pair{}, errors.Errorf("%s: chosen and rejected are identical: the pair carries no preference", r.src)
	}
	for _, b := range []struct {
		name string
		ids  []int
	}{{"chosen", chosen}, {"rejected", rejected}} {
		if n := len(prompt) + len(b.ids); opts.MaxLen > 0 && n > opts.MaxLen {
			return Pair{}, errors.Errorf("%s: prompt + %s has %d tokens, longer than the context %d", r.src, b.name, n, opts.MaxLen)
		}
	}
	mk := func(resp []int, what string) Example {
		ids := append(append(make([]int, 0, len(prompt)+len(resp)), prompt...), resp...)
		return Example{IDs: ids, PromptLen: len(prompt), Source: r.src + " (" + what + ")"}
	}
	return Pair{Chosen: mk(chosen, "chosen"), Rejected: mk(rejected, "rejected"), Source: r.src}, nil
}

// preferenceTexts reads a text or conversational preference record into prompt messages and the
// chosen and rejected replies, extracting an implicit prompt as TRL's maybe_extract_prompt does: a
// "prompt" column of the same kind as "chosen" is explicit; otherwise the prompt is the shared
// prefix of chosen and rejected (extractPrompt).
func preferenceTexts(r *record) (prompt []Message, chosen, rejected string, err error) {
	ck, rk := r.kind("chosen"), r.kind("rejected")
	if ck != rk || (ck != "string" && ck != "list") {
		return nil, "", "", errors.Errorf("%s: columns \"chosen\" (%s) and \"rejected\" (%s) must both be strings or both lists of messages", r.src, ck, rk)
	}
	if r.has("prompt") && r.kind("prompt") == ck {
		msgs, c, err := promptCompletion(r, "prompt", "chosen")
		if err != nil {
			return nil, "", "", err
		}
		_, rj, err := promptCompletion(r, "prompt", "rejected")
		return msgs, c, rj, err
	}
	if ck == "string" {
		c, err := r.str("chosen")
		if err != nil {
			return nil, "", "", err
		}
		rj, err := r.str("rejected")
		if err != nil {
			return nil, "", "", err
		}
		p, c2, r2, ok := extractPrompt([]rune(c), []rune(rj), func(a, b rune) bool { return a == b }, func(x rune) bool { return x == ' ' })
		if !ok {
			return nil, "", "", errors.Errorf("%s: implicit prompt: \"chosen\" and \"rejected\" share no prefix", r.src)
		}
		if len(c2) == 0 || len(r2) == 0 {
			return nil, "", "", errors.Errorf("%s: implicit prompt: after the shared prefix, chosen or rejected is empty", r.src)
		}
		return []Message{{Role: "user", Content: string(p)}}, string(c2), string(r2), nil
	}
	c, err := r.messages("chosen")
	if err != nil {
		return nil, "", "", err
	}
	rj, err := r.messages("rejected")
	if err != nil {
		return nil, "", "", err
	}
	p, c2, r2, ok := extractPrompt(c, rj, func(a, b Message) bool { return a == b }, func(Message) bool { return false })
	if !ok {
		return nil, "", "", errors.Errorf("%s: implicit prompt: \"chosen\" and \"rejected\" share no first message", r.src)
	}
	cr, err := singleReply(r.src, "chosen", c2)
	if err != nil {
		return nil, "", "", errors.WithMessage(err, "after the implicit prompt")
	}
	rr, err := singleReply(r.src, "rejected", r2)
	if err != nil {
		return nil, "", "", errors.WithMessage(err, "after the implicit prompt")
	}
	return p, cr, rr, nil
}

// extractPrompt is TRL's extract_prompt (trl/data_utils.py): idx runs over the common length;
// at the first difference, a space just before it goes to the completions; the prompt is
// chosen[:idx]. As in TRL, when no difference is found idx stays at the last index compared
// (min length − 1). ok is false when the prompt would be empty or idx would go negative.
func extractPrompt[T any](chosen, rejected []T, eq func(a, b T) bool, isSpace func(T) bool) (prompt, c, r []T, ok bool) {
	n := min(len(chosen), len(rejected))
	idx := 0
	for idx = 0; idx < n; idx++ {
		if !eq(chosen[idx], rejected[idx]) {
			if idx > 0 && isSpace(chosen[idx-1]) {
				idx--
			}
			break
		}
	}
	if idx == n {
		idx = n - 1 // Python's loop variable keeps its last value
	}
	if idx <= 0 {
		return nil, nil, nil, false
	}
	return chosen[:idx], chosen[idx:], rejected[idx:], true
}

// ReadPrompts reads the prompts of a file ("prompt" text or messages, "messages" without the
// final assistant turn, or "prompt_ids"), encoded as the generation context (template applied).
func ReadPrompts(path string, tok tokenizer.Tokenizer, opts Options) ([][]int, error) {
	var out [][]int
	tmpl := templateOf(opts)
	err := eachRecord(path, func(r *record) error {
		var ids []int
		switch {
		case r.has("prompt_ids"):
			var err error
			if ids, err = r.ids("prompt_ids"); err != nil {
				return err
			}
			if err := checkIDs(r.src, "prompt_ids", ids, tok); err != nil {
				return err
			}
			if len(ids) == 0 {
				return errors.Errorf("%s: empty prompt_ids", r.src)
			}
		case r.has("prompt") || r.has("messages"):
			var msgs []Message
			var err error
			switch {
			case r.kind("prompt") == "string":
				p, err := r.str("prompt")
				if err != nil {
					return err
				}
				msgs = []Message{{Role: "user", Content: p}}
			case r.has("prompt"):
				msgs, err = r.messages("prompt")
			default:
				msgs, err = r.messages("messages")
				if err == nil && len(msgs) > 0 && msgs[len(msgs)-1].Role == "assistant" {
					msgs = msgs[:len(msgs)-1]
				}
			}
			if err != nil {
				return err
			}
			if len(msgs) == 0 {
				return errors.Errorf("%s: no prompt messages", r.src)
			}
			if ids, err = RenderPrompt(tmpl, tok, msgs); err != nil {
				return errors.WithMessage(err, r.src)
			}
		default:
			return errors.Errorf("%s: no \"prompt\", \"messages\" or \"prompt_ids\" column (columns: %v)", r.src, r.columns())
		}
		if opts.MaxLen > 0 && len(ids) >= opts.MaxLen {
			return errors.Errorf("%s: prompt has %d tokens, the context is %d", r.src, len(ids), opts.MaxLen)
		}
		out = append(out, ids)
		return nil
	})
	if err == nil && len(out) == 0 {
		err = errors.Errorf("data: %s holds no prompts", path)
	}
	return out, err
}

func templateOf(opts Options) Template {
	if opts.Template == nil {
		return PlainTemplate{}
	}
	return opts.Template
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

// Message is one chat turn.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}
