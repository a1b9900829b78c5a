package model

import (
	"math"
	"slices"
	"testing"
	"time"

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

// TestCacheMatchesRecompute: for every architecture variant, in float32 and float64, decoding with
// the on-device cache yields the same tokens as recomputing the whole forward pass, greedy and
// sampled (temperature, top-p), on prompts of different lengths (several length buckets, a padded
// last batch).
func TestCacheMatchesRecompute(t *testing.T) {
	backend := testBackend(t)
	prompts := [][]int{{1, 2, 3}, {4, 5, 6, 7, 8, 9, 10, 11, 12}, {13}, {14, 15, 16, 17, 18}, {19, 20}}
	modes := []GenerateOptions{
		{MaxNewTokens: 12, Quantum: 4, BatchSize: 3},
		{MaxNewTokens: 12, Quantum: 4, BatchSize: 3, Temperature: 1, Seed: 5},
		{MaxNewTokens: 12, Quantum: 8, BatchSize: 2, Temperature: 0.7, TopP: 0.8, Seed: 6},
	}
	for name, cfg := range tinyConfigs() {
		for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
			lm, err := New(backend, cfg, dt, 8)
			if err != nil {
				t.Fatal(err)
			}
			randomizeNorms(t, lm)
			gen, _ := NewGenerator(lm)
			for _, o := range modes {
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
					t.Errorf("%s %s T=%g top-p %g: cached %v, recomputed %v", name, dt, o.Temperature, o.TopP, a, b)
				}
				for i := range a {
					if len(a[i]) != o.MaxNewTokens {
						t.Errorf("%s %s: prompt %d got %d tokens, want %d", name, dt, i, len(a[i]), o.MaxNewTokens)
					}
				}
			}
		}
	}
}

// TestSamplingIndependentOfBatch: a prompt's sampled continuation depends only on (Seed, its index):
// the same with any batch size, with more prompts after it, and with or without the cache.
func TestSamplingIndependentOfBatch(t *testing.T) {
	backend := testBackend(t)
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		lm, err := New(backend, tinyConfigs()["qwen3"], dt, 9)
		if err != nil {
			t.Fatal(err)
		}
		randomizeNorms(t, lm)
		gen, _ := NewGenerator(lm)
		prompts := [][]int{{1, 2, 3}, {4, 5, 6, 7, 8, 9, 10, 11, 12}, {13}, {14, 15, 16, 17, 18}, {19, 20}}
		more := append(slices.Clone(prompts), []int{21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 0, 1}, []int{2})
		base := GenerateOptions{MaxNewTokens: 10, Temperature: 1.3, TopP: 0.9, Seed: 11, Quantum: 4, BatchSize: 5}
		want, err := gen.Generate(prompts, base)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []struct {
			name    string
			prompts [][]int
			opts    func(*GenerateOptions)
		}{
			{"batch 1", prompts, func(o *GenerateOptions) { o.BatchSize = 1 }},
			{"batch 2", prompts, func(o *GenerateOptions) { o.BatchSize = 2 }},
			{"more prompts", more, func(o *GenerateOptions) { o.BatchSize = 4 }},
			{"quantum 16", prompts, func(o *GenerateOptions) { o.Quantum = 16 }},
			{"recomputed", prompts, func(o *GenerateOptions) { o.NoCache = true; o.BatchSize = 3 }},
		} {
			o := base
			v.opts(&o)
			got, err := gen.Generate(v.prompts, o)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got[:len(prompts)], want, slices.Equal) {
				t.Errorf("%s %s: %v, want %v", dt, v.name, got[:len(prompts)], want)
			}
		}
		// Another seed gives other samples.
		base.Seed = 12
		other, _ := gen.Generate(prompts, base)
		if slices.EqualFunc(other, want, slices.Equal) {
			t.Errorf("%s: seeds 11 and 12 sample the same continuations", dt)
		}
	}
}

// TestGenerateLimits: max_position_embeddings ends a row (prompt + generated = MaxPositions) and
// StopFunc sees each prompt's index and tokens so far, with and without the cache.
func TestGenerateLimits(t *testing.T) {
	backend := testBackend(t)
	cfg := tinyConfigs()["llama"]
	lm, _ := New(backend, cfg, dtypes.Float64, 4)
	gen, _ := NewGenerator(lm)
	long := make([]int, cfg.MaxPositions-3)
	for i := range long {
		long[i] = 1 + i%30
	}
	prompts := [][]int{{1, 2}, long, {5}}
	for _, noCache := range []bool{false, true} {
		var seen []int
		out, err := gen.Generate(prompts, GenerateOptions{MaxNewTokens: 8, Temperature: 1, Seed: 2, NoCache: noCache,
			StopFunc: func(i int, gen []int) bool {
				seen = append(seen, i)
				return i == 2 && len(gen) == 2
			}})
		if err != nil {
			t.Fatal(err)
		}
		if got := []int{len(out[0]), len(out[1]), len(out[2])}; !slices.Equal(got, []int{8, 3, 2}) {
			t.Errorf("noCache=%v: lengths %v, want [8 3 2] (max positions %d)", noCache, got, cfg.MaxPositions)
		}
		if len(seen) != 8+3+2 || slices.Max(seen) != 2 {
			t.Errorf("noCache=%v: StopFunc saw prompts %v", noCache, seen)
		}
	}
	if _, err := gen.Generate(prompts, GenerateOptions{MaxNewTokens: 2, TopP: 1.5}); err == nil {
		t.Error("TopP 1.5 accepted")
	}
}

// TestSampler checks the in-graph sampler on fixed logits over many rows (one key per row): greedy
// is the argmax; sampled frequencies match softmax(z/T) (each within 4.5 standard errors), top-p
// never leaves the nucleus and samples it in proportion; the uniforms are the documented hash.
func TestSampler(t *testing.T) {
	backend := testBackend(t)
	z := []float64{1.2, -0.3, 2.0, 0.5, 2.0 - 1e-9, -1.5, 0.1}
	const n = 20000
	v := len(z)
	logits := make([][]float32, n)
	keys := make([][]uint32, n)
	for i := range logits {
		logits[i] = make([]float32, v)
		for j := range z {
			logits[i][j] = float32(z[j])
		}
		k := SampleKey(42, i, 3)
		keys[i] = k[:]
	}
	draw := func(temp, topP float64) []int {
		res := gm.MustExecOnceN(backend, gm.NewStore(), func(scope *gm.Scope, l, k *Node) []*Node {
			return []*Node{sampleTokens(l, k, temp, topP), sampleUniforms(k, v)}
		}, logits, keys)
		ids := res[0].Value().([]int32)
		u := res[1].Value().([][]float32)
		for _, i := range []int{0, 1, n - 1} {
			for j := range v {
				if want := hostUniform(keys[i], j); u[i][j] != want {
					t.Fatalf("uniform (%d, %d) = %v, hash gives %v", i, j, u[i][j], want)
				}
			}
		}
		counts := make([]int, v)
		for _, id := range ids {
			counts[id]++
		}
		return counts
	}
	if c := draw(0, 0); c[2] != n {
		t.Errorf("greedy picked %v, want all %d on id 2 (the first of the tied maxima)", c, n)
	}
	check := func(name string, counts []int, p []float64) {
		for j := range p {
			want := float64(n) * p[j]
			sd := math.Sqrt(float64(n) * p[j] * (1 - p[j]))
			if math.Abs(float64(counts[j])-want) > 4.5*sd+0.5 {
				t.Errorf("%s: id %d drawn %d times, expected %.0f ± %.0f (counts %v)", name, j, counts[j], want, sd, counts)
			}
		}
	}
	softmax := func(temp float64, keep func(j int) bool) []float64 {
		p := make([]float64, v)
		var sum float64
		for j := range z {
			if keep(j) {
				p[j] = math.Exp(z[j] / temp)
				sum += p[j]
			}
		}
		for j := range p {
			p[j] /= sum
		}
		return p
	}
	all := func(int) bool { return true }
	check("T=1", draw(1, 0), softmax(1, all))
	check("T=0.5", draw(0.5, 1), softmax(0.5, all))
	// softmax(z) ≈ [.17 .04 .38 .08 .38 .01 .06]: the 0.8-nucleus is {2, 4, 0} (mass 0.93; {2, 4} has 0.76).
	nucleus := func(j int) bool { return j == 0 || j == 2 || j == 4 }
	check("T=1 top-p 0.8", draw(1, 0.8), softmax(1, nucleus))
}

// hostUniform is sampleUniforms's hash in Go: (fmix32(fmix32(lo + j·0x9e3779b9) ⊕ hi) >> 8 + ½) / 2²⁴.
func hostUniform(key []uint32, j int) float32 {
	fmix := func(h uint32) uint32 {
		h ^= h >> 16
		h *= 0x85ebca6b
		h ^= h >> 13
		h *= 0xc2b2ae35
		return h ^ h>>16
	}
	h := fmix(fmix(key[0]+uint32(j)*0x9e3779b9) ^ key[1])
	return (float32(h>>8) + 0.5) / (1 << 24)
}

// BenchmarkGenerate: 64 prompts of 50–69 tokens, 48 new tokens each at temperature 1 (the Fisher's
// sampling), mini preset, in one batch: the on-device cache and sampler, the old host-side cache
// with host sampling (hostcache_test.go), and recomputation without a cache. The three run in turn
// within each iteration, so the ratios are taken under the same load.
func BenchmarkGenerate(b *testing.B) {
	backend := testBackend(b)
	cfg, _ := Preset("mini", 259, 257, 258, 256)
	lm, _ := New(backend, cfg, dtypes.Float32, 1)
	gen, _ := NewGenerator(lm)
	host, err := newHostCachedGenerator(lm)
	if err != nil {
		b.Fatal(err)
	}
	prompts := make([][]int, 64)
	for i := range prompts {
		prompts[i] = make([]int, 50+i%20)
		for j := range prompts[i] {
			prompts[i][j] = 97 + (i*7+j)%26
		}
	}
	opts := GenerateOptions{MaxNewTokens: 48, BatchSize: 64, Temperature: 1, Seed: 1, Quantum: 32}
	recompute := opts
	recompute.NoCache = true
	runs := []struct {
		name string
		run  func() ([][]int, error)
	}{
		{"device-cache", func() ([][]int, error) { return gen.Generate(prompts, opts) }},
		{"host-cache", func() ([][]int, error) { return host.generate(prompts, opts) }},
		{"recompute", func() ([][]int, error) { return gen.Generate(prompts, recompute) }},
	}
	for _, r := range runs { // compile outside the timing
		if _, err := r.run(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	seconds := make([]float64, len(runs))
	for range b.N {
		for i, r := range runs {
			start := time.Now()
			if _, err := r.run(); err != nil {
				b.Fatal(err)
			}
			seconds[i] += time.Since(start).Seconds()
		}
	}
	for i, r := range runs {
		b.ReportMetric(float64(64*48*b.N)/seconds[i], r.name+"-new-tokens/s")
	}
	b.ReportMetric(seconds[1]/seconds[0], "host/device-time")
	b.ReportMetric(seconds[2]/seconds[0], "recompute/device-time")
}
