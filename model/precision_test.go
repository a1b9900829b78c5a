package model

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"
)

// TestMixedPrecision: with float32 storage and bfloat16 compute the logits are bfloat16-close to
// float32's, and the gradient of a weight arrives in float32 (the master weight's dtype).
func TestMixedPrecision(t *testing.T) {
	backend := testBackend(t)
	cfg := tinyConfigs()["qwen3"]
	lm, err := New(backend, cfg, dtypes.Float32, 12)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePrecision("bfloat16")
	if err != nil {
		t.Fatal(err)
	}
	tokens := testTokens(2, 8, cfg.VocabSize)
	run := func() (logits []float64, grad []float64, gradDType dtypes.DType) {
		res := gm.MustExecOnceN(backend, lm.Store, func(scope *gm.Scope, tok *Node) []*Node {
			out := Forward(cfg, lm.Weights(tok.Graph()), tok, ForwardOptions{})
			loss := ReduceAllMean(TokenNLL(out.Logits, ConvertDType(ShiftLeft(tok, 1, 0), dtypes.Int32)))
			g := Gradient(loss, lm.Param(LinearName(1, VProj)).NodeValue(tok.Graph()))
			return []*Node{ConvertDType(out.Logits, dtypes.Float32), g[0]}
		}, tokens)
		return toF64(t, res[0]), toF64(t, res[1]), res[1].Shape().DType
	}
	l32, g32, _ := run()
	if err := lm.SetPrecision(p); err != nil {
		t.Fatal(err)
	}
	if lm.DType != dtypes.Float32 || lm.ComputeDType() != dtypes.BFloat16 {
		t.Fatalf("precision bfloat16: storage %s, compute %s", lm.DType, lm.ComputeDType())
	}
	l16, g16, gdt := run()
	if gdt != dtypes.Float32 {
		t.Errorf("gradient of a float32 master weight is %s", gdt)
	}
	if e := relErr(l16, l32); e == 0 || e > 0.05 {
		t.Errorf("bfloat16-compute logits differ from float32 by %.3g (relative; want (0, 0.05])", e)
	}
	if e := relErr(g16, g32); e > 0.1 {
		t.Errorf("bfloat16-compute gradient differs from float32 by %.3g (relative)", e)
	}
	for _, x := range g16 {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			t.Fatal("non-finite gradient")
		}
	}
}

// TestBFloat16CheckpointRoundTrip: a bfloat16 checkpoint (written by bfloat16-pure) loads as float32
// and saves back as a float32 checkpoint with the same values, and that one loads as bfloat16 bit
// for bit; config.json states each file's dtype.
func TestBFloat16CheckpointRoundTrip(t *testing.T) {
	backend := testBackend(t)
	cfg := tinyConfigs()["llama"]
	lm, err := New(backend, cfg, dtypes.Float32, 5)
	if err != nil {
		t.Fatal(err)
	}
	pure, _ := ParsePrecision("bfloat16-pure")
	if err := lm.SetPrecision(pure); err != nil {
		t.Fatal(err)
	}
	dirBF, dir32 := t.TempDir(), t.TempDir()
	if err := lm.Save(dirBF, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	checkFiles := func(dir string, want dtypes.DType) {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"torch_dtype", "dtype"} {
			if s := fmt.Sprintf("%q: %q", key, DTypeName(want)); !strings.Contains(string(raw), s) {
				t.Errorf("%s/config.json lacks %s", dir, s)
			}
		}
		ts, _, err := ReadSafetensors(filepath.Join(dir, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		for name, tt := range ts {
			if tt.Shape().DType != want {
				t.Fatalf("%s: %s is %s, want %s", dir, name, tt.Shape().DType, want)
			}
		}
	}
	checkFiles(dirBF, dtypes.BFloat16)
	as32, err := Load(backend, dirBF, dtypes.Float32)
	if err != nil {
		t.Fatal(err)
	}
	mixed, _ := ParsePrecision("bfloat16")
	if err := as32.SetPrecision(mixed); err != nil { // training in mixed precision from a bf16 file
		t.Fatal(err)
	}
	if err := as32.Save(dir32, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	checkFiles(dir32, dtypes.Float32)
	back, err := Load(backend, dir32, dtypes.BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := lm.ParamTensors()
	b, _ := back.ParamTensors()
	for i := range a {
		if e := relErr(toF64(t, b[i].Tensor), toF64(t, a[i].Tensor)); e != 0 {
			t.Errorf("%s changed by bfloat16 → float32 → bfloat16: %g", a[i].Name, e)
		}
	}
}

// TestPrecisionErrors: an unknown --dtype and a backend without the dtype are refused naming --dtype.
func TestPrecisionErrors(t *testing.T) {
	if _, err := ParsePrecision("bf16"); err == nil || !strings.Contains(err.Error(), "--dtype") ||
		!strings.Contains(err.Error(), "bfloat16-pure") {
		t.Errorf("unknown precision: %v", err)
	}
	p, _ := ParsePrecision("bfloat16")
	noBF16 := compute.Capabilities{DTypes: map[dtypes.DType]bool{dtypes.Float32: true, dtypes.Float64: true}}
	err := p.checkCapabilities("toy", noBF16)
	if err == nil || !strings.Contains(err.Error(), "--dtype bfloat16") || !strings.Contains(err.Error(), `"toy"`) ||
		!strings.Contains(err.Error(), "Float32") {
		t.Errorf("backend without bfloat16: %v", err)
	}
	if err := p.Check(testBackend(t)); err != nil {
		t.Errorf("the go backend supports bfloat16: %v", err)
	}
}

// TestExplainOOM: XLA's out-of-memory errors become an OOMError saying what to change; other errors
// pass unchanged.
func TestExplainOOM(t *testing.T) {
	for _, msg := range []string{
		"RESOURCE_EXHAUSTED: Out of memory while trying to allocate 25769803776 bytes.",
		"failed to execute: RESOURCE_EXHAUSTED: Failed to allocate request for 12.00GiB (12884901888B) on device ordinal 0",
		"CUDA_ERROR_OUT_OF_MEMORY: out of memory",
	} {
		err := ExplainOOM(fmt.Errorf("train: step 0: %w", errors.New(msg)))
		var oom *OOMError
		if !errors.As(err, &oom) {
			t.Fatalf("%q not recognised as out of memory", msg)
		}
		for _, want := range []string{"--batch", "--max-len", "--dtype", msg} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("OOM message lacks %q: %v", want, err)
			}
		}
		if ExplainOOM(err) != err {
			t.Error("ExplainOOM wrapped an OOMError twice")
		}
	}
	plain := errors.New("model: checkpoint x: tensor y is missing")
	if ExplainOOM(plain) != plain || ExplainOOM(nil) != nil {
		t.Error("ExplainOOM changed an unrelated error")
	}
}

// TestMixedPrecisionGenerate: with float32 storage and bfloat16 compute, decoding with the key/value
// cache yields the greedy tokens of recomputing the whole forward pass.
func TestMixedPrecisionGenerate(t *testing.T) {
	backend := testBackend(t)
	for _, name := range []string{"llama", "qwen3"} {
		lm, err := New(backend, tinyConfigs()[name], dtypes.Float32, 8)
		if err != nil {
			t.Fatal(err)
		}
		randomizeNorms(t, lm)
		p, _ := ParsePrecision("bfloat16")
		if err := lm.SetPrecision(p); err != nil {
			t.Fatal(err)
		}
		gen, _ := NewGenerator(lm)
		prompts := [][]int{{1, 2, 3}, {4, 5, 6, 7, 8, 9, 10, 11, 12}, {13}}
		o := GenerateOptions{MaxNewTokens: 12}
		a, err := gen.Generate(prompts, o)
		if err != nil {
			t.Fatal(err)
		}
		o.NoCache = true
		b, err := gen.Generate(prompts, o)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(a, b, slices.Equal) {
			t.Errorf("%s: cached %v, recomputed %v", name, a, b)
		}
	}
}
