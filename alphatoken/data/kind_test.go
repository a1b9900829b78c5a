package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIsPreferenceFile: a file whose first record has "chosen" or "chosen_ids" holds pairs; an SFT
// file does not; an empty file is an error naming it.
func TestIsPreferenceFile(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct {
		text  string
		pairs bool
	}{
		"pairs.jsonl":  {`{"prompt": "a", "chosen": "b", "rejected": "c"}`, true},
		"ids.jsonl":    {`{"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [3]}`, true},
		"sft.jsonl":    {`{"prompt": "a", "completion": "b"}`, false},
		"chat.jsonl":   {`{"messages": [{"role": "user", "content": "a"}]}`, false},
		"second.jsonl": {"{\"text\": \"a\"}\n{\"chosen\": \"b\", \"rejected\": \"c\"}", false},
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(c.text+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := IsPreferenceFile(p)
		if err != nil || got != c.pairs {
			t.Errorf("%s: %v, %v; want %v", name, got, err, c.pairs)
		}
	}
	empty := filepath.Join(dir, "empty.jsonl")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := IsPreferenceFile(empty); err == nil || !strings.Contains(err.Error(), "empty.jsonl") {
		t.Errorf("empty file: %v", err)
	}
}
