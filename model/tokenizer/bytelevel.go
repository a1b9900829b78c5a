package tokenizer

import (
	"encoding/json"
	"path/filepath"

	"github.com/alphatoken/alphatoken/internal/atomicfile"
)

// Special ids of the ByteLevel tokenizer; bytes are 0–255.
const (
	BytePAD = 256
	ByteBOS = 257
	ByteEOS = 258
	// ByteVocabSize is the number of ByteLevel ids.
	ByteVocabSize = 259
)

// byteLevelMarker in tokenizer_config.json marks the built-in tokenizer, so Load uses the exact
// Go implementation rather than re-interpreting the BPE file.
const byteLevelMarker = "alphatoken_byte_level"

var byteSpecials = map[int]string{BytePAD: "<pad>", ByteBOS: "<bos>", ByteEOS: "<eos>"}

// ByteLevel is the built-in tokenizer: one id per UTF-8 byte, plus <pad>, <bos>, <eos>.
type ByteLevel struct{}

// NewByteLevel returns the built-in byte-level tokenizer.
func NewByteLevel() *ByteLevel { return &ByteLevel{} }

func (ByteLevel) Encode(text string) []int {
	ids := make([]int, len(text))
	for i := range len(text) {
		ids[i] = int(text[i])
	}
	return ids
}

func (ByteLevel) Decode(ids []int) string {
	buf := make([]byte, 0, len(ids))
	for _, id := range ids {
		if id >= 0 && id < 256 {
			buf = append(buf, byte(id))
		}
	}
	return string(buf)
}

func (ByteLevel) TokenText(id int) string {
	if id >= 0 && id < 256 {
		return string([]byte{byte(id)})
	}
	if s, ok := byteSpecials[id]; ok {
		return s
	}
	return ""
}

func (ByteLevel) VocabSize() int { return ByteVocabSize }
func (ByteLevel) BOS() int       { return ByteBOS }
func (ByteLevel) EOS() int       { return ByteEOS }
func (ByteLevel) PAD() int       { return BytePAD }
func (ByteLevel) Family() string { return "plain" }

// Save writes a Hugging Face tokenizer.json equivalent to ByteLevel: GPT-2's byte-to-unicode
// alphabet as a BPE vocabulary (id = byte value) with no merges, and the three special tokens.
func (ByteLevel) Save(dir string) error {
	vocab := map[string]int{}
	for b, r := range bytesToUnicode() {
		vocab[string(r)] = b
	}
	var added []map[string]any
	for _, id := range []int{BytePAD, ByteBOS, ByteEOS} {
		added = append(added, map[string]any{"id": id, "content": byteSpecials[id], "single_word": false,
			"lstrip": false, "rstrip": false, "normalized": false, "special": true})
	}
	tj := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "added_tokens": added, "normalizer": nil,
		"pre_tokenizer":  map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
		"post_processor": nil,
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": []string{}},
	}
	cfg := map[string]any{
		"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>",
		"model_max_length": 1 << 20, "clean_up_tokenization_spaces": false, byteLevelMarker: true,
	}
	return writeJSONFiles(dir, tj, cfg)
}

func writeJSONFiles(dir string, tokenizerJSON, tokenizerConfig any) error {
	a, err := json.MarshalIndent(tokenizerJSON, "", "  ")
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(tokenizerConfig, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, "tokenizer.json"), a); err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(dir, "tokenizer_config.json"), b)
}

// bytesToUnicode is GPT-2's reversible byte -> printable rune table used by ByteLevel BPE.
func bytesToUnicode() [256]rune {
	var table [256]rune
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	n := 0
	for b := range 256 {
		if printable(b) {
			table[b] = rune(b)
		} else {
			table[b] = rune(256 + n)
			n++
		}
	}
	return table
}
