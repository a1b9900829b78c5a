package methods

import (
	"math"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

var backendOnce compute.Backend

func testBackend(t testing.TB) compute.Backend {
	if backendOnce == nil {
		b, err := model.NewBackend("")
		if err != nil {
			t.Fatal(err)
		}
		backendOnce = b
	}
	return backendOnce
}

func tinyLM(t testing.TB, seed uint64) *model.LM {
	cfg := &model.Config{Arch: model.Llama, VocabSize: tokenizer.ByteVocabSize, Hidden: 32, Layers: 2, Heads: 4, KVHeads: 2,
		HeadDim: 8, Intermediate: 64, RMSNormEps: 1e-5, RoPETheta: 10000, MaxPositions: 64, BOSTokenID: tokenizer.ByteBOS,
		EOSTokenIDs: []int{tokenizer.ByteEOS}, PadTokenID: tokenizer.BytePAD, DType: "float32"}
	lm, err := model.New(testBackend(t), cfg, dtypes.Float32, seed)
	if err != nil {
		t.Fatal(err)
	}
	return lm
}

// zeroParam sets an HF-named parameter of lm to zeros.
func zeroParam(t testing.TB, lm *model.LM, name string) {
	v := lm.Param(name)
	z, err := model.TensorFromFloat64(make([]float64, v.Shape().Size()), v.Shape().DType, v.Shape().Dimensions...)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.SetValue(z); err != nil {
		t.Fatal(err)
	}
}

// uniformLM is a tiny model whose every next-token loss is ln V (a zero LM head: all logits 0) and
// whose last block attends uniformly, A[r,c] = 1/(r+1) for c ≤ r (zero query projection).
func uniformLM(t testing.TB) *model.LM {
	lm := tinyLM(t, 11)
	zeroParam(t, lm, "lm_head.weight")
	zeroParam(t, lm, model.LinearName(lm.Config.Layers-1, model.QProj))
	return lm
}

// copyTask: respond with the prompt reversed — learnable, so the loss must drop.
func copyTask(n int) []data.Example {
	tok := tokenizer.NewByteLevel()
	var out []data.Example
	for i := range n {
		word := []byte{byte('a' + i%7), byte('a' + (i/7)%5), byte('a' + (i/3)%4)}
		rev := []byte{word[2], word[1], word[0]}
		prompt := append([]int{tokenizer.ByteBOS}, tok.Encode(string(word)+"=")...)
		resp := append(tok.Encode(string(rev)), tokenizer.ByteEOS)
		out = append(out, data.Example{IDs: append(prompt, resp...), PromptLen: len(prompt)})
	}
	return out
}

// handExamples are examples of given prompt and response lengths (token ids 'a'…).
func handExamples(lens ...[2]int) []data.Example {
	var out []data.Example
	for i, l := range lens {
		ids := make([]int, l[0]+l[1])
		for j := range ids {
			ids[j] = 'a' + (i+j)%26
		}
		out = append(out, data.Example{IDs: ids, PromptLen: l[0]})
	}
	return out
}

// handTable puts vals[i] on the label positions of example i, in order.
func handTable(t testing.TB, examples []data.Example, vals ...[]float32) *TokenTable {
	tt := newTable("hand", examples)
	for i, ex := range examples {
		lp := ex.LabelPositions()
		if len(vals[i]) != len(lp) {
			t.Fatalf("example %d has %d label positions, %d values given", i, len(lp), len(vals[i]))
		}
		for j, p := range lp {
			tt.Values[i][p] = vals[i][j]
		}
	}
	return tt
}

// testEnv is an Env on lm with every input a method may need: validation examples, θ_ref = a copy
// of lm, a diagonal Fisher of it, and a helper model (another copy).
func testEnv(t testing.TB, lm *model.LM, steps int) *Env {
	ref, err := lm.Clone()
	if err != nil {
		t.Fatal(err)
	}
	exs := copyTask(40)
	fisher, err := alphatoken.FisherFromSequences(ref, exs[:8], alphatoken.FisherOptions{Kind: alphatoken.FisherDiag, Blocks: 2})
	if err != nil {
		t.Fatal(err)
	}
	v := alphatoken.DefaultConfig()
	v.Blocks, v.ValRefresh, v.Window, v.ValExamples = 2, 1, 8, 8
	return &Env{LM: lm, Ref: ref, Helper: ref, Fisher: fisher, Val: exs[30:], Valuation: v, Options: DefaultOptions(),
		Steps: steps, BatchSize: 4, MaxLen: 32, Log: testLog{t}}
}

// requireDeterministic skips the rest of a bit-exactness test on a backend that does not promise
// bit-identical results run after run (XLA on CUDA); the go backend does, so there the test is strict.
func requireDeterministic(t *testing.T, backend compute.Backend) {
	t.Helper()
	if !model.Deterministic(backend) {
		t.Skipf("backend %q is not bit-deterministic (two identical runs may differ in the last bits), so bit-exact resuming cannot be checked on it", backend)
	}
}

type testLog struct{ t testing.TB }

func (l testLog) Write(p []byte) (int, error) { l.t.Log(string(p)); return len(p), nil }

// build builds a registered method that must be a selective one.
func build(t testing.TB, name string, env *Env) *selective {
	t.Helper()
	m, err := Build(name, env)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := m.(*selective)
	if !ok {
		t.Fatalf("%s is a %T", name, m)
	}
	return s
}

// keptMask runs a selective method's Prepare, score and keep rule at a step on the batch of
// examples[idx] (one row each; nil idx: all of them) and returns the mask and the scores.
func keptMask(t testing.TB, m *selective, lm *model.LM, examples []data.Example, idx []int, step int) ([][]bool, [][]float64) {
	t.Helper()
	if idx == nil {
		for i := range examples {
			idx = append(idx, i)
		}
	}
	longest := 0
	for _, i := range idx {
		longest = max(longest, len(examples[i].IDs))
	}
	b := data.MakeBatch(examples, idx, len(idx), data.BucketLen(longest, 16, 64), 0)
	extra, err := m.Prepare(step, &b)
	if err != nil {
		t.Fatal(err)
	}
	exec, err := model.NewStoreExec(lm.Backend, lm.Store, "mask", func(_ *gm.Scope, g *Graph, in []*Node) []*Node {
		bn := train.BatchNodes{Tokens: in[0], Targets: in[1], Weights: in[2], Noise: in[3], Extra: in[4:]}
		_, valid, score, _ := m.score(lm, bn, bn.Extra[2:])
		return []*Node{m.mask(bn, score, valid), ConvertDType(score, dtypes.Float64)}
	})
	if err != nil {
		t.Fatal(err)
	}
	noise := make([][]float32, len(b.Tokens))
	for i := range noise {
		noise[i] = make([]float32, b.T())
	}
	res, err := exec.Call(append([]any{b.Tokens, b.Targets, b.Weights, noise}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	return res[0].Value().([][]bool), res[1].Value().([][]float64)
}

// labelMask is the mask of rows holding examples[idx] (nil: all) restricted to each example's
// label positions, as 0/1 strings.
func labelMask(examples []data.Example, idx []int, mask [][]bool) []string {
	if idx == nil {
		for i := range examples {
			idx = append(idx, i)
		}
	}
	out := make([]string, len(idx))
	for r, i := range idx {
		for _, p := range examples[i].LabelPositions() {
			if mask[r][p] {
				out[r] += "1"
			} else {
				out[r] += "0"
			}
		}
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-5*(1+math.Abs(b)) }
