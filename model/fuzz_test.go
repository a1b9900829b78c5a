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
