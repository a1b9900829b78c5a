package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDiagnoseRedraw: `diagnose … --from` redraws the committed figures from their saved numbers
// (the suites' tables, value_propagation.json) without a model, and names a missing file.
func TestDiagnoseRedraw(t *testing.T) {
	results := filepath.Join("..", "..", "ablations", "results", "mini")
	out := t.TempDir()
	for _, c := range []struct {
		kind, from string
		files      []string
	}{
		{"tradeoff", results, []string{"tradeoff", "training_curves"}},
		{"sensitivity", results, []string{"sensitivity"}},
		{"value-propagation", filepath.Join(results, "figures"), []string{"value_propagation"}},
		{"one-step", filepath.Join(results, "diagnostics"), []string{"one_step_sgd", "one_step_adamw"}},
	} {
		if err := runDiagnose([]string{c.kind, "--from", c.from, "--out", out}); err != nil {
			t.Fatalf("diagnose %s --from %s: %v", c.kind, c.from, err)
		}
		for _, f := range c.files {
			for _, ext := range []string{".png", ".svg", ".json"} {
				if st, err := os.Stat(filepath.Join(out, f+ext)); err != nil || st.Size() == 0 {
					t.Errorf("diagnose %s: %s%s not written (%v)", c.kind, f, ext, err)
				}
			}
		}
	}
	if err := runDiagnose([]string{"tradeoff", "--from", t.TempDir(), "--out", out}); err == nil {
		t.Error("--from an empty directory drew a figure")
	}
	if err := runDiagnose([]string{"coverage", "--from", results, "--out", out}); err == nil {
		t.Error("coverage --from: no error")
	}
}
