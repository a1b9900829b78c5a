package dpo

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
)

const torchPython = "/usr/bin/python3" // Debian's python3 with torch (internal/torchref/README.md)

func requireTorch(t *testing.T) {
	t.Helper()
	if os.Getenv("ALPHATOKEN_SKIP_TORCH") == "1" {
		t.Skip("ALPHATOKEN_SKIP_TORCH=1")
	}
	if out, err := exec.Command(torchPython, "-c", "import torch, numpy").CombinedOutput(); err != nil {
		t.Fatalf("the PyTorch cross-check needs %s with torch and numpy (apt-get install python3-torch python3-numpy), "+
			"or ALPHATOKEN_SKIP_TORCH=1 to skip: %v\n%s", torchPython, err, out)
	}
}

func torchRefDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "internal", "torchref")
}

// torchCase is one loss setting of the cross-check.
type torchCase struct {
	Beta        float64     `json:"beta"`
	Loss        LossType    `json:"loss_type"`
	Keep        [][]float64 `json:"keep,omitempty"`
	Coefficient Coefficient `json:"coefficient,omitempty"`
}

// TestTorchReference: plain DPO (sigmoid, ipo, hinge) and masked DPO (the unmasked and the masked
// coefficient) on tiny checkpoints written by this code agree with an independent PyTorch
// implementation written from TRL's formulas (internal/torchref/dpo_ref.py): the loss and the
// gradient of every parameter, relative error ≤ 1e-9 in float64 and ≤ 1e-4 in float32.
func TestTorchReference(t *testing.T) {
	requireTorch(t)
	for _, dtype := range []dtypes.DType{dtypes.Float64, dtypes.Float32} {
		t.Run(dtype.String(), func(t *testing.T) {
			cfg := tinyConfig()
			cfg.DType = model.DTypeName(dtype)
			ref, err := model.New(testBackend(t), cfg, dtype, 13)
			if err != nil {
				t.Fatal(err)
			}
			lm, err := ref.Clone()
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(17, 18))
			for _, s := range cfg.ParamSpecs() { // the policy drifts from the reference, norms included
				v := lm.Param(s.Name)
				vals, _ := model.TensorFloat64(v.MustValue())
				for i := range vals {
					vals[i] += 0.5 * model.InitStd * rng.NormFloat64()
					if len(s.Shape) == 1 {
						vals[i] += 0.1 * rng.NormFloat64()
					}
				}
				tt, _ := model.TensorFromFloat64(vals, dtype, s.Shape...)
				if err := v.SetValue(tt); err != nil {
					t.Fatal(err)
				}
			}
			dir := t.TempDir()
			lmDir, refDir := filepath.Join(dir, "model"), filepath.Join(dir, "ref")
			if err := lm.Save(lmDir, model.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := ref.Save(refDir, model.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			var pairs []data.Pair
			for range 3 {
				prompt := randIDs(rng, 2+rng.IntN(3), cfg.VocabSize)
				mk := func(n int) data.Example {
					return data.Example{IDs: append(append([]int(nil), prompt...), randIDs(rng, n, cfg.VocabSize)...), PromptLen: len(prompt)}
				}
				pairs = append(pairs, data.Pair{Chosen: mk(2 + rng.IntN(5)), Rejected: mk(2 + rng.IntN(5))})
			}
			examples := Examples(pairs)
			b := Batch(examples, []int{0, 1, 2}, 3, 12, 0)
			refNLL := hostNLL(t, ref, b)
			fx := &fixture{lm: lm, ref: ref, examples: examples, batch: b, refNLL: make([][]float64, len(examples))}
			for r, ei := range b.Index {
				fx.refNLL[ei] = refNLL[r]
			}
			keep := randomKeep(b, 23)
			var cases []torchCase
			for _, l := range LossTypes {
				cases = append(cases, torchCase{Beta: 0.1, Loss: l})
				if dtype == dtypes.Float64 || l == LossSigmoid {
					cases = append(cases, torchCase{Beta: 0.1, Loss: l, Keep: keep, Coefficient: Unmasked},
						torchCase{Beta: 0.1, Loss: l, Keep: keep, Coefficient: Masked})
				}
			}
			cases = append(cases, torchCase{Beta: 3, Loss: LossHinge}) // some pairs past the hinge
			mask := make([][]float64, len(b.Weights))
			for r, row := range b.Weights {
				mask[r] = make([]float64, len(row))
				for p, w := range row {
					mask[r][p] = float64(w)
				}
			}
			in, _ := json.Marshal(map[string]any{"tokens": b.Tokens, "loss_mask": mask, "cases": cases})
			inPath, outPath := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.safetensors")
			if err := os.WriteFile(inPath, in, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(torchPython, filepath.Join(torchRefDir(), "dpo_ref.py"), "--model", lmDir, "--ref", refDir,
				"--input", inPath, "--out", outPath, "--dtype", model.DTypeName(dtype))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("dpo_ref.py: %v\n%s", err, out)
			}
			want, _, err := model.ReadSafetensors(outPath)
			if err != nil {
				t.Fatal(err)
			}
			tol := 1e-4
			if dtype == dtypes.Float64 {
				tol = 1e-9
			}
			specs := cfg.ParamSpecs()
			for i, tc := range cases {
				c := Config{Beta: tc.Beta, Loss: tc.Loss, Threshold: Separate, Coefficient: Unmasked}
				label := fmt.Sprintf("%s β=%g", tc.Loss, tc.Beta)
				var gotL float64
				var got []float64
				if tc.Keep == nil {
					gotL, got = fx.lossAndGrads(t, func(nll, ref, weights *Node, _ []*Node) *Node { return c.Plain(nll, ref, weights) })
				} else {
					c.Coefficient = tc.Coefficient
					label += " masked/" + string(tc.Coefficient)
					gotL, got = fx.lossAndGrads(t, func(nll, ref, weights *Node, ex []*Node) *Node {
						l, _ := c.MaskedLoss(nll, ref, weights, ex[0], RealPairs(weights))
						return l
					}, tc.Keep)
				}
				wl, _ := model.TensorFloat64(want[fmt.Sprintf("%d/loss", i)])
				if e := math.Abs(gotL-wl[0]) / math.Max(math.Abs(wl[0]), 1e-300); e > tol || math.IsNaN(e) {
					t.Errorf("%s: loss %.12g, torch %.12g (relative error %.3g)", label, gotL, wl[0], e)
				}
				var wg []float64
				for _, s := range specs {
					g, ok := want[fmt.Sprintf("%d/grad.%s", i, s.Name)]
					if !ok {
						t.Fatalf("torch output lacks the gradient of %s", s.Name)
					}
					v, _ := model.TensorFloat64(g)
					wg = append(wg, v...)
				}
				if e := relErr(got, wg); e > tol || math.IsNaN(e) {
					t.Errorf("%s: gradient relative error %.3g > %g", label, e, tol)
				}
			}
		})
	}
}
