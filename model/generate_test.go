package model

import (
	"math"
	"slices"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"
)

func TestGenerate(t *testing.T) {
	backend := testBackend(t)
	cfg := tinyConfigs()["qwen2"]
	lm, err := New(backend, cfg, dtypes.Float32, 5)
	if err != nil {
		t.Fatal(err)
	}
	randomizeNorms(t, lm)
	gen, err := NewGenerator(lm)
	if err != nil {
		t.Fatal(err)
	}
	prompts := [][]int{{1, 2, 3}, {4, 5, 6, 7, 8, 9, 10}, {11}}
	opts := GenerateOptions{MaxNewTokens: 6, Quantum: 4}
	batched, err := gen.Generate(prompts, opts)
	if err != nil {
		t.Fatal(err)
	}
	// The key/value cache gives the same tokens as re-running the whole forward pass, greedy and
	// sampled (float32 ties aside, the logits agree to rounding).
	for _, o := range []GenerateOptions{{MaxNewTokens: 9, Quantum: 4}, {MaxNewTokens: 9, Temperature: 1, TopP: 0.95, Seed: 3}} {
		withCache, err := gen.Generate(prompts, o)
		if err != nil {
			t.Fatal(err)
		}
		o.NoCache = true
		without, err := gen.Generate(prompts, o)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(withCache, without, slices.Equal) {
			t.Errorf("cached %v, recomputed %v", withCache, without)
		}
	}
	// Padding and batching do not change greedy outputs.
	opts.BatchSize = 1
	for i, p := range prompts {
		alone, err := gen.Generate([][]int{p}, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(alone[0], batched[i]) {
			t.Errorf("prompt %d: batched %v, alone %v", i, batched[i], alone[0])
		}
	}
	// The first greedy token is the argmax of a plain forward pass.
	logits := gm.MustExecOnce(backend, lm.Store, func(scope *gm.Scope, tok *Node) *Node {
		return Forward(cfg, lm.Weights(tok.Graph()), tok, ForwardOptions{}).Logits
	}, [][]int32{{4, 5, 6, 7, 8, 9, 10}})
	vals := toF64(t, logits)
	v := cfg.VocabSize
	last := vals[6*v : 7*v]
	best := 0
	for j := range last {
		if last[j] > last[best] {
			best = j
		}
	}
	if batched[1][0] != best {
		t.Errorf("first greedy token %d, argmax %d", batched[1][0], best)
	}
	// Stop tokens end a sequence (and are kept).
	stop := batched[1][2]
	stopped, _ := gen.Generate(prompts[1:2], GenerateOptions{MaxNewTokens: 6, Stop: []int{stop}})
	if idx := slices.Index(stopped[0], stop); idx < 0 || idx != len(stopped[0])-1 {
		t.Errorf("stop token %d: output %v", stop, stopped[0])
	}
	// Sampling is reproducible from the seed and differs across seeds.
	s1, _ := gen.Generate(prompts, GenerateOptions{MaxNewTokens: 8, Temperature: 1.5, TopP: 0.9, Seed: 1})
	s2, _ := gen.Generate(prompts, GenerateOptions{MaxNewTokens: 8, Temperature: 1.5, TopP: 0.9, Seed: 1})
	s3, _ := gen.Generate(prompts, GenerateOptions{MaxNewTokens: 8, Temperature: 1.5, TopP: 0.9, Seed: 2})
	if !slices.EqualFunc(s1, s2, slices.Equal) {
		t.Error("same seed, different samples")
	}
	if slices.EqualFunc(s1, s3, slices.Equal) {
		t.Error("different seeds, identical samples")
	}
	// Too-long prompts are refused.
	if _, err := gen.Generate([][]int{make([]int, cfg.MaxPositions)}, opts); err == nil {
		t.Error("a prompt filling the context should be refused")
	}
}

func TestScorer(t *testing.T) {
	backend := testBackend(t)
	cfg := tinyConfigs()["llama"]
	lm, _ := New(backend, cfg, dtypes.Float64, 6)
	sc, err := NewScorer(lm)
	if err != nil {
		t.Fatal(err)
	}
	seqs := [][]int{{1, 2, 3, 4, 5}, {6, 7, 8}}
	ll, n, err := sc.LogLikelihoods(seqs, []int{3, 1}, 4)
	if err != nil {
		t.Fatal(err)
	}
	if n[0] != 2 || n[1] != 2 {
		t.Fatalf("counts %v", n)
	}
	// Reference: log-softmax of a direct forward.
	for i, s := range seqs {
		tok := make([]int32, len(s))
		for j, x := range s {
			tok[j] = int32(x)
		}
		lp := gm.MustExecOnce(backend, lm.Store, func(scope *gm.Scope, tk *Node) *Node {
			return LogProbs(Forward(cfg, lm.Weights(tk.Graph()), tk, ForwardOptions{}).Logits)
		}, [][]int32{tok})
		vals := toF64(t, lp)
		start := []int{3, 1}[i]
		var want float64
		for p := start - 1; p+1 < len(s); p++ {
			want += vals[p*cfg.VocabSize+s[p+1]]
		}
		if math.Abs(ll[i]-want) > 1e-10 {
			t.Errorf("sequence %d: %.12f, want %.12f", i, ll[i], want)
		}
	}
}

// TestCacheMatchesRecompute: for every architecture variant, decoding with the cache yields the
// same greedy tokens as recomputing the whole forward pass, on prompts of different lengths.
func TestCacheMatchesRecompute(t *testing.T) {
	backend := testBackend(t)
	for name, cfg := range tinyConfigs() {
		lm, err := New(backend, cfg, dtypes.Float64, 8)
		if err != nil {
			t.Fatal(err)
		}
		randomizeNorms(t, lm)
		gen, _ := NewGenerator(lm)
		prompts := [][]int{{1, 2, 3}, {4, 5, 6, 7, 8, 9, 10, 11, 12}, {13}}
		o := GenerateOptions{MaxNewTokens: 12}
		a, err := gen.Generate(prompts, o)
		if err != nil {
			t.Fatal(err)
		}
		o.NoCache = true
		b, _ := gen.Generate(prompts, o)
		if !slices.EqualFunc(a, b, slices.Equal) {
			t.Errorf("%s: cached %v, recomputed %v", name, a, b)
		}
	}
}

// BenchmarkGenerate: 64 prompts of ~60 tokens, 48 new tokens each, mini preset, with and without
// the key/value cache.
func BenchmarkGenerate(b *testing.B) {
	backend := testBackend(b)
	cfg, _ := Preset("mini", 259, 257, 258, 256)
	lm, _ := New(backend, cfg, dtypes.Float32, 1)
	gen, _ := NewGenerator(lm)
	prompts := make([][]int, 64)
	for i := range prompts {
		prompts[i] = make([]int, 50+i%20)
		for j := range prompts[i] {
			prompts[i][j] = 97 + (i*7+j)%26
		}
	}
	for _, noCache := range []bool{false, true} {
		b.Run(map[bool]string{false: "cache", true: "recompute"}[noCache], func(b *testing.B) {
			for range b.N {
				if _, err := gen.Generate(prompts, GenerateOptions{MaxNewTokens: 48, BatchSize: 64, NoCache: noCache}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(64*48*b.N)/b.Elapsed().Seconds(), "new-tokens/s")
		})
	}
}
