package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/go-huggingface/tokenizers/api"
	"github.com/gomlx/go-huggingface/tokenizers/hftokenizer"
)

var samples = []string{"def f(x): return x*2+1", "The capital of Vorn is Teluk.\n#### 42", "  spaces\tand\ttabs  ",
	"héllo wörld ✓", ""}

func TestByteLevelRoundTrip(t *testing.T) {
	tok := NewByteLevel()
	for _, s := range samples {
		ids := tok.Encode(s)
		if len(ids) != len(s) {
			t.Errorf("%q: %d ids for %d bytes", s, len(ids), len(s))
		}
		if got := tok.Decode(append(append([]int{ByteBOS}, ids...), ByteEOS)); got != s {
			t.Errorf("round trip %q -> %q", s, got)
		}
	}
}

// TestByteLevelFileIsAnHFTokenizer: the tokenizer.json we write, read by go-huggingface's
// independent BPE implementation, encodes and decodes exactly as ByteLevel does.
func TestByteLevelFileIsAnHFTokenizer(t *testing.T) {
	dir := t.TempDir()
	if err := NewByteLevel().Save(dir); err != nil {
		t.Fatal(err)
	}
	hf, err := hftokenizer.NewFromFile(&api.Config{}, filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	_ = hf.With(api.EncodeOptions{AddSpecialTokens: false})
	for _, s := range samples {
		want := NewByteLevel().Encode(s)
		got := hf.Encode(s)
		if !slices.Equal(got, want) {
			t.Errorf("%q: hftokenizer %v, ByteLevel %v", s, got, want)
		}
		if dec := hf.Decode(got); dec != s {
			t.Errorf("%q: hftokenizer decodes to %q", s, dec)
		}
	}
	if id, ok := hf.TokenToID("<eos>"); !ok || id != ByteEOS {
		t.Errorf("<eos> id = %d, %v", id, ok)
	}
	// Load recognises the marker and returns the built-in implementation.
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tok.(*ByteLevel); !ok {
		t.Fatalf("Load returned %T", tok)
	}
}

// TestLoadHF loads a tokenizer.json that is not ours (the marker removed) through hftokenizer.
func TestLoadHF(t *testing.T) {
	dir := t.TempDir()
	if err := NewByteLevel().Save(dir); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	if err := os.WriteFile(cfgPath, []byte(`{"eos_token": {"content": "<eos>"}, "bos_token": "<bos>"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tok.(*HF); !ok {
		t.Fatalf("Load returned %T", tok)
	}
	if tok.EOS() != ByteEOS || tok.BOS() != ByteBOS {
		t.Errorf("special ids: bos %d eos %d", tok.BOS(), tok.EOS())
	}
	if got := tok.Encode("abc"); !slices.Equal(got, []int{97, 98, 99}) {
		t.Errorf("Encode(abc) = %v", got)
	}
}

func TestLoadMissing(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "tokenizer.json") {
		t.Fatalf("want an error naming %s and tokenizer.json, got %v", dir, err)
	}
}
