package model

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"
)

// TorchPython is the interpreter with torch (Debian's python3-torch); the pyenv python3 on PATH
// of the development machines has none.
const TorchPython = "/usr/bin/python3"

// RequireTorch fails the test unless Debian's python3 with torch is available. Set
// ALPHATOKEN_SKIP_TORCH=1 to skip these cross-checks on a machine without it (CI installs it).
func RequireTorch(t testing.TB) {
	t.Helper()
	if os.Getenv("ALPHATOKEN_SKIP_TORCH") == "1" {
		t.Skip("ALPHATOKEN_SKIP_TORCH=1")
	}
	if out, err := exec.Command(TorchPython, "-c", "import torch, numpy").CombinedOutput(); err != nil {
		t.Fatalf("the PyTorch cross-check needs %s with torch and numpy (apt-get install python3-torch python3-numpy), "+
			"or ALPHATOKEN_SKIP_TORCH=1 to skip: %v\n%s", TorchPython, err, out)
	}
}

// TorchRefDir is internal/torchref, found from this source file.
func TorchRefDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "internal", "torchref")
}

// TestTorchReference builds tiny random Llama, Qwen2 and Qwen3 checkpoints, runs forward and
// backward here and in the independent PyTorch implementation (internal/torchref/model_ref.py,
// which reads the safetensors itself), and requires logits, loss and every parameter gradient
// to agree within relative error 1e-4 in float32 (and 1e-9 in float64).
func TestTorchReference(t *testing.T) {
	RequireTorch(t)
	backend := testBackend(t)
	for name, cfg := range tinyConfigs() {
		for _, dtype := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
			t.Run(name+"/"+DTypeName(dtype), func(t *testing.T) {
				lm, err := New(backend, cfg, dtype, 11)
				if err != nil {
					t.Fatal(err)
				}
				randomizeNorms(t, lm)
				dir := t.TempDir()
				if err := lm.Save(dir, SaveOptions{}); err != nil {
					t.Fatal(err)
				}
				const B, T = 3, 9
				tokens := testTokens(B, T, cfg.VocabSize)
				mask := make([][]float64, B)
				for b := range B {
					mask[b] = make([]float64, T)
					for p := b; p < T-1; p++ { // different prompt lengths per row
						mask[b][p] = 1
					}
				}
				in, _ := json.Marshal(map[string]any{"tokens": tokens, "loss_mask": mask})
				inPath, outPath := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.safetensors")
				if err := os.WriteFile(inPath, in, 0o644); err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(TorchPython, filepath.Join(TorchRefDir(), "model_ref.py"), "--model", dir,
					"--input", inPath, "--out", outPath, "--dtype", DTypeName(dtype))
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("model_ref.py: %v\n%s", err, out)
				}
				ref, _, err := ReadSafetensors(outPath)
				if err != nil {
					t.Fatal(err)
				}

				specs := cfg.ParamSpecs()
				exec := gm.MustNewExec(backend, lm.Store, func(scope *gm.Scope, tok, m *Node) []*Node {
					g := tok.Graph()
					out := Forward(cfg, lm.Weights(g), tok, ForwardOptions{})
					nll := TokenNLL(out.Logits, ConvertDType(ShiftLeft(tok, 1, 0), dtypes.Int32))
					m = ConvertDType(m, nll.DType())
					loss := Div(ReduceAllSum(Mul(nll, m)), ReduceAllSum(m))
					var params []*Node
					for _, s := range specs {
						params = append(params, lm.Param(s.Name).NodeValue(g))
					}
					return append([]*Node{out.Logits, loss}, Gradient(loss, params...)...)
				})
				res := exec.MustCall(tokens, mask)
				tol := 1e-4
				if dtype == dtypes.Float64 {
					tol = 1e-9
				}
				check := func(what string, got []float64, refName string) {
					rt, ok := ref[refName]
					if !ok {
						t.Fatalf("reference output has no %s", refName)
					}
					want := toF64(t, rt)
					if len(want) != len(got) {
						t.Fatalf("%s: %d values, reference has %d", what, len(got), len(want))
					}
					if e := relErr(got, want); e > tol || math.IsNaN(e) {
						t.Errorf("%s: relative error %.3g > %g", what, e, tol)
					}
				}
				check("logits", toF64(t, res[0]), "logits")
				check("loss", toF64(t, res[1]), "loss")
				for i, s := range specs {
					check("grad "+s.Name, toF64(t, res[2+i]), "grad."+s.Name)
				}
			})
		}
	}
}
