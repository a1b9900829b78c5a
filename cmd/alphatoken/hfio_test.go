package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/parquet-go/parquet-go"

	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// tinyCheckpoint writes a random tiny byte-level Llama checkpoint (model and tokenizer) to dir.
func tinyCheckpoint(t *testing.T, dir string) {
	t.Helper()
	backend, err := model.NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	tok := tokenizer.NewByteLevel()
	cfg, err := model.Preset("tiny", tok.VocabSize(), tok.BOS(), tok.EOS(), tok.PAD())
	if err != nil {
		t.Fatal(err)
	}
	lm, err := model.New(backend, cfg, dtypes.Float32, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := saveFinal(lm, tok, dir); err != nil {
		t.Fatal(err)
	}
}

// TestEvalCommand: eval prints exactly one JSON object on stdout (the go backend's own line goes
// to stderr), pre-tokenized ids are used as given, and mean_nll equals the masked-mean loss of the
// independent PyTorch implementation on the same tokens.
func TestEvalCommand(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	tinyCheckpoint(t, ckpt)
	type ex struct {
		Prompt     []int `json:"prompt_ids"`
		Completion []int `json:"completion_ids"`
	}
	exs := []ex{{[]int{257, 104, 105}, []int{32, 116, 104, 101, 114, 101}}, {[]int{257, 97}, []int{98, 99, 258}}, {[]int{257, 120, 121, 122, 10}, []int{48}}}
	var lines []any
	for _, e := range exs {
		lines = append(lines, e)
	}
	dataPath := filepath.Join(dir, "eval.jsonl")
	writeLines(t, dataPath, lines)
	out, err := captureStdout(t, func() error { return runEval([]string{"--model", ckpt, "--data", dataPath, "--batch", "2"}) })
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	var res evalResult
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%q", err, out)
	}
	if rest := strings.TrimSpace(out[dec.InputOffset():]); rest != "" {
		t.Fatalf("stdout has more than the JSON object: %q", out)
	}
	if res.Examples != 3 || res.Tokens != 6+3+1 || math.Abs(res.Perplexity-math.Exp(res.MeanNLL)) > 1e-9*res.Perplexity {
		t.Fatalf("result %+v", res)
	}
	// The PyTorch reference: loss = Σ mask·NLL / Σ mask over the completion positions.
	requireTorch(t)
	T := 0
	for _, e := range exs {
		T = max(T, len(e.Prompt)+len(e.Completion)+1)
	}
	var tokens, mask [][]int
	for _, e := range exs {
		seq, m := make([]int, T), make([]int, T)
		copy(seq, append(append([]int{}, e.Prompt...), e.Completion...))
		for p := len(e.Prompt) - 1; p < len(e.Prompt)+len(e.Completion)-1; p++ {
			m[p] = 1
		}
		tokens, mask = append(tokens, seq), append(mask, m)
	}
	in, _ := json.Marshal(map[string]any{"tokens": tokens, "loss_mask": mask})
	inPath, outPath := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.safetensors")
	if err := os.WriteFile(inPath, in, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(torchPython, filepath.Join("..", "..", "internal", "torchref", "model_ref.py"), "--model", ckpt, "--input", inPath,
		"--out", outPath, "--dtype", "float32")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("model_ref.py: %v\n%s", err, b)
	}
	ts, _, err := model.ReadSafetensors(outPath)
	if err != nil {
		t.Fatal(err)
	}
	var loss float64
	switch v := ts["loss"].Value().(type) {
	case float32:
		loss = float64(v)
	case float64:
		loss = v
	default:
		t.Fatalf("loss has type %T", v)
	}
	if math.Abs(loss-res.MeanNLL) > 1e-5*loss {
		t.Fatalf("mean_nll %.8f, PyTorch masked-mean loss %.8f", res.MeanNLL, loss)
	}
	t.Logf("eval mean_nll %.6f = torch %.6f over %d tokens", res.MeanNLL, loss, res.Tokens)
}

// TestHubCacheModel: --model Org/Name finds a checkpoint in $HF_HOME/hub through refs/main; a
// name not in the cache is an error naming the paths looked at.
func TestHubCacheModel(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HF_HOME", home)
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", "")
	hash := strings.Repeat("0123456789", 4)
	repo := filepath.Join(home, "hub", "models--tiny-org--tiny-llama")
	tinyCheckpoint(t, filepath.Join(repo, "snapshots", hash))
	if err := os.MkdirAll(filepath.Join(repo, "refs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(hash), 0o644); err != nil {
		t.Fatal(err)
	}
	dataPath := filepath.Join(t.TempDir(), "d.jsonl")
	writeLines(t, dataPath, []any{map[string]string{"prompt": "ab", "completion": "cd"}})
	out, err := captureStdout(t, func() error { return runEval([]string{"--model", "tiny-org/tiny-llama", "--data", dataPath}) })
	if err != nil || !strings.Contains(out, `"examples":1`) {
		t.Fatalf("eval via the Hub cache: %v\n%s", err, out)
	}
	if _, err := captureStdout(t, func() error { return runInspect([]string{"tiny-org/tiny-llama"}) }); err != nil {
		t.Fatal(err)
	}
	err = runEval([]string{"--model", "tiny-org/absent", "--data", dataPath})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(home, "hub", "models--tiny-org--absent")) {
		t.Fatalf("want an error naming the cache path, got %v", err)
	}
}

// TestScoreExportTRL: score --export trl writes train.jsonl and train.parquet that agree with each
// other and with score's per-token JSONL: labels are the kept response tokens (-100 elsewhere),
// values the token values.
func TestScoreExportTRL(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	tinyCheckpoint(t, ckpt)
	train, val := filepath.Join(dir, "train.jsonl"), filepath.Join(dir, "val.jsonl")
	var lines []any
	for i := range 6 {
		lines = append(lines, map[string]string{"prompt": "q" + string(rune('a'+i)), "completion": strings.Repeat("ab", 1+i%3)})
	}
	writeLines(t, train, lines)
	writeLines(t, val, lines[:2])
	out := filepath.Join(dir, "export")
	if err := runScore([]string{"--model", ckpt, "--data", train, "--val", val, "--k", "2", "--fisher", "none", "--out", out, "--export", "trl"}); err != nil {
		t.Fatal(err)
	}
	scores := readScores(t, filepath.Join(out, "scores.jsonl"))
	var fromJSONL []trlRow
	data, err := os.ReadFile(filepath.Join(out, "train.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var r trlRow
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatal(err)
		}
		fromJSONL = append(fromJSONL, r)
	}
	fromParquet, err := parquet.ReadFile[trlRow](filepath.Join(out, "train.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	if len(fromJSONL) != 6 || len(fromParquet) != 6 {
		t.Fatalf("%d JSONL rows, %d Parquet rows", len(fromJSONL), len(fromParquet))
	}
	kept, labelled := 0, 0
	for i := range fromJSONL {
		a, b := fromJSONL[i], fromParquet[i]
		if !slices.Equal(a.InputIDs, b.InputIDs) || !slices.Equal(a.Labels, b.Labels) || !slices.Equal(a.Values, b.Values) {
			t.Fatalf("row %d: JSONL %+v, Parquet %+v", i, a, b)
		}
		for _, l := range a.Labels {
			if l != ignoreIndex {
				labelled++
			}
		}
	}
	for _, s := range scores {
		r := fromJSONL[s.Example]
		j := s.Pos + 1
		if r.InputIDs[j] != int64(s.TokenID) || r.Values[j] != s.Value {
			t.Fatalf("score %+v vs row %+v", s, r)
		}
		if s.Kept {
			kept++
			if r.Labels[j] != int64(s.TokenID) {
				t.Fatalf("kept token %+v has label %d", s, r.Labels[j])
			}
		} else if r.Labels[j] != ignoreIndex {
			t.Fatalf("dropped token %+v has label %d", s, r.Labels[j])
		}
	}
	if kept == 0 || kept != labelled || kept == len(scores) {
		t.Fatalf("kept %d, labelled %d, scored %d", kept, labelled, len(scores))
	}
}

// TestEmptyRoleEveryCommand: issue 14 #2: an empty chat role (and {"messAges":[{}]}) is a clear
// file:line error for train-sft, fisher (ReadPrompts) and generate.
func TestEmptyRoleEveryCommand(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	tinyCheckpoint(t, ckpt)
	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte(`{"messages": [{"role": "", "content": "hi"}, {"role": "assistant", "content": "x"}]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	oddKey := filepath.Join(dir, "odd.jsonl")
	if err := os.WriteFile(oddKey, []byte(`{"messAges":[{}]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		run  func([]string) error
		args []string
		want string
	}{
		{runSFT, []string{"--model", ckpt, "--data", bad, "--out", filepath.Join(dir, "o1"), "--steps", "1"}, "bad.jsonl:1: messages[0]: empty role"},
		{runFisher, []string{"--model", ckpt, "--prompts", bad, "--out", filepath.Join(dir, "f.safetensors"), "--k", "2"}, "bad.jsonl:1: messages[0]: empty role"},
		{runGenerate, []string{"--model", ckpt, "--prompts", bad}, "bad.jsonl:1: messages[0]: empty role"},
		{runFisher, []string{"--model", ckpt, "--prompts", oddKey, "--out", filepath.Join(dir, "f.safetensors"), "--k", "2"}, "odd.jsonl:1: no \"prompt\""},
		{runGenerate, []string{"--model", ckpt, "--prompts", oddKey}, "odd.jsonl:1: no \"prompt\""},
		{runSFT, []string{"--model", ckpt, "--data", oddKey, "--out", filepath.Join(dir, "o2"), "--steps", "1"}, "odd.jsonl:1: columns [] are not an SFT format"},
	}
	for _, c := range cases {
		_, err := captureStdout(t, func() error { return c.run(c.args) })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: want %q, got %v", c.args, c.want, err)
		}
	}
}

// TestIssue14Inputs: issue 14 #6 (a tokenizer.json whose added token has empty content made
// go-huggingface allocate without bound) and #9 (invalid UTF-8 in JSONL was replaced by U+FFFD and
// trained on) end in clear errors naming the file (and line).
func TestIssue14Inputs(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	tinyCheckpoint(t, ckpt)
	// An HF tokenizer (no byte-level marker) with an added token of empty content.
	var tj map[string]any
	raw, err := os.ReadFile(filepath.Join(ckpt, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &tj); err != nil {
		t.Fatal(err)
	}
	tj["added_tokens"] = append(tj["added_tokens"].([]any), map[string]any{"id": 300, "content": "", "special": true})
	badTok := filepath.Join(dir, "badtok")
	tinyCheckpoint(t, badTok)
	b, _ := json.Marshal(tj)
	if err := os.WriteFile(filepath.Join(badTok, "tokenizer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(badTok, "tokenizer_config.json"), []byte(`{"eos_token": "<eos>"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	badUTF8 := filepath.Join(dir, "utf8.jsonl")
	if err := os.WriteFile(badUTF8, []byte("{\"prompt\": \"ok\", \"completion\": \"fine\"}\n{\"prompt\": \"caf\xe9\", \"completion\": \"x\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.jsonl")
	writeLines(t, good, []any{map[string]string{"prompt": "ab", "completion": "cd"}})
	cases := []struct {
		run  func([]string) error
		args []string
		want string
	}{
		{runGenerate, []string{"--model", badTok, "--prompt", "hi"}, filepath.Join(badTok, "tokenizer.json") + ": added_tokens[3] (id 300) has empty content"},
		{runSFT, []string{"--model", badTok, "--data", good, "--out", filepath.Join(dir, "o"), "--steps", "1"}, "has empty content"},
		{runSFT, []string{"--model", ckpt, "--data", badUTF8, "--out", filepath.Join(dir, "o2"), "--steps", "1"}, "utf8.jsonl:2: invalid UTF-8 at byte 16"},
		{runEval, []string{"--model", ckpt, "--data", badUTF8}, "utf8.jsonl:2: invalid UTF-8"},
	}
	for _, c := range cases {
		_, err := captureStdout(t, func() error { return c.run(c.args) })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: want %q, got %v", c.args, c.want, err)
		}
	}
}
