package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
)

// cliResult is what a run of the alphatoken command line gave.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs this test binary as the alphatoken command (TestMain: childEnv) with args: a real
// process, so exit codes and panics (exit 2, "goroutine" traces) are what a user sees.
func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %v: %v", args, err)
	}
	return cliResult{out.String(), errb.String(), code}
}

// cliFixture is issue 14's set-up: a tiny reference from `pretrain --preset tiny --steps 6
// --batch 4 --seq 32`, a 24-line {prompt,response} JSONL, Fisher files of K = 2 and K = 1, and a
// finished train-sft run with checkpoints.
type cliFixture struct {
	dir, ref, train, fisher2, fisher1, sft string
}

var (
	fixtureOnce sync.Once
	fixture     *cliFixture
	fixtureErr  error
)

func getCLIFixture(t *testing.T) *cliFixture {
	t.Helper()
	fixtureOnce.Do(func() {
		dir, err := os.MkdirTemp("", "alphatoken-cli-")
		if err != nil {
			fixtureErr = err
			return
		}
		fixture, fixtureErr = buildCLIFixture(dir)
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixture
}

func buildCLIFixture(dir string) (*cliFixture, error) {
	f := &cliFixture{dir: dir, ref: filepath.Join(dir, "ref"), train: filepath.Join(dir, "train.jsonl"),
		fisher2: filepath.Join(dir, "fisher2.safetensors"), fisher1: filepath.Join(dir, "fisher1.safetensors"), sft: filepath.Join(dir, "sft")}
	var docs, lines []string
	for i := range 300 {
		docs = append(docs, strings.Repeat("ab", 1+i%5)+" says hello to "+string(rune('a'+i%26))+".")
	}
	for i := range 24 {
		lines = append(lines, `{"prompt": "q`+string(rune('a'+i%26))+`", "response": "ab says hello"}`)
	}
	corpus := filepath.Join(dir, "corpus.txt")
	if err := os.WriteFile(corpus, []byte(strings.Join(docs, "\n\n")), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.train, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	steps := [][]string{
		{"pretrain", "--out", f.ref, "--corpus", corpus, "--preset", "tiny", "--steps", "6", "--batch", "4", "--seq", "32", "--samples", "0"},
		{"fisher", "--model", f.ref, "--prompts", f.train, "--n", "6", "--max-new-tokens", "4", "--k", "2", "--out", f.fisher2},
		{"fisher", "--model", f.ref, "--prompts", f.train, "--n", "6", "--max-new-tokens", "4", "--k", "1", "--out", f.fisher1},
		{"train-sft", "--model", f.ref, "--data", f.train, "--out", f.sft, "--steps", "2", "--batch", "4", "--max-len", "32", "--checkpoint-every", "1"},
	}
	for _, s := range steps {
		if err := commands[s[0]].run(s[1:]); err != nil {
			return nil, fmt.Errorf("fixture %v: %w", s, err)
		}
	}
	return f, nil
}

// damaged writes a copy of checkpoint src (its files, not its subdirectories) into dst, with
// model.safetensors changed by editHeader (its header as JSON) or editFile (its bytes).
func damaged(t *testing.T, src, dst string, editHeader func(h map[string]any), editFile func([]byte) []byte) string {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "model.safetensors" && editHeader != nil {
			n := binary.LittleEndian.Uint64(b[:8])
			var h map[string]any
			if err := json.Unmarshal(b[8:8+n], &h); err != nil {
				t.Fatal(err)
			}
			editHeader(h)
			hdr, _ := json.Marshal(h)
			b = append(append(binary.LittleEndian.AppendUint64(nil, uint64(len(hdr))), hdr...), b[8+n:]...)
		}
		if e.Name() == "model.safetensors" && editFile != nil {
			b = editFile(b)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestCLIIssue14: every case of issue 14 this branch owns ends in exit status 1 with a message
// naming the file and tensor, or the flag and its allowed range; never a panic (exit 2).
func TestCLIIssue14(t *testing.T) {
	f := getCLIFixture(t)
	dir := t.TempDir()
	const victim = "model.layers.1.mlp.down_proj.weight"
	offsets := func(h map[string]any) []any { return h[victim].(map[string]any)["data_offsets"].([]any) }
	shift := func(by float64) func(h map[string]any) {
		return func(h map[string]any) {
			o := offsets(h)
			o[0], o[1] = o[0].(float64)+by, o[1].(float64)+by
		}
	}
	ckpt := func(name string, editHeader func(map[string]any), editFile func([]byte) []byte) string {
		return damaged(t, f.ref, filepath.Join(dir, name), editHeader, editFile)
	}
	half := func(b []byte) []byte { return b[:len(b)/2] }
	cut := ckpt("cut", nil, half) // issue 14 #1: `head -c 264620` of a 529240-byte file
	cutFile := filepath.Join(cut, "model.safetensors")
	pastEnd := ckpt("past-end", shift(1<<30), nil)
	negative := ckpt("negative", func(h map[string]any) { o := offsets(h); o[0] = -o[1].(float64) }, nil)
	huge := ckpt("huge", shift(1<<62), nil)
	overlap := ckpt("overlap", shift(-4), nil)
	absurd := ckpt("absurd", nil, func(b []byte) []byte { binary.LittleEndian.PutUint64(b, 1<<40); return b })
	shape := ckpt("shape", func(h map[string]any) { h[victim].(map[string]any)["shape"] = []int{64, 193} }, nil)
	// The finished train-sft run with its newest checkpoint's model, or its trainer state, cut.
	resumeModel := filepath.Join(dir, "sft-model")
	resumeState := filepath.Join(dir, "sft-state")
	for _, d := range []string{resumeModel, resumeState} {
		if err := os.CopyFS(d, os.DirFS(f.sft)); err != nil {
			t.Fatal(err)
		}
	}
	truncate := func(path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b[:len(b)/2], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	truncate(filepath.Join(resumeModel, "checkpoint-2", "model.safetensors"))
	truncate(filepath.Join(resumeState, "checkpoint-2", "trainer_state.safetensors"))
	cutFisher := filepath.Join(dir, "cut-fisher.safetensors")
	if b, err := os.ReadFile(f.fisher2); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(cutFisher, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	// A "Fisher" with negative entries and the right metadata.
	negFisher := filepath.Join(dir, "neg-fisher.safetensors")
	{
		fi, err := loadFisherForTest(f.fisher2)
		if err != nil {
			t.Fatal(err)
		}
		vals, _ := model.TensorFloat64(fi[victim])
		vals[3] = -0.25
		fi[victim], _ = model.TensorFromFloat64(vals, fi[victim].Shape().DType, fi[victim].Shape().Dimensions...)
		var named []model.NamedTensor
		for _, n := range model.SortedNames(fi) {
			named = append(named, model.NamedTensor{Name: n, Tensor: fi[n]})
		}
		if err := model.WriteSafetensors(negFisher, named, map[string]string{"alphatoken_fisher": "diag", "blocks": "2", "samples": "6"}); err != nil {
			t.Fatal(err)
		}
	}
	// A sharded checkpoint whose index names a file outside it.
	sharded := filepath.Join(dir, "sharded")
	{
		lm, _, err := openModel("", f.ref, "float32")
		if err != nil {
			t.Fatal(err)
		}
		if err := lm.Save(sharded, model.SaveOptions{MaxShardBytes: 200_000}); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"tokenizer.json", "tokenizer_config.json"} {
			b, _ := os.ReadFile(filepath.Join(f.ref, n))
			_ = os.WriteFile(filepath.Join(sharded, n), b, 0o644)
		}
		idx := filepath.Join(sharded, "model.safetensors.index.json")
		b, _ := os.ReadFile(idx)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		m["weight_map"].(map[string]any)[victim] = "../../x.safetensors"
		b, _ = json.Marshal(m)
		if err := os.WriteFile(idx, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	outs := 0
	out := func(string) string { outs++; return filepath.Join(dir, fmt.Sprintf("out-%d", outs)) } // a fresh --out per case
	sft := func(model string, extra ...string) []string {
		return append([]string{"train-sft", "--model", model, "--data", f.train, "--out", out(""), "--steps", "2",
			"--batch", "4", "--max-len", "32"}, extra...)
	}
	score := func(extra ...string) []string {
		return append([]string{"score", "--model", f.ref, "--data", f.train, "--val", f.train, "--out", filepath.Join(dir, "s.jsonl")}, extra...)
	}
	fisher := func(extra ...string) []string {
		return append([]string{"fisher", "--model", f.ref, "--prompts", f.train, "--out", filepath.Join(dir, "f.safetensors"), "--k", "2"}, extra...)
	}
	gen := func(extra ...string) []string {
		return append([]string{"generate", "--model", f.ref, "--prompt", "ab", "--max-new-tokens", "3"}, extra...)
	}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		// #1: safetensors data_offsets against the file, for every command that reads a model, a trainer state or a Fisher.
		{"inspect cut", []string{"inspect", cut}, []string{cutFile, "past the end", "truncated"}},
		{"generate cut", []string{"generate", "--model", cut, "--prompt", "ab"}, []string{cutFile, "past the end"}},
		{"train-sft cut", sft(cut), []string{cutFile, "past the end"}},
		{"eval cut", []string{"eval", "--model", cut, "--data", f.train}, []string{cutFile, "past the end"}},
		{"fisher cut", []string{"fisher", "--model", cut, "--prompts", f.train, "--out", filepath.Join(dir, "f.safetensors")}, []string{cutFile, "past the end"}},
		{"score cut", []string{"score", "--model", cut, "--data", f.train, "--out", filepath.Join(dir, "s.jsonl"), "--fisher", "none", "--val", f.train}, []string{cutFile}},
		{"train-sft --ref cut", sft(f.ref, "--method", "alphatoken", "--val", f.train, "--fisher", f.fisher2, "--k", "2", "--ref", cut), []string{cutFile}},
		{"train-sft --helper cut", sft(f.ref, "--method", "rho1", "--helper", cut), []string{cutFile}},
		{"train-sft --fisher cut", sft(f.ref, "--method", "alphatoken", "--val", f.train, "--fisher", cutFisher, "--k", "2"), []string{cutFisher, "past the end"}},
		{"resume, model cut", append(sft(f.ref), "--resume", "--out", resumeModel), []string{filepath.Join(resumeModel, "checkpoint-2", "model.safetensors")}},
		{"resume, trainer state cut", append(sft(f.ref), "--resume", "--out", resumeState), []string{filepath.Join(resumeState, "checkpoint-2", "trainer_state.safetensors")}},
		{"offsets past the end", []string{"inspect", pastEnd}, []string{victim, "past the end"}},
		{"negative offset", []string{"inspect", negative}, []string{victim, "0 ≤ begin ≤ end"}},
		{"2^62 offsets", []string{"inspect", huge}, []string{victim, "past the end"}},
		{"overlapping offsets", []string{"inspect", overlap}, []string{victim, "overlaps"}},
		{"absurd header length", []string{"inspect", absurd}, []string{filepath.Join(absurd, "model.safetensors"), "header length 1099511627776"}},
		{"shape × dtype ≠ size", []string{"inspect", shape}, []string{victim, "needs 12352×4 bytes"}},
		// #3
		{"--backend bogus", []string{"inspect", "--backend", "bogus", f.ref}, []string{`--backend "bogus"`, "unknown backend", "xla:cuda"}},
		{"--backend nope:1", []string{"eval", "--backend", "nope:1", "--model", f.ref, "--data", f.train}, []string{`unknown backend "nope"`}},
		// #4
		{"train-sft --batch 0 without --steps", []string{"train-sft", "--model", f.ref, "--data", f.train, "--out", out("b0"), "--batch", "0"}, []string{"--batch must be ≥ 1, got 0"}},
		{"fisher --n -1", fisher("--n", "-1"), []string{"--n must be ≥ 1, got -1"}},
		// #8: substitutions are errors
		{"--lr 0", sft(f.ref, "--lr", "0"), []string{"--lr must be a finite number > 0, got 0"}},
		{"--lr NaN", sft(f.ref, "--lr", "NaN"), []string{"--lr must be a finite number > 0, got NaN"}},
		{"--lr Inf", sft(f.ref, "--lr", "Inf"), []string{"--lr must be a finite number > 0, got +Inf"}},
		{"--batch 0 --steps 3", sft(f.ref, "--batch", "0"), []string{"--batch must be ≥ 1"}},
		{"--epochs 0", []string{"train-sft", "--model", f.ref, "--data", f.train, "--out", out("e0"), "--epochs", "0"}, []string{"--epochs must be a finite number > 0, got 0"}},
		{"--epochs NaN", []string{"train-sft", "--model", f.ref, "--data", f.train, "--out", out("en"), "--epochs", "NaN"}, []string{"--epochs must be a finite number > 0, got NaN"}},
		{"score --select bogus", score("--select", "bogus", "--fisher", "none"), []string{`--select "bogus": use one of top, bottom, random`}},
		{"fisher --max-new-tokens 0", fisher("--max-new-tokens", "0"), []string{"--max-new-tokens must be ≥ 1, got 0"}},
		{"score --max-len -5", score("--max-len", "-5", "--fisher", "none"), []string{"--max-len must be ≥ 2, or 0 (the model's context), got -5"}},
		{"generate --temperature NaN", gen("--temperature", "NaN"), []string{"--temperature must be a finite number ≥ 0, got NaN"}},
		// The same class of bug, audited over every command's flags.
		{"generate --top-p 0", gen("--top-p", "0"), []string{"--top-p must be in (0, 1], got 0"}},
		{"generate --top-p 1.5", gen("--top-p", "1.5"), []string{"--top-p must be in (0, 1]"}},
		{"generate --max-new-tokens 0", gen("--max-new-tokens", "0"), []string{"--max-new-tokens must be ≥ 1"}},
		{"generate --batch 0", gen("--batch", "0"), []string{"--batch must be ≥ 1"}},
		{"eval --max-len past the context", []string{"eval", "--model", f.ref, "--data", f.train, "--max-len", "100000"}, []string{"--max-len 100000 exceeds the model's context (max_position_embeddings 256): use --max-len 2..256"}},
		{"eval --batch -1", []string{"eval", "--model", f.ref, "--data", f.train, "--batch", "-1"}, []string{"--batch must be ≥ 1"}},
		{"pretrain --steps 0", []string{"pretrain", "--out", out("p"), "--corpus", f.train, "--steps", "0"}, []string{"--steps must be ≥ 1, got 0"}},
		{"pretrain --seq past the context", []string{"pretrain", "--out", out("p2"), "--corpus", f.train, "--preset", "tiny", "--seq", "1000"}, []string{"--seq 1000 exceeds the tiny preset's context of 256 tokens"}},
		{"pretrain --lr -1", []string{"pretrain", "--out", out("p3"), "--corpus", f.train, "--lr", "-1"}, []string{"--lr must be a finite number > 0"}},
		{"train-sft --steps -2", sft(f.ref, "--steps", "-2"), []string{"--steps must be ≥ 0, got -2"}},
		{"train-sft --max-len 1", sft(f.ref, "--max-len", "1"), []string{"--max-len must be ≥ 2"}},
		{"train-sft --max-len past the context", sft(f.ref, "--max-len", "300"), []string{"--max-len 300 exceeds the model's context"}},
		{"train-sft --weight-decay NaN", sft(f.ref, "--weight-decay", "NaN"), []string{"--weight-decay must be a finite number ≥ 0"}},
		{"train-sft --log-every 0", sft(f.ref, "--log-every", "0"), []string{"--log-every must be ≥ 1"}},
		{"train-sft --rho 0", sft(f.ref, "--rho", "0"), []string{"--rho must be in (0, 1], got 0"}},
		{"train-sft --rho 1.5", sft(f.ref, "--rho", "1.5"), []string{"--rho must be in (0, 1], got 1.5"}},
		{"train-sft --rho-start 0", sft(f.ref, "--rho-start", "0"), []string{"--rho-start must be in (0, 1]"}},
		{"train-sft --rho-schedule bogus", sft(f.ref, "--rho-schedule", "bogus"), []string{`--rho-schedule "bogus": use one of constant, linear, cosine`}},
		{"train-sft --lambda NaN", sft(f.ref, "--lambda", "NaN"), []string{"--lambda must be a finite number ≥ 0"}},
		{"train-sft --window 0", sft(f.ref, "--window", "0"), []string{"--window must be ≥ 1"}},
		{"train-sft --val-refresh 0", sft(f.ref, "--val-refresh", "0"), []string{"--val-refresh must be ≥ 1"}},
		{"train-sft --val-examples 0", sft(f.ref, "--val-examples", "0"), []string{"--val-examples must be ≥ 1"}},
		{"train-sft --normalize bogus", sft(f.ref, "--normalize", "bogus"), []string{`--normalize "bogus": use one of none, zscore, rank`}},
		{"train-sft --ghost bogus", sft(f.ref, "--ghost", "bogus"), []string{`--ghost "bogus": use one of auto, ghost, matrix`}},
		{"method parameter NaN", sft(f.ref, "--method", "sstoken", "--gamma", "NaN"), []string{`invalid value "NaN" for flag -gamma: not a finite number`}},
		{"fisher --kind bogus", fisher("--kind", "bogus"), []string{`--kind "bogus": use one of diag, kfac`}},
		{"fisher --k 3 on 2 blocks", fisher("--k", "3"), []string{"--k 3 exceeds the model's 2 blocks: use --k 1..2"}},
		{"fisher --sample-batch 0", fisher("--sample-batch", "0"), []string{"--sample-batch must be ≥ 1"}},
		{"fisher --max-new-tokens past the context", fisher("--max-new-tokens", "300"), []string{"--max-new-tokens 300 leaves no room for a prompt"}},
		{"diagnose pairs 0", []string{"diagnose", "value-propagation", "--pairs", "0"}, []string{"--pairs must be ≥ 1"}},
		{"diagnose without a kind", []string{"diagnose", "--seed", "2"}, []string{"diagnose needs a diagnostic first, one of value-propagation"}},
		{"ablate --steps -1", []string{"ablate", "--suite", "main", "--steps", "-1"}, []string{"--steps must be ≥ 0, got -1"}},
		{"ablate one seed", []string{"ablate", "--suite", "main", "--seeds", "1"}, []string{"--seeds 1:", "needs at least 2", "--one-seed"}},
		{"report one seed", []string{"report", "--suite", "ranking", "--seeds", "3"}, []string{"--seeds 3:", "needs at least 2"}},
		{"report with nothing cached", []string{"report", "--suite", "main", "--seeds", "1,2", "--cache", out("empty-cache"), "--out", out("report")},
			[]string{"the reference model of preset mini is not in the cache", "alphatoken ablate"}},
		{"ablate unknown preset", []string{"ablate", "--preset", "nosuch", "--suite", "main", "--seeds", "1,2"}, []string{`unknown preset "nosuch" (mini, mini-adapt, small)`}},
		{"train-sft precondition bogus", sft(f.ref, "--method", "alphatoken", "--precondition", "sgd"), []string{"--precondition", "sgd"}},
		// Issue 15: --k against the model, and a Fisher of other blocks.
		{"score default --k 3 on 2 blocks", score("--fisher", f.fisher2), []string{"--k 3 exceeds the model's 2 blocks: use --k 1..2"}},
		{"train-sft --k 3 on 2 blocks", sft(f.ref, "--method", "alphatoken", "--val", f.train, "--fisher", f.fisher2), []string{"--k 3 exceeds the model's 2 blocks: use --k 1..2"}},
		{"Fisher of K = 1 used at --k 2", score("--fisher", f.fisher1, "--k", "2"), []string{f.fisher1, "covers blocks 1 (made with K = 1)", "scores blocks 0..1", "use --k 1"}},
		// #9: a model as --fisher, negative Fisher values, a shard index pointing outside.
		{"model.safetensors as --fisher", score("--fisher", filepath.Join(f.ref, "model.safetensors"), "--k", "2"), []string{"not a Fisher file", filepath.Join(f.ref, "model.safetensors")}},
		{"negative Fisher entries", sft(f.ref, "--method", "alphatoken", "--val", f.train, "--fisher", negFisher, "--k", "2"), []string{negFisher, victim, "negative entry -0.25"}},
		{"shard index outside", []string{"inspect", sharded}, []string{"../../x.safetensors", victim, "inside the checkpoint directory"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runCLI(t, c.args...)
			if r.code != 1 || strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
				t.Fatalf("%v: exit %d (want 1, an error)\nstderr: %s", c.args, r.code, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("%v: stderr does not contain %q:\n%s", c.args, w, r.stderr)
				}
			}
		})
	}
}

// loadFisherForTest reads a Fisher file's tensors as they are stored.
func loadFisherForTest(path string) (map[string]*tensors.Tensor, error) {
	ts, _, err := model.ReadSafetensors(path)
	return ts, err
}

// TestCLIHelp: help and -h print on stdout and exit 0 for every command; a bare or unknown
// command is an error (exit 1); --version names the version, the commit and GoMLX's version.
func TestCLIHelp(t *testing.T) {
	r := runCLI(t, "help")
	if r.code != 0 || !strings.Contains(r.stdout, "commands:") {
		t.Fatalf("help: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
		if !strings.Contains(r.stdout, "  "+n+" ") {
			t.Errorf("help does not list %s", n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		for _, args := range [][]string{{"help", n}, {n, "-h"}, {n, "--help"}} {
			r := runCLI(t, args...)
			if r.code != 0 || !strings.Contains(r.stdout, "usage: alphatoken "+n) || !strings.Contains(r.stdout, "-backend") {
				t.Errorf("%v: exit %d, stdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
			}
		}
	}
	if r := runCLI(t, "train-sft", "-h"); !strings.Contains(r.stdout, "-lr float") || !strings.Contains(r.stdout, "methods (--method)") {
		t.Errorf("train-sft -h lacks its flags or the method list:\n%s", r.stdout)
	}
	for _, args := range [][]string{{}, {"bogus"}, {"help", "bogus"}, {"eval", "--bogus"}} {
		r := runCLI(t, args...)
		if r.code != 1 || r.stdout != "" || r.stderr == "" {
			t.Errorf("%v: exit %d (want 1), stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := runCLI(t, "eval", "--bogus"); !strings.Contains(r.stderr, "flag provided but not defined: -bogus (alphatoken help eval lists the flags)") {
		t.Errorf("unknown flag: %s", r.stderr)
	}
	bi, _ := debug.ReadBuildInfo()
	gomlx := ""
	for _, d := range bi.Deps {
		if d.Path == "github.com/gomlx/gomlx" {
			gomlx = d.Version
		}
	}
	for _, flag := range []string{"--version", "version"} {
		r := runCLI(t, flag)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "alphatoken ") || !strings.Contains(r.stdout, "\ncommit ") ||
			gomlx == "" || !strings.Contains(r.stdout, "\ngomlx "+gomlx+"\n") {
			t.Errorf("%s: exit %d\n%s", flag, r.code, r.stdout)
		}
	}
}

// TestVersionCommit: the commit line comes from the VCS settings the go command stamps.
func TestVersionCommit(t *testing.T) {
	bi := &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Deps: []*debug.Module{{Path: "github.com/gomlx/gomlx", Version: "v0.28.16"}},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-11-30T00:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	got := formatVersion(bi, true)
	for _, want := range []string{"alphatoken v1.2.3\n", "commit abc123 (2026-11-30T00:00:00Z, with uncommitted changes)\n", "gomlx v0.28.16\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("version %q lacks %q", got, want)
		}
	}
	if got := formatVersion(nil, false); !strings.Contains(got, "commit unknown") {
		t.Errorf("no build info: %q", got)
	}
}

// TestCLIStdoutResults: stdout carries only results (generate's texts, eval's JSON; nothing for
// score and fisher, which write files), progress goes to stderr.
func TestCLIStdoutResults(t *testing.T) {
	f := getCLIFixture(t)
	dir := t.TempDir()
	// generate: exactly the decoded greedy continuation, as the library computes it.
	lm, tok, err := openModel("", f.ref, "float32")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := data.TemplateByName("auto", tok)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := model.NewGenerator(lm)
	if err != nil {
		t.Fatal(err)
	}
	p := append([]int{tok.BOS()}, tok.Encode("ab says")...)
	outs, err := gen.Generate([][]int{p}, model.GenerateOptions{MaxNewTokens: 6, TopP: 1, Stop: tmpl.Stop(tok), Seed: 1, BatchSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "generate", "--model", f.ref, "--prompt", "ab says", "--raw", "--max-new-tokens", "6")
	if r.code != 0 || r.stdout != tok.Decode(outs[0])+"\n" || !strings.Contains(r.stderr, "generate: 1/1 prompts") {
		t.Fatalf("generate: exit %d, stdout %q (want %q), stderr:\n%s", r.code, r.stdout, tok.Decode(outs[0])+"\n", r.stderr)
	}
	r = runCLI(t, "generate", "--model", f.ref, "--prompts", f.train, "--max-new-tokens", "2", "--batch", "8")
	if r.code != 0 || strings.Count(r.stdout, "\n--- ") != 23 || !strings.HasPrefix(r.stdout, "--- 1\n") ||
		!strings.Contains(r.stderr, "generate: 24/24 prompts (100%)") {
		t.Fatalf("generate --prompts: exit %d, stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	// eval: one JSON object.
	r = runCLI(t, "eval", "--model", f.ref, "--data", f.train)
	var res evalResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil || strings.Count(r.stdout, "\n") != 1 || res.Examples != 24 ||
		!strings.Contains(r.stderr, "eval: 24/24 examples") {
		t.Fatalf("eval: exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	// score and fisher: nothing on stdout.
	for _, args := range [][]string{
		{"score", "--model", f.ref, "--data", f.train, "--val", f.train, "--fisher", "none", "--k", "2", "--out", filepath.Join(dir, "s.jsonl")},
		{"fisher", "--model", f.ref, "--prompts", f.train, "--n", "4", "--max-new-tokens", "3", "--k", "1", "--out", filepath.Join(dir, "f.safetensors")},
	} {
		r := runCLI(t, args...)
		if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, args[0]+": ") {
			t.Fatalf("%s: exit %d, stdout %q, stderr:\n%s", args[0], r.code, r.stdout, r.stderr)
		}
	}
	if r := runCLI(t, "fisher", "--model", f.ref, "--prompts", f.train, "--n", "4", "--max-new-tokens", "3", "--k", "1", "--out", filepath.Join(dir, "f2.safetensors")); !strings.Contains(r.stderr, "fisher: sampling: 4/4 prompts (100%)") ||
		!strings.Contains(r.stderr, "fisher: gradients: 4/4 prompts (100%)") {
		t.Fatalf("fisher progress:\n%s", r.stderr)
	}
}
