package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

const torchPython = "/usr/bin/python3"

func requireTorch(t *testing.T) {
	t.Helper()
	if os.Getenv("ALPHATOKEN_SKIP_TORCH") == "1" {
		t.Skip("ALPHATOKEN_SKIP_TORCH=1")
	}
	if out, err := exec.Command(torchPython, "-c", "import torch, numpy").CombinedOutput(); err != nil {
		t.Fatalf("needs %s with torch (apt-get install python3-torch) or ALPHATOKEN_SKIP_TORCH=1: %v\n%s", torchPython, err, out)
	}
}

func writeLines(t *testing.T, path string, lines []any) {
	t.Helper()
	var sb strings.Builder
	for _, l := range lines {
		b, _ := json.Marshal(l)
		sb.Write(b)
		sb.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readScores(t *testing.T, path string) []alphatoken.TokenScore {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []alphatoken.TokenScore
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var s alphatoken.TokenScore
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// driftedPair writes a reference checkpoint and a fine-tuned one (θ_ref plus a drift) under dir.
func driftedPair(t *testing.T, dir string, arch model.Arch) (refDir, modelDir string) {
	t.Helper()
	backend, err := model.NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	tok := tokenizer.NewByteLevel()
	cfg := &model.Config{Arch: arch, VocabSize: tok.VocabSize(), Hidden: 32, Layers: 3, Heads: 4, KVHeads: 2, HeadDim: 8,
		Intermediate: 48, RMSNormEps: 1e-5, RoPETheta: 10000, MaxPositions: 128, BOSTokenID: tok.BOS(),
		EOSTokenIDs: []int{tok.EOS()}, PadTokenID: tok.PAD(), DType: "float32"}
	if arch == model.Gemma3 { // sliding windows of 4 around a global layer, shorter than the examples
		cfg.HiddenAct, cfg.QueryPreAttnScalar, cfg.TieEmbeddings, cfg.RoPETheta, cfg.RoPELocalTheta = "gelu_pytorch_tanh", 12, true, 1e6, 1e4
		cfg.RoPEScaling = model.RoPEScaling{Type: "linear", Factor: 8}
		cfg.SlidingWindow, cfg.LayerTypes = 4, []string{model.SlidingAttention, model.FullAttention, model.SlidingAttention}
	}
	ref, err := model.New(backend, cfg, dtypes.Float32, 5)
	if err != nil {
		t.Fatal(err)
	}
	refDir, modelDir = filepath.Join(dir, "ref"), filepath.Join(dir, "model")
	if err := ref.Save(refDir, model.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := tok.Save(refDir); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(8, 9))
	for _, s := range cfg.ParamSpecs() {
		v := ref.Param(s.Name)
		vals, _ := model.TensorFloat64(v.MustValue())
		for i := range vals {
			vals[i] += 0.01 * rng.NormFloat64()
		}
		tt, _ := model.TensorFromFloat64(vals, dtypes.Float32, s.Shape...)
		if err := v.SetValue(tt); err != nil {
			t.Fatal(err)
		}
	}
	if err := ref.Save(modelDir, model.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := tok.Save(modelDir); err != nil {
		t.Fatal(err)
	}
	return refDir, modelDir
}

// TestScoreAgainstTorchBruteForce: `alphatoken score` on a model drifted from its reference agrees
// with the independent PyTorch brute force (internal/torchref/alphatoken_ref.py: per-token
// backward() and explicitly materialised per-token gradient matrices) on all four components, the
// value and the mask, in float64, for a diagonal and a K-FAC Fisher estimated by `alphatoken fisher`
// (the diagonal cases combine with the z-score normalisation, the K-FAC case with the rank), on
// Llama, Qwen2 and Gemma 3 (sliding windows) checkpoints.
func TestScoreAgainstTorchBruteForce(t *testing.T) {
	requireTorch(t)
	for _, tc := range []struct {
		kind string
		arch model.Arch
	}{{"diag", model.Llama}, {"kfac", model.Qwen2}, {"diag", model.Gemma3}} {
		kind := tc.kind
		t.Run(string(tc.arch)+"/"+kind, func(t *testing.T) {
			dir := t.TempDir()
			refDir, modelDir := driftedPair(t, dir, tc.arch)
			rng := rand.New(rand.NewPCG(3, 4))
			mk := func(n int) []any {
				var out []any
				for range n {
					p := make([]int, 2+rng.IntN(4))
					r := make([]int, 3+rng.IntN(8))
					for i := range p {
						p[i] = 'a' + rng.IntN(26)
					}
					for i := range r {
						r[i] = 'a' + rng.IntN(26)
					}
					out = append(out, map[string]any{"prompt_ids": p, "response_ids": r})
				}
				return out
			}
			trainPath, valPath, promptsPath := filepath.Join(dir, "train.jsonl"), filepath.Join(dir, "val.jsonl"), filepath.Join(dir, "prompts.jsonl")
			writeLines(t, trainPath, mk(5))
			writeLines(t, valPath, mk(4))
			writeLines(t, promptsPath, mk(6))
			fisherPath := filepath.Join(dir, "fisher.safetensors")
			if err := runFisher([]string{"--model", refDir, "--prompts", promptsPath, "--n", "6", "--max-new-tokens", "8",
				"--kind", kind, "--k", "2", "--out", fisherPath}); err != nil {
				t.Fatal(err)
			}
			goOut, pyOut := filepath.Join(dir, "go.jsonl"), filepath.Join(dir, "py.jsonl")
			common := []string{"--model", modelDir, "--ref", refDir, "--data", trainPath, "--val", valPath, "--fisher", fisherPath,
				"--k", "2", "--window", "4", "--lambda", "1.5", "--rho", "0.5", "--normalize", map[string]string{"diag": "zscore", "kfac": "rank"}[kind]}
			if err := runScore(append(append([]string{}, common...), "--out", goOut, "--dtype", "float64")); err != nil {
				t.Fatal(err)
			}
			pyArgs := append([]string{filepath.Join("..", "..", "internal", "torchref", "alphatoken_ref.py")}, common...)
			pyArgs[slicesIndex(pyArgs, "--data")] = "--train" // the reference script's name for it
			cmd := exec.Command(torchPython, append(pyArgs, "--fisher-kind", kind, "--out", pyOut, "--dtype", "float64")...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("alphatoken_ref.py: %v\n%s", err, out)
			}
			got, want := readScores(t, goOut), readScores(t, pyOut)
			if len(got) != len(want) || len(got) == 0 {
				t.Fatalf("%d scored tokens here, %d in PyTorch", len(got), len(want))
			}
			comps := []struct {
				name string
				get  func(s alphatoken.TokenScore) float64
			}{
				{"dir_tgt", func(s alphatoken.TokenScore) float64 { return s.DirTgt }},
				{"cau_tgt", func(s alphatoken.TokenScore) float64 { return s.CauTgt }},
				{"dir_prx", func(s alphatoken.TokenScore) float64 { return s.DirPrx }},
				{"cau_prx", func(s alphatoken.TokenScore) float64 { return s.CauPrx }},
				{"value", func(s alphatoken.TokenScore) float64 { return s.Value }},
			}
			for _, c := range comps {
				var scale, worst float64
				for i := range got {
					scale = math.Max(scale, math.Abs(c.get(want[i])))
				}
				for i := range got {
					if got[i].Example != want[i].Example || got[i].Pos != want[i].Pos || got[i].TokenID != want[i].TokenID {
						t.Fatalf("line %d: (%d,%d,%d) here, (%d,%d,%d) in PyTorch", i, got[i].Example, got[i].Pos, got[i].TokenID,
							want[i].Example, want[i].Pos, want[i].TokenID)
					}
					worst = math.Max(worst, math.Abs(c.get(got[i])-c.get(want[i])))
				}
				if scale == 0 {
					t.Errorf("%s is zero for every token: the comparison proves nothing", c.name)
				}
				if worst > 1e-6*scale {
					t.Errorf("%s: max abs difference %.3g (scale %.3g)", c.name, worst, scale)
				}
				t.Logf("%s: max |Go − PyTorch| = %.2g of scale %.2g", c.name, worst, scale)
			}
			mismatched := 0
			for i := range got {
				if got[i].Kept != want[i].Kept {
					mismatched++
				}
			}
			if mismatched > 0 {
				t.Errorf("%d of %d kept flags differ", mismatched, len(got))
			}
		})
	}
}

func slicesIndex(s []string, v string) int {
	for i := range s {
		if s[i] == v {
			return i
		}
	}
	panic(fmt.Sprintf("%q not in %v", v, s))
}
