package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"

	"github.com/alphatoken/alphatoken/methods"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
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
	// Optimizer-aware values: score reads the AdamW state of a training checkpoint, and refuses a
	// model without one.
	adamScores := filepath.Join(dir, "scores-adam.jsonl")
	if err := runScore([]string{"--model", filepath.Join(sft, "checkpoint-4"), "--ref", ref, "--data", train, "--val", val, "--fisher", fisher,
		"--k", "2", "--precondition", "adam", "--out", adamScores}); err != nil {
		t.Fatal(err)
	}
	if got := readScores(t, adamScores); len(got) != 24*len("ab says hello")+24 {
		t.Fatalf("%d scores with --precondition adam", len(got))
	}
	if err := runScore([]string{"--model", ref, "--data", train, "--val", val, "--fisher", "none", "--k", "2", "--precondition", "adam",
		"--out", adamScores}); err == nil || !strings.Contains(err.Error(), "no optimizer state") {
		t.Fatalf("score --precondition adam on a pretrained model without trainer state: %v", err)
	}
	// Baselines through the registry: a helper checkpoint, a budget-matched run, a schedule, a
	// method parameter, soft weights, and AlphaToken with the stability term explicitly off.
	for i, extra := range [][]string{
		{"--method", "token-cleaning", "--helper", sft},
		{"--method", "rho1", "--helper", sft, "--budget-matched"},
		{"--method", "sstoken", "--rho-schedule", "cosine", "--gamma", "0.3"},
		{"--method", "stm", "--ppl-threshold", "4"},
		{"--method", "xtf"},
		{"--method", "low-ppl", "--rho", "0.3"},
		{"--method", "token-cleaning-self", "--chunks", "2"},
		{"--method", "alphatoken-soft", "--val", val, "--fisher", fisher, "--k", "2", "--temperature", "0.5"},
		{"--method", "alphatoken", "--val", val, "--fisher", "none", "--k", "2", "--normalize", "rank"},
		{"--method", "alphatoken", "--val", val, "--fisher", fisher, "--k", "2", "--precondition", "adam"},
	} {
		out := filepath.Join(dir, fmt.Sprintf("baseline-%d", i))
		args := append([]string{"--model", ref, "--data", train, "--out", out, "--steps", "2", "--batch", "4", "--max-len", "32"}, extra...)
		if err := runSFT(args); err != nil {
			t.Fatalf("%v: %v", extra, err)
		}
	}
}

// TestSFTHelpListsMethods: train-sft -h lists every registered method with its description.
func TestSFTHelpListsMethods(t *testing.T) {
	if err := runSFT([]string{"-h"}); err != flag.ErrHelp {
		t.Fatalf("-h: %v", err)
	}
	r := runCLI(t, "train-sft", "-h")
	out := r.stdout
	for _, n := range methods.Names() {
		in, _ := methods.Lookup(n)
		if !strings.Contains(out, "  "+n+" ") || !strings.Contains(out, in.Summary) {
			t.Errorf("train-sft -h does not list %s (%q)", n, in.Summary)
		}
	}
}

// captureStderr runs fn and returns what it printed on stderr.
func captureStderr(t *testing.T, fn func() error) (string, error) {
	t.Helper()
	old := os.Stderr
	r, w, _ := os.Pipe()
	os.Stderr = w
	done := make(chan string)
	go func() {
		var buf bytes.Buffer
		_, _ = io.Copy(&buf, r)
		done <- buf.String()
	}()
	err := fn()
	w.Close()
	os.Stderr = old
	return <-done, err
}

// TestCLIBadInput: clear errors naming the file and line, the flag, or the tensor.
func TestCLIBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte("{\"prompt\": \"a\", \"response\": \"b\"}\n{oops\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	type badCase struct {
		run  func([]string) error
		args []string
		want string
	}
	cases := []badCase{
		{runSFT, []string{"--model", dir, "--data", bad, "--out", dir}, "config.json"},
		{runSFT, []string{"--data", bad, "--out", dir}, "--model is required"},
		{runPretrain, []string{"--out", dir, "--corpus", filepath.Join(dir, "missing.txt")}, "missing.txt"},
		{runInspect, []string{filepath.Join(dir, "nope")}, "config.json"},
		{runSFT, []string{"--model", dir, "--data", bad, "--out", dir, "--dtype", "half"}, "--dtype \"half\""},
	}
	// Method errors need a loadable model: a tiny random checkpoint.
	lm, err := model.New(testBackendCLI(t), mustPreset(t), dtypes.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(dir, "ckpt")
	if err := saveFinal(lm, tokenizer.NewByteLevel(), ckpt); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.jsonl")
	if err := os.WriteFile(good, []byte("{\"prompt\": \"a\", \"response\": \"bc\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sft := []string{"--model", ckpt, "--data", good, "--out", filepath.Join(dir, "o"), "--steps", "1"}
	cases = append(cases,
		badCase{runSFT, append(sft, "--method", "alphatoken", "--val", good, "--k", "2"), "needs --fisher"},
		badCase{runSFT, append(sft, "--method", "alphatoken", "--fisher", "none", "--k", "2"), "needs --val"},
		badCase{runSFT, append(sft, "--method", "rho1"), "needs --helper"},
		badCase{runSFT, append(sft, "--method", "tokencleaning"), "registered: adaptation-only, alphatoken"},
		badCase{runSFT, append(sft, "--method", "full", "--rho-schedule", "linear"), "keeps no ρ share"},
		badCase{runSFT, append(sft, "--method", "stm", "--gamma", "0.2"), "has no parameter --gamma"},
		badCase{runScore, []string{"--model", ckpt, "--data", good, "--out", filepath.Join(dir, "s.jsonl"), "--method", "stm"}, "does not rank by AlphaToken values"},
	)
	for _, c := range cases {
		if err := c.run(c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: want error containing %q, got %v", c.args, c.want, err)
		}
	}
}

func testBackendCLI(t *testing.T) compute.Backend {
	b, err := model.NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustPreset(t *testing.T) *model.Config {
	tok := tokenizer.NewByteLevel()
	cfg, err := model.Preset("tiny", tok.VocabSize(), tok.BOS(), tok.EOS(), tok.PAD())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
