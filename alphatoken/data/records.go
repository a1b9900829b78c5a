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
)

// record is one example as read: a JSONL line or a Parquet row, column name → JSON value.
// Column names match exactly (encoding/json would match struct fields case-insensitively, so
// {"messAges": …} would pass for "messages").
type record struct {
	src    string // "file:line" or "file.parquet row N", for errors
	fields map[string]json.RawMessage
	raw    []byte // the JSON text (JSONL line) the fields come from
}

// eachRecord calls fn for every record of a JSONL or Parquet (.parquet) file.
func eachRecord(path string, fn func(r *record) error) error {
	if strings.HasSuffix(strings.ToLower(path), ".parquet") {
		return eachParquetRow(path, fn)
	}
	return eachLine(path, fn)
}

// eachLine parses every non-blank line of a JSONL file, naming file:line in errors. A line must be
// valid UTF-8 (encoding/json would silently replace bad bytes by U+FFFD) and one JSON object.
func eachLine(path string, fn func(r *record) error) error {
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
		if !utf8.Valid(raw) {
			bad := 0
			for bad < len(raw) {
				r, size := utf8.DecodeRune(raw[bad:])
				if r == utf8.RuneError && size <= 1 {
					break
				}
				bad += size
			}
			return errors.Errorf("%s: invalid UTF-8 at byte %d of the line (the file must be UTF-8 text)", src, bad+1)
		}
		var fields map[string]json.RawMessage
		dec := json.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(&fields); err != nil {
			return errors.Errorf("%s: malformed JSON: %v", src, err)
		}
		if fields == nil {
			return errors.Errorf("%s: a line must be a JSON object, got null", src)
		}
		if dec.More() {
			return errors.Errorf("%s: malformed JSONL: more than one JSON value on the line", src)
		}
		if err := fn(&record{src: src, fields: fields, raw: raw}); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return errors.Wrapf(err, "data: reading %s (line %d)", path, n+1)
	}
	return nil
}

// has reports whether the column is present and not null.
func (r *record) has(key string) bool {
	v, ok := r.fields[key]
	return ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

// kind tells what JSON value a column holds: "string", "list", "object", "number", … ("" if absent).
func (r *record) kind(key string) string {
	if !r.has(key) {
		return ""
	}
	switch bytes.TrimSpace(r.fields[key])[0] {
	case '"':
		return "string"
	case '[':
		return "list"
	case '{':
		return "object"
	case 't', 'f':
		return "bool"
	}
	return "number"
}

// str reads a string column.
func (r *record) str(key string) (string, error) {
	var s string
	if err := json.Unmarshal(r.fields[key], &s); err != nil {
		return "", errors.Errorf("%s: column %q must be a string, got %s", r.src, key, short(r.fields[key]))
	}
	if err := checkDecodedText(s, r.fields[key]); err != nil {
		return "", errors.Errorf("%s: column %q: %v", r.src, key, err)
	}
	return s, nil
}

// checkDecodedText refuses a U+FFFD that encoding/json made from an invalid \u escape (a lone
// surrogate such as \udc00): the text would be silently altered.
func checkDecodedText(s string, raw []byte) error {
	if !strings.ContainsRune(s, utf8.RuneError) {
		return nil
	}
	if bytes.Contains(raw, []byte("\uFFFD")) || bytes.Contains(bytes.ToLower(raw), []byte(`\ufffd`)) {
		return nil // the text really contains U+FFFD
	}
	return errors.New("invalid \\u escape (a lone UTF-16 surrogate) in a string")
}

// ids reads a list-of-integers column.
func (r *record) ids(key string) ([]int, error) {
	var ids []int
	if err := json.Unmarshal(r.fields[key], &ids); err != nil {
		return nil, errors.Errorf("%s: column %q must be a list of integer token ids, got %s", r.src, key, short(r.fields[key]))
	}
	return ids, nil
}

// messages reads a list of chat messages, each {"role": one of system/user/assistant,
// "content": string}; keys match exactly, and an empty or unknown role is an error.
func (r *record) messages(key string) ([]Message, error) {
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(r.fields[key], &raw); err != nil {
		return nil, errors.Errorf("%s: column %q must be a list of {\"role\", \"content\"} messages, got %s", r.src, key, short(r.fields[key]))
	}
	msgs := make([]Message, len(raw))
	for i, m := range raw {
		where := fmt.Sprintf("%s: %s[%d]", r.src, key, i)
		if m == nil {
			return nil, errors.Errorf("%s: a message must be an object", where)
		}
		for _, k := range []string{"role", "content"} {
			v, ok := m[k]
			if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
				return nil, errors.Errorf("%s: message has no %q (keys are case-sensitive)", where, k)
			}
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, errors.Errorf("%s: %q must be a string, got %s", where, k, short(v))
			}
			if err := checkDecodedText(s, v); err != nil {
				return nil, errors.Errorf("%s: %q: %v", where, k, err)
			}
			if k == "role" {
				msgs[i].Role = s
			} else {
				msgs[i].Content = s
			}
		}
		if err := checkRole(msgs[i].Role); err != nil {
			return nil, errors.Errorf("%s: %v", where, err)
		}
	}
	return msgs, nil
}

// Roles are the chat roles the templates render.
var Roles = []string{"system", "user", "assistant"}

func checkRole(role string) error {
	for _, r := range Roles {
		if role == r {
			return nil
		}
	}
	if role == "" {
		return errors.New("empty role (system, user or assistant)")
	}
	return errors.Errorf("unknown role %q (system, user or assistant)", role)
}

func short(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}

// columns lists the recognised columns present, for error messages.
func (r *record) columns() []string {
	var out []string
	for _, k := range knownColumns {
		if r.has(k) {
			out = append(out, k)
		}
	}
	return out
}

var knownColumns = []string{"text", "prompt", "completion", "response", "messages", "chosen", "rejected",
	"prompt_ids", "completion_ids", "response_ids", "chosen_ids", "rejected_ids"}

// only reports whether the recognised columns present are exactly keys.
func (r *record) only(keys ...string) bool {
	cols := r.columns()
	if len(cols) != len(keys) {
		return false
	}
	for _, k := range keys {
		if !r.has(k) {
			return false
		}
	}
	return true
}
