package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/dpo"
	"github.com/alphatoken/alphatoken/methods"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// writePairs writes n preference pairs (standard text format) to path.
func writePairs(t *testing.T, path string, n int) {
	t.Helper()
	var lines []any
	for i := range n {
		lines = append(lines, map[string]string{"prompt": fmt.Sprintf("q%c", 'a'+i%26), "chosen": "ab says hello", "rejected": "ab says hi!"})
	}
	writeLines(t, path, lines)
}

func readMetrics(t *testing.T, path string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// TestDPOWorkflow: train-dpo trains every DPO method from the command line (AlphaToken with a
// Fisher and validation pairs, checkpoints, resume, held-out pair metrics; the baselines with
// their inputs), and score on preference data writes one object per response token with its pair,
// branch and w.
func TestDPOWorkflow(t *testing.T) {
	dir := t.TempDir()
	refDir, modelDir := driftedPair(t, dir, model.Llama)
	pairs, val := filepath.Join(dir, "pairs.jsonl"), filepath.Join(dir, "val.jsonl")
	writePairs(t, pairs, 12)
	writePairs(t, val, 4)
	fisher := filepath.Join(dir, "fisher.safetensors")
	if err := runFisher([]string{"--model", refDir, "--prompts", pairs, "--n", "4", "--max-new-tokens", "4", "--k", "2", "--out", fisher}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "dpo")
	args := []string{"--model", modelDir, "--ref", refDir, "--data", pairs, "--val", val, "--fisher", fisher, "--k", "2",
		"--out", out, "--method", "alphatoken", "--steps", "4", "--batch", "4", "--max-len", "64", "--checkpoint-every", "2",
		"--eval", val, "--eval-every", "2", "--log-every", "1"}
	if err := runDPO(args); err != nil {
		t.Fatal(err)
	}
	if err := runDPO(append(args, "--resume")); err != nil {
		t.Fatal(err)
	}
	ms := readMetrics(t, filepath.Join(out, "metrics.jsonl"))
	if len(ms) != 4 {
		t.Fatalf("metrics.jsonl has %d lines, want 4", len(ms))
	}
	m := ms[1]["metrics"].(map[string]any)
	for _, k := range []string{"reward_accuracy", "reward_chosen", "reward_rejected", "reward_margin", "kept_chosen", "kept_rejected", "eval_reward_accuracy"} {
		if _, ok := m[k]; !ok {
			t.Errorf("metrics lack %s: %v", k, m)
		}
	}
	if m["kept_chosen"].(float64) != float64(alphatoken.KeepCount(0.5, int(m["tokens_chosen"].(float64)))) {
		t.Errorf("kept %v of %v chosen tokens", m["kept_chosen"], m["tokens_chosen"])
	}
	for i, extra := range [][]string{
		{"--method", "dpo"},
		{"--method", "dpo", "--loss", "ipo", "--ref-logps", "online"},
		{"--method", "dpo", "--loss", "hinge", "--beta", "0.5"},
		{"--method", "random", "--dpo-threshold", "shared"},
		{"--method", "alphatoken", "--val", val, "--fisher", "none", "--k", "2", "--dpo-coefficient", "masked"},
		{"--method", "stability-only", "--val", val, "--fisher", fisher, "--k", "2"},
		{"--method", "confpo"},
		{"--method", "confpo", "--confpo-simpo", "1"},
		{"--method", "sepo", "--oracle", modelDir, "--oracle-ref", refDir},
		{"--method", "sepo", "--oracle", modelDir, "--oracle-ref", refDir, "--budget-matched"},
		{"--method", "ti-dpo"},
		{"--method", "ti-dpo-budget", "--rho", "0.3"},
	} {
		o := filepath.Join(dir, fmt.Sprintf("m%d", i))
		args := append([]string{"--model", modelDir, "--ref", refDir, "--data", pairs, "--out", o, "--steps", "2", "--batch", "4", "--max-len", "64"}, extra...)
		if err := runDPO(args); err != nil {
			t.Fatalf("%v: %v", extra, err)
		}
	}

	scores := filepath.Join(dir, "scores.jsonl")
	if err := runScore([]string{"--model", modelDir, "--ref", refDir, "--data", pairs, "--val", val, "--fisher", fisher, "--k", "2",
		"--beta", "0.2", "--out", scores}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(scores)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []dpo.TokenScore
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var s dpo.TokenScore
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	count := map[string]int{}
	kept := map[string]int{}
	w := map[int]float64{}
	for _, s := range got {
		count[s.Branch]++
		if s.Kept {
			kept[s.Branch]++
		}
		if old, ok := w[s.Pair]; ok && old != s.W {
			t.Fatalf("pair %d has two weights %v, %v", s.Pair, old, s.W)
		}
		w[s.Pair] = s.W
		if !(s.W > 0 && s.W < 1) || math.IsNaN(s.DirTgt) {
			t.Fatalf("bad score %+v", s)
		}
	}
	if len(w) != 12 || count["chosen"] == 0 || count["rejected"] == 0 || count["chosen"]+count["rejected"] != len(got) {
		t.Fatalf("%d pairs, branches %v", len(w), count)
	}
	for _, b := range []string{"chosen", "rejected"} {
		if kept[b] != alphatoken.KeepCount(0.5, count[b]) {
			t.Errorf("%s: kept %d of %d", b, kept[b], count[b])
		}
	}
}

// TestDPOHelpListsMethods: train-dpo -h lists every registered DPO method with its description.
func TestDPOHelpListsMethods(t *testing.T) {
	if err := runDPO([]string{"-h"}); err != flag.ErrHelp {
		t.Fatalf("-h: %v", err)
	}
	out := runCLI(t, "train-dpo", "-h").stdout // help goes to stdout (exit 0)
	for _, n := range methods.DPONames() {
		in, _ := methods.LookupDPO(n)
		if !strings.Contains(out, "  "+n+" ") || !strings.Contains(out, in.Summary) {
			t.Errorf("train-dpo -h does not list %s (%q)", n, in.Summary)
		}
	}
}

// TestDPOBadInput: identical branches, an empty branch, a pair longer than the context, a
// reference with another vocabulary, bad settings: errors naming the file and line or the flag.
func TestDPOBadInput(t *testing.T) {
	dir := t.TempDir()
	lm, err := model.New(testBackendCLI(t), mustPreset(t), dtypes.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(dir, "ckpt")
	if err := saveFinal(lm, tokenizer.NewByteLevel(), ckpt); err != nil {
		t.Fatal(err)
	}
	bigCfg := *mustPreset(t)
	bigCfg.VocabSize += 8
	big, err := model.New(testBackendCLI(t), &bigCfg, dtypes.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	bigDir := filepath.Join(dir, "big")
	if err := saveFinal(big, tokenizer.NewByteLevel(), bigDir); err != nil {
		t.Fatal(err)
	}
	good := `{"prompt": "a", "chosen": "bc", "rejected": "bd"}`
	write := func(name string, lines ...string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	same := write("same.jsonl", good, `{"prompt": "a", "chosen": "bc", "rejected": "bc"}`)
	empty := write("empty.jsonl", good, `{"prompt": "a", "chosen": "bc", "rejected": ""}`)
	long := write("long.jsonl", good, good, `{"prompt": "a", "chosen": "`+strings.Repeat("x", 40)+`", "rejected": "b"}`)
	sft := write("sft.jsonl", `{"prompt": "a", "completion": "b"}`)
	goodPath := write("good.jsonl", good, good)
	base := func(data string, extra ...string) []string {
		return append([]string{"--model", ckpt, "--data", data, "--out", filepath.Join(dir, "o"), "--steps", "1", "--max-len", "32"}, extra...)
	}
	cases := []struct {
		args []string
		want string
	}{
		{base(same), "same.jsonl:2: chosen and rejected are identical"},
		{base(empty), "empty.jsonl:2"},
		{base(long), "long.jsonl:3: prompt + chosen has"},
		{base(sft), "sft.jsonl:1: columns [prompt completion] are not a preference format"},
		{base(goodPath, "--ref", bigDir), "--ref " + bigDir + ": its vocabulary"},
		{base(goodPath, "--method", "alphatoken", "--fisher", "none"), "needs --val"},
		{base(goodPath, "--method", "sepo"), "--oracle"},
		{base(goodPath, "--loss", "kto"), "--loss"},
		{base(goodPath, "--beta", "-1"), "--beta"},
		{base(goodPath, "--ref-logps", "later"), "--ref-logps"},
		{base(goodPath, "--method", "confpo", "--rho-schedule", "linear"), "--budget-matched"},
		{base(goodPath, "--method", "dpo", "--sepo-beta", "2"), "has no parameter --sepo-beta"},
		{base(goodPath, "--method", "nope"), "unknown DPO method"},
		{base(goodPath, "--rho", "1.5"), "--rho must be in (0, 1]"},
		{base(goodPath, "--warmup", "-1"), "--warmup must be ≥ 0"},
		{base(goodPath, "--eval-every", "0"), "--eval-every must be ≥ 1"},
		{base(goodPath, "--method", "alphatoken", "--window", "0"), "--window must be ≥ 1"},
	}
	for _, c := range cases {
		if err := runDPO(c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: want an error containing %q, got %v", c.args, c.want, err)
		}
	}
}
