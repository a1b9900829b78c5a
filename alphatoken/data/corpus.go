package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// ReadCorpus reads pre-training documents: a .jsonl file of {"text": "..."} lines, or a text file
// whose documents are separated by blank lines.
func ReadCorpus(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, errors.Wrapf(err, "data: reading corpus %s", path)
	}
	var docs []string
	if strings.HasSuffix(path, ".jsonl") {
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for n := 1; sc.Scan(); n++ {
			raw := bytes.TrimSpace(sc.Bytes())
			if len(raw) == 0 {
				continue
			}
			if !utf8.Valid(raw) { // encoding/json would replace the bad bytes by U+FFFD
				return nil, errors.Errorf("%s:%d: invalid UTF-8 (the file must be UTF-8 text)", path, n)
			}
			var l struct {
				Text *string `json:"text"`
			}
			if err := json.Unmarshal(raw, &l); err != nil {
				return nil, errors.Errorf("%s:%d: malformed JSON: %v", path, n, err)
			}
			if l.Text == nil {
				return nil, errors.Errorf("%s:%d: no \"text\" field", path, n)
			}
			docs = append(docs, *l.Text)
		}
	} else {
		for _, d := range strings.Split(string(data), "\n\n") {
			if d = strings.TrimSpace(d); d != "" {
				docs = append(docs, d)
			}
		}
	}
	if len(docs) == 0 {
		return nil, errors.Errorf("data: corpus %s holds no documents", path)
	}
	return docs, nil
}

// CorpusStream tokenizes documents into one stream: <bos> doc <eos> <bos> doc <eos> …
func CorpusStream(docs []string, tok tokenizer.Tokenizer) []int {
	var stream []int
	for _, d := range docs {
		stream = withSpecial(stream, tok.BOS(), false)
		stream = append(stream, tok.Encode(d)...)
		stream = withSpecial(stream, tok.EOS(), false)
	}
	return stream
}

// CorpusWindows cuts a stream into consecutive windows of t tokens, each an Example whose every
// next-token prediction counts (PromptLen 0). A remainder shorter than t is dropped.
func CorpusWindows(stream []int, t int, name string) []Example {
	var out []Example
	for i := 0; i+t <= len(stream); i += t {
		out = append(out, Example{IDs: stream[i : i+t], Source: fmt.Sprintf("%s[%d:%d]", name, i, i+t)})
	}
	return out
}
