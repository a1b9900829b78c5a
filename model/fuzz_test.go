package model

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseConfig: any bytes give a Config that validates or an error, never a panic; an accepted
// config round-trips through MarshalHF.
func FuzzParseConfig(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "configs", "*.json"))
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"model_type": "llama", "rope_parameters": {"full_attention": {"rope_type": "yarn"}}}`))
	f.Add([]byte(`{"model_type": "gemma3_text", "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
		"num_key_value_heads": 1, "head_dim": 4, "vocab_size": 11, "sliding_window_pattern": 2, "sliding_window": 2,
		"rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 1e6}, "sliding_attention": {"rope_type": "linear", "factor": 2, "rope_theta": 1e4}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseConfig accepted a config Validate refuses: %v", err)
		}
		out, err := c.MarshalHF()
		if err != nil {
			t.Fatalf("MarshalHF: %v", err)
		}
		back, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("re-reading the written config: %v\n%s", err, out)
		}
		c.LayerTypes, back.LayerTypes = nil, nil
		if !back.Equal(c) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", *c, *back)
		}
	})
}
