package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// captureStdout runs fn and returns what it printed on stdout.
func captureStdout(t *testing.T, fn func() error) (string, error) {
	t.Helper()
	old := os.Stdout
	r, w, _ := os.Pipe()
	os.Stdout = w
	done := make(chan string)
	go func() {
		var buf bytes.Buffer
		_, _ = io.Copy(&buf, r)
		done <- buf.String()
	}()
	err := fn()
	w.Close()
	os.Stdout = old
	return <-done, err
}

// TestCLIWorkflow runs the commands as documented, on a checkpoint produced by pretrain:
// pretrain → inspect → generate → fisher → score → train-sft (alphatoken) → resume.
func TestCLIWorkflow(t *testing.T) {
	dir := t.TempDir()
	corpus := filepath.Join(dir, "corpus.txt")
	var docs []string
	for i := range 300 {
		docs = append(docs, strings.Repeat("ab", 1+i%5)+" says hello to "+string(rune('a'+i%26))+".")
	}
	if err := os.WriteFile(corpus, []byte(strings.Join(docs, "\n\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := filepath.Join(dir, "ref")
	if err := runPretrain([]string{"--out", ref, "--corpus", corpus, "--preset", "tiny", "--steps", "6", "--batch", "4",
		"--seq", "32", "--eval-every", "3", "--checkpoint-every", "3", "--samples", "1"}); err != nil {
		t.Fatal(err)
	}
	out, err := captureStdout(t, func() error { return runInspect([]string{ref}) })
	if err != nil || !strings.Contains(out, "model.layers.1.mlp.down_proj.weight") || !strings.Contains(out, "parameters") {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	if _, err := captureStdout(t, func() error {
		return runGenerate([]string{"--model", ref, "--prompt", "ab says", "--raw", "--max-new-tokens", "5"})
	}); err != nil {
		t.Fatal(err)
	}
	train, val := filepath.Join(dir, "train.jsonl"), filepath.Join(dir, "val.jsonl")
	var lines []string
	for i := range 24 {
		lines = append(lines, `{"prompt": "q`+string(rune('a'+i%26))+`", "response": "ab says hello"}`)
	}
	if err := os.WriteFile(train, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(val, []byte(strings.Join(lines[:4], "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	fisher := filepath.Join(dir, "fisher.safetensors")
	if err := runFisher([]string{"--model", ref, "--prompts", train, "--n", "8", "--max-new-tokens", "6", "--k", "2", "--out", fisher,
		"--dtype", "bfloat16"}); err != nil {
		t.Fatal(err)
	}
	scores := filepath.Join(dir, "scores.jsonl")
	if err := runScore([]string{"--model", ref, "--ref", ref, "--data", train, "--val", val, "--fisher", fisher, "--k", "2", "--out", scores}); err != nil {
		t.Fatal(err)
	}
	if got := readScores(t, scores); len(got) != 24*len("ab says hello")+24 { // + <eos> per response
		t.Fatalf("%d scores", len(got))
	}
	sft := filepath.Join(dir, "sft")
	args := []string{"--model", ref, "--data", train, "--val", val, "--fisher", fisher, "--k", "2", "--out", sft,
		"--method", "alphatoken", "--steps", "4", "--batch", "4", "--max-len", "32", "--checkpoint-every", "2", "--val-refresh", "2"}
	if err := runSFT(args); err != nil {
		t.Fatal(err)
	}
	if err := runSFT(append(args, "--resume")); err != nil { // already at step 4: resumes and finishes at once
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(sft, "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	// Mixed precision: AlphaToken trains in bfloat16 and writes float32 master weights.
	sft16 := filepath.Join(dir, "sft16")
	if err := runSFT([]string{"--model", ref, "--data", train, "--val", val, "--fisher", fisher, "--k", "2", "--out", sft16,
		"--method", "alphatoken", "--steps", "2", "--batch", "4", "--max-len", "32", "--dtype", "bfloat16"}); err != nil {
		t.Fatal(err)
	}
	if raw, err := os.ReadFile(filepath.Join(sft16, "config.json")); err != nil || !strings.Contains(string(raw), `"torch_dtype": "float32"`) {
		t.Fatalf("bfloat16 SFT's config.json should say float32 (the master weights): %v\n%s", err, raw)
	}
}

// TestCLIBadInput: clear errors naming the file and line, the flag, or the tensor.
func TestCLIBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte("{\"prompt\": \"a\", \"response\": \"b\"}\n{oops\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		run  func([]string) error
		args []string
		want string
	}{
		{runSFT, []string{"--model", dir, "--data", bad, "--out", dir}, "config.json"},
		{runSFT, []string{"--data", bad, "--out", dir}, "--model is required"},
		{runPretrain, []string{"--out", dir, "--corpus", filepath.Join(dir, "missing.txt")}, "missing.txt"},
		{runInspect, []string{filepath.Join(dir, "nope")}, "config.json"},
		{runSFT, []string{"--model", dir, "--data", bad, "--out", dir, "--dtype", "half"}, "--dtype \"half\""},
	}
	for _, c := range cases {
		if err := c.run(c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: want error containing %q, got %v", c.args, c.want, err)
		}
	}
}
