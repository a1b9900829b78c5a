package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	"github.com/pkg/errors"
	"golang.org/x/text/unicode/norm"
)

// This file implements the encoding pipeline of a Hugging Face tokenizer.json for BPE models, as
// the tokenizers library runs it for encode(text, add_special_tokens=False):
//
//	added tokens split out (leftmost-longest) → normalizer → pre-tokenizer → BPE per word
//
// It replaces go-huggingface's hftokenizer for encoding, which differs from the reference on real
// tokenizers: Go's regexp cannot compile the pre-tokenizer patterns of Qwen and Llama 3 (they use
// the look-ahead \s+(?!\S)), and hftokenizer then silently falls back to splitting on single
// spaces, so "    if" came out as 220,220,220,… instead of 262,… and Llama 3's digit groups
// (\p{N}{1,3}) were never formed. Here the patterns run on dlclark/regexp2, a backtracking engine
// with look-around whose \s, \p{L} and \p{N} are Unicode classes as in Oniguruma.

// tokenizerJSON is the part of tokenizer.json the pipeline reads.
type tokenizerJSON struct {
	AddedTokens   []addedTokenJSON `json:"added_tokens"`
	Normalizer    json.RawMessage  `json:"normalizer"`
	PreTokenizer  json.RawMessage  `json:"pre_tokenizer"`
	Decoder       json.RawMessage  `json:"decoder"`
	PostProcessor json.RawMessage  `json:"post_processor"`
	Model         struct {
		Type                    string          `json:"type"`
		Vocab                   map[string]int  `json:"vocab"`
		Merges                  json.RawMessage `json:"merges"`
		UnkToken                *string         `json:"unk_token"`
		ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
		FuseUnk                 bool            `json:"fuse_unk"`
		ByteFallback            bool            `json:"byte_fallback"`
		IgnoreMerges            bool            `json:"ignore_merges"`
		Dropout                 *float64        `json:"dropout"`
	} `json:"model"`
}

type addedTokenJSON struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// component is one normalizer, pre-tokenizer or decoder object (the fields all of them use).
type component struct {
	Type           string          `json:"type"`
	Pattern        *pattern        `json:"pattern"`
	Content        string          `json:"content"`
	Prepend        string          `json:"prepend"`
	Behavior       string          `json:"behavior"`
	Invert         bool            `json:"invert"`
	AddPrefixSpace bool            `json:"add_prefix_space"`
	UseRegex       *bool           `json:"use_regex"`
	Start          int             `json:"start"`
	Stop           int             `json:"stop"`
	Normalizers    json.RawMessage `json:"normalizers"`
	PreTokenizers  json.RawMessage `json:"pretokenizers"`
	Decoders       json.RawMessage `json:"decoders"`
}

type pattern struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

// step is one compiled stage: a normalizer maps a string, a pre-tokenizer splits one.
type normalizer func(string) string
type preTokenizer func(string) []string

// gpt2Pattern is the ByteLevel pre-tokenizer's own split (use_regex: true).
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

func compileRegex(expr, key string) (*regexp2.Regexp, error) {
	re, err := regexp2.Compile(expr, regexp2.Unicode)
	if err != nil {
		return nil, errors.Errorf("%s: cannot compile regex %q: %v", key, expr, err)
	}
	return re, nil
}

// findAll returns the rune spans [start, end) of the non-overlapping matches of re in r.
func findAll(re *regexp2.Regexp, r []rune) [][2]int {
	var spans [][2]int
	m, err := re.FindRunesMatch(r)
	for err == nil && m != nil {
		if m.Length > 0 {
			spans = append(spans, [2]int{m.Index, m.Index + m.Length})
		}
		m, err = re.FindNextMatch(m)
	}
	// err is only a match timeout, and no timeout is set.
	return spans
}

// parseNormalizer compiles a normalizer object (nil JSON: identity).
func parseNormalizer(raw json.RawMessage, key string) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, errors.Errorf("%s: %v", key, err)
	}
	switch c.Type {
	case "NFC":
		return norm.NFC.String, nil
	case "NFD":
		return norm.NFD.String, nil
	case "NFKC":
		return norm.NFKC.String, nil
	case "NFKD":
		return norm.NFKD.String, nil
	case "Lowercase":
		return strings.ToLower, nil
	case "Prepend":
		return func(s string) string {
			if s == "" {
				return s
			}
			return c.Prepend + s
		}, nil
	case "Replace":
		if c.Pattern == nil {
			return nil, errors.Errorf("%s: Replace without a pattern", key)
		}
		if c.Pattern.String != nil {
			old := *c.Pattern.String
			if old == "" {
				return nil, errors.Errorf("%s: Replace with an empty pattern", key)
			}
			return func(s string) string { return strings.ReplaceAll(s, old, c.Content) }, nil
		}
		if c.Pattern.Regex != nil {
			re, err := compileRegex(*c.Pattern.Regex, key+".pattern")
			if err != nil {
				return nil, err
			}
			return func(s string) string {
				r := []rune(s)
				var b strings.Builder
				last := 0
				for _, sp := range findAll(re, r) {
					b.WriteString(string(r[last:sp[0]]))
					b.WriteString(c.Content)
					last = sp[1]
				}
				b.WriteString(string(r[last:]))
				return b.String()
			}, nil
		}
		return nil, errors.Errorf("%s: Replace pattern needs String or Regex", key)
	case "Sequence":
		var list []json.RawMessage
		if err := json.Unmarshal(c.Normalizers, &list); err != nil {
			return nil, errors.Errorf("%s.normalizers: %v", key, err)
		}
		var steps []normalizer
		for i, sub := range list {
			n, err := parseNormalizer(sub, fmt.Sprintf("%s.normalizers[%d]", key, i))
			if err != nil {
				return nil, err
			}
			if n != nil {
				steps = append(steps, n)
			}
		}
		return func(s string) string {
			for _, n := range steps {
				s = n(s)
			}
			return s
		}, nil
	}
	return nil, errors.Errorf("%s: normalizer type %q is not supported (NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Sequence)", key, c.Type)
}

// parsePreTokenizer compiles a pre-tokenizer object (nil JSON: the whole segment is one word).
func parsePreTokenizer(raw json.RawMessage, key string) (preTokenizer, bool, error) {
	if isNull(raw) {
		return nil, false, nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, false, errors.Errorf("%s: %v", key, err)
	}
	switch c.Type {
	case "Split":
		if c.Pattern == nil || (c.Pattern.String == nil && c.Pattern.Regex == nil) {
			return nil, false, errors.Errorf("%s: Split needs a String or Regex pattern", key)
		}
		var re *regexp2.Regexp
		var err error
		if c.Pattern.Regex != nil {
			re, err = compileRegex(*c.Pattern.Regex, key+".pattern.Regex")
		} else {
			if *c.Pattern.String == "" {
				return nil, false, errors.Errorf("%s: Split with an empty pattern", key)
			}
			re, err = compileRegex(regexp2.Escape(*c.Pattern.String), key+".pattern.String")
		}
		if err != nil {
			return nil, false, err
		}
		behavior, err := splitBehavior(c.Behavior, key)
		if err != nil {
			return nil, false, err
		}
		invert := c.Invert
		return func(s string) []string { return splitBy(re, s, behavior, invert) }, false, nil
	case "ByteLevel":
		useRegex := c.UseRegex == nil || *c.UseRegex // tokenizers' default is true
		var re *regexp2.Regexp
		if useRegex {
			re, _ = compileRegex(gpt2Pattern, key)
		}
		addPrefix := c.AddPrefixSpace
		return func(s string) []string {
			if addPrefix && !strings.HasPrefix(s, " ") {
				s = " " + s
			}
			var words []string
			if re != nil {
				words = splitBy(re, s, "isolated", false)
			} else {
				words = []string{s}
			}
			for i, w := range words {
				words[i] = toByteLevel(w)
			}
			return words
		}, true, nil
	case "Sequence":
		var list []json.RawMessage
		if err := json.Unmarshal(c.PreTokenizers, &list); err != nil {
			return nil, false, errors.Errorf("%s.pretokenizers: %v", key, err)
		}
		var steps []preTokenizer
		byteLevel := false
		for i, sub := range list {
			p, bl, err := parsePreTokenizer(sub, fmt.Sprintf("%s.pretokenizers[%d]", key, i))
			if err != nil {
				return nil, false, err
			}
			byteLevel = byteLevel || bl
			if p != nil {
				steps = append(steps, p)
			}
		}
		return func(s string) []string {
			words := []string{s}
			for _, p := range steps {
				var next []string
				for _, w := range words {
					next = append(next, p(w)...)
				}
				words = next
			}
			return words
		}, byteLevel, nil
	}
	return nil, false, errors.Errorf("%s: pre-tokenizer type %q is not supported (Split, ByteLevel, Sequence)", key, c.Type)
}

func splitBehavior(b, key string) (string, error) {
	switch strings.ToLower(b) {
	case "isolated":
		return "isolated", nil
	case "removed":
		return "removed", nil
	case "mergedwithprevious", "merged_with_previous":
		return "previous", nil
	case "mergedwithnext", "merged_with_next":
		return "next", nil
	case "contiguous":
		return "contiguous", nil
	}
	return "", errors.Errorf("%s.behavior: %q is not a Split behavior (Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous)", key, b)
}

// splitBy splits s at the matches of re with one of tokenizers' SplitDelimiterBehavior values;
// with invert the matches are the words and the rest the delimiters.
func splitBy(re *regexp2.Regexp, s, behavior string, invert bool) []string {
	if s == "" {
		return nil
	}
	r := []rune(s)
	type piece struct {
		start, end int
		delim      bool
	}
	var pieces []piece
	last := 0
	for _, m := range findAll(re, r) {
		if m[0] > last {
			pieces = append(pieces, piece{last, m[0], invert})
		}
		pieces = append(pieces, piece{m[0], m[1], !invert})
		last = m[1]
	}
	if last < len(r) {
		pieces = append(pieces, piece{last, len(r), invert})
	}
	var out []piece
	switch behavior {
	case "isolated":
		out = pieces
	case "removed":
		for _, p := range pieces {
			if !p.delim {
				out = append(out, p)
			}
		}
	case "previous": // a delimiter joins the piece before it
		for _, p := range pieces {
			if p.delim && len(out) > 0 && !out[len(out)-1].delim {
				out[len(out)-1].end = p.end
				out[len(out)-1].delim = true
				continue
			}
			out = append(out, p)
		}
	case "next": // a delimiter joins the piece after it
		for i := 0; i < len(pieces); i++ {
			p := pieces[i]
			if p.delim && i+1 < len(pieces) && !pieces[i+1].delim {
				out = append(out, piece{p.start, pieces[i+1].end, false})
				i++
				continue
			}
			out = append(out, p)
		}
	case "contiguous": // runs of delimiters become one piece
		for _, p := range pieces {
			if p.delim && len(out) > 0 && out[len(out)-1].delim {
				out[len(out)-1].end = p.end
				continue
			}
			out = append(out, p)
		}
	}
	words := make([]string, 0, len(out))
	for _, p := range out {
		words = append(words, string(r[p.start:p.end]))
	}
	return words
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// toByteLevel maps the bytes of s to GPT-2's printable runes.
func toByteLevel(s string) string {
	table := bytesToUnicode()
	var b strings.Builder
	b.Grow(2 * len(s))
	for i := range len(s) {
		b.WriteRune(table[s[i]])
	}
	return b.String()
}

// addedMatcher finds added tokens in text, leftmost-longest, as tokenizers' AddedVocabulary
// does with its Aho-Corasick automaton (a byte trie here).
type addedMatcher struct {
	root *trieNode
}

type trieNode struct {
	next map[byte]*trieNode
	tok  *addedTokenJSON
}

func newAddedMatcher(tokens []*addedTokenJSON) *addedMatcher {
	m := &addedMatcher{root: &trieNode{}}
	for _, t := range tokens {
		n := m.root
		for i := range len(t.Content) {
			c := t.Content[i]
			if n.next == nil {
				n.next = map[byte]*trieNode{}
			}
			if n.next[c] == nil {
				n.next[c] = &trieNode{}
			}
			n = n.next[c]
		}
		n.tok = t
	}
	return m
}

// segment is a piece of text: an added token (id ≥ 0) or plain text (id -1).
type segment struct {
	text string
	id   int
}

// split cuts text into plain segments and added tokens. lstrip/rstrip absorb the whitespace
// around a match into it; single_word tokens match only between word boundaries.
func (m *addedMatcher) split(text string) []segment {
	if m == nil || m.root.next == nil {
		return []segment{{text, -1}}
	}
	var out []segment
	plainStart := 0
	for i := 0; i < len(text); {
		n := m.root
		var best *addedTokenJSON
		bestEnd := 0
		for j := i; j < len(text) && n.next != nil; j++ {
			n = n.next[text[j]]
			if n == nil {
				break
			}
			if n.tok != nil {
				best, bestEnd = n.tok, j+1
			}
		}
		if best != nil && best.SingleWord && !(wordBoundary(text, i) && wordBoundary(text, bestEnd)) {
			best = nil
		}
		if best == nil {
			_, size := utf8.DecodeRuneInString(text[i:])
			i += size
			continue
		}
		start, end := i, bestEnd
		if best.LStrip {
			for start > plainStart {
				r, size := utf8.DecodeLastRuneInString(text[:start])
				if !unicode.IsSpace(r) {
					break
				}
				start -= size
			}
		}
		if best.RStrip {
			for end < len(text) {
				r, size := utf8.DecodeRuneInString(text[end:])
				if !unicode.IsSpace(r) {
					break
				}
				end += size
			}
		}
		if start > plainStart {
			out = append(out, segment{text[plainStart:start], -1})
		}
		out = append(out, segment{text[start:end], best.ID})
		i, plainStart = end, end
	}
	if plainStart < len(text) {
		out = append(out, segment{text[plainStart:], -1})
	}
	return out
}

func wordBoundary(s string, i int) bool {
	if i == 0 || i == len(s) {
		return true
	}
	a, _ := utf8.DecodeLastRuneInString(s[:i])
	b, _ := utf8.DecodeRuneInString(s[i:])
	isWord := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' }
	return !(isWord(a) && isWord(b))
}

// sortedAdded returns the added tokens ordered by id (for stable error messages).
func sortedAdded(tokens []addedTokenJSON) []*addedTokenJSON {
	out := make([]*addedTokenJSON, len(tokens))
	for i := range tokens {
		out[i] = &tokens[i]
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}
