package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"
	"github.com/pkg/errors"
)

// GenerateOptions controls sampling.
type GenerateOptions struct {
	MaxNewTokens int     // tokens generated per prompt at most (required)
	Temperature  float64 // 0: greedy (argmax); otherwise softmax(logits/Temperature)
	TopP         float64 // nucleus sampling: keep the smallest set of tokens with mass ≥ TopP (0 or 1: off)
	Stop         []int   // generation of a sequence ends after any of these ids (it is kept in the output)
	// StopFunc, if set, is asked after every new token whether prompt i's generation (so far, prompt
	// excluded) is complete, e.g. a text-based stop rule.
	StopFunc  func(prompt int, generated []int) bool
	Seed      uint64 // sampling is a pure function of (Seed, prompt index)
	BatchSize int    // prompts per forward pass (default 16)
	// Quantum rounds the working length up to a multiple of it, bounding the compiled shapes (default 32).
	Quantum int
	// NoCache re-runs the whole causal forward pass for every new token instead of decoding with the
	// key/value cache (slower; kept as the reference the cache is tested against).
	NoCache bool
}

// Generator samples continuations: a prefill pass over the right-padded prompts, then one decode
// step per token with a host-side key/value cache (see decode.go). With GenerateOptions.NoCache each
// new token instead re-runs the causal forward pass over the whole buffer. Lengths are bucketed so
// few graphs are compiled.
type Generator struct {
	lm     *LM
	exec   *gm.Exec
	cached *cachedGenerator
}

// NewGenerator compiles (lazily, per shape) the next-token logits graph of lm.
func NewGenerator(lm *LM) (*Generator, error) {
	exec, err := NewStoreExec(lm.Backend, lm.Store, "generate", func(scope *gm.Scope, g *Graph, in []*Node) []*Node {
		tokens, pos := in[0], in[1]
		out := Forward(lm.Config, lm.Weights(tokens.Graph()), tokens, ForwardOptions{})
		b := tokens.Shape().Dimensions[0]
		idx := Concatenate([]*Node{Iota(tokens.Graph(), shapes.Make(dtypes.Int32, b, 1), 0), Reshape(pos, b, 1)}, 1)
		logits := Gather(out.Logits, idx) // [b, V]
		return []*Node{ConvertDType(logits, dtypes.Float32)}
	})
	if err != nil {
		return nil, err
	}
	exec.SetMaxCache(64)
	cached, err := newCachedGenerator(lm)
	if err != nil {
		return nil, err
	}
	return &Generator{lm: lm, exec: exec, cached: cached}, nil
}

// Generate returns, for each prompt, the generated tokens (without the prompt; including the stop
// token if one was produced). A prompt that leaves no room under max_position_embeddings is an error.
func (gen *Generator) Generate(prompts [][]int, opts GenerateOptions) ([][]int, error) {
	if opts.MaxNewTokens <= 0 {
		return nil, errors.New("model: Generate needs MaxNewTokens > 0")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 16
	}
	if opts.Quantum <= 0 {
		opts.Quantum = 32
	}
	maxPos := gen.lm.Config.MaxPositions
	out := make([][]int, len(prompts))
	for i, p := range prompts {
		if len(p) == 0 {
			return nil, errors.Errorf("model: prompt %d is empty (it needs at least a BOS token)", i)
		}
		if len(p) >= maxPos {
			return nil, errors.Errorf("model: prompt %d has %d tokens, no room under max_position_embeddings=%d", i, len(p), maxPos)
		}
		for _, id := range p {
			if id < 0 || id >= gen.lm.Config.VocabSize {
				return nil, errors.Errorf("model: prompt %d has token id %d outside the vocabulary", i, id)
			}
		}
	}
	for start := 0; start < len(prompts); start += opts.BatchSize {
		end := min(start+opts.BatchSize, len(prompts))
		if err := gen.generateBatch(prompts[start:end], out[start:end], start, opts); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (gen *Generator) generateBatch(prompts [][]int, out [][]int, offset int, opts GenerateOptions) error {
	b := len(prompts)
	seqs := make([][]int, b)
	done := make([]bool, b)
	rngs := make([]*rand.Rand, b)
	for i, p := range prompts {
		seqs[i] = slices.Clone(p)
		rngs[i] = rand.New(rand.NewPCG(opts.Seed, uint64(offset+i)))
	}
	stop := func(row, tok int) bool {
		return slices.Contains(opts.Stop, tok) || (opts.StopFunc != nil && opts.StopFunc(offset+row, out[row]))
	}
	if !opts.NoCache {
		return gen.cached.run(prompts, out, func(row int, logits []float64) int { return pick(logits, opts, rngs[row]) }, stop, opts)
	}
	maxPos := gen.lm.Config.MaxPositions
	for step := 0; step < opts.MaxNewTokens; step++ {
		longest := 0
		for i := range seqs {
			if !done[i] {
				longest = max(longest, len(seqs[i]))
			}
		}
		if longest == 0 {
			break
		}
		t := min((longest+opts.Quantum-1)/opts.Quantum*opts.Quantum, maxPos)
		tokens := make([][]int32, b)
		pos := make([]int32, b)
		for i, s := range seqs {
			row := make([]int32, t)
			n := min(len(s), t)
			for j := range n {
				row[j] = int32(s[j])
			}
			tokens[i], pos[i] = row, int32(n-1)
		}
		res, err := gen.exec.Call(tokens, pos)
		if err != nil {
			return errors.WithMessage(err, "model: generate")
		}
		logits, err := TensorFloat64(res[0])
		res[0].FinalizeAll()
		if err != nil {
			return err
		}
		v := len(logits) / b
		for i := range seqs {
			if done[i] {
				continue
			}
			next := pick(logits[i*v:(i+1)*v], opts, rngs[i])
			seqs[i] = append(seqs[i], next)
			out[i] = append(out[i], next)
			if stop(i, next) || len(seqs[i]) >= maxPos {
				done[i] = true
			}
		}
	}
	return nil
}

// pick chooses the next token from one row of logits.
func pick(logits []float64, opts GenerateOptions, rng *rand.Rand) int {
	if opts.Temperature <= 0 {
		best := 0
		for j, x := range logits {
			if x > logits[best] {
				best = j
			}
		}
		return best
	}
	mx := math.Inf(-1)
	for _, x := range logits {
		mx = math.Max(mx, x)
	}
	probs := make([]float64, len(logits))
	var sum float64
	for j, x := range logits {
		probs[j] = math.Exp((x - mx) / opts.Temperature)
		sum += probs[j]
	}
	order := make([]int, len(probs))
	for j := range order {
		order[j] = j
	}
	sort.SliceStable(order, func(a, c int) bool { return probs[order[a]] > probs[order[c]] })
	keep := len(order)
	if opts.TopP > 0 && opts.TopP < 1 {
		var cum float64
		for k, j := range order {
			cum += probs[j] / sum
			if cum >= opts.TopP {
				keep = k + 1
				break
			}
		}
	}
	var mass float64
	for _, j := range order[:keep] {
		mass += probs[j]
	}
	r := rng.Float64() * mass
	for _, j := range order[:keep] {
		r -= probs[j]
		if r <= 0 {
			return j
		}
	}
	return order[keep-1]
}

// Scorer computes summed log-likelihoods of continuations (for multiple-choice evaluation by
// likelihood, and sequence log-probabilities).
type Scorer struct {
	lm   *LM
	exec *gm.Exec
}

// NewScorer compiles (lazily, per shape) the per-token log-probability graph of lm.
func NewScorer(lm *LM) (*Scorer, error) {
	exec, err := NewStoreExec(lm.Backend, lm.Store, "score", func(scope *gm.Scope, g *Graph, in []*Node) []*Node {
		tokens, targets := in[0], in[1]
		out := Forward(lm.Config, lm.Weights(g), tokens, ForwardOptions{})
		return []*Node{Neg(TokenNLL(out.Logits, targets))} // [b, t] log p(targets[b,p] | tokens[b,≤p])
	})
	if err != nil {
		return nil, err
	}
	exec.SetMaxCache(64)
	return &Scorer{lm: lm, exec: exec}, nil
}

// LogLikelihoods returns Σ_{p ≥ start_i−1} log p(seq_i[p+1] | seq_i[≤p]) for each sequence: the
// log-probability of seq_i[start_i:] given seq_i[:start_i], and the number of scored tokens.
func (s *Scorer) LogLikelihoods(seqs [][]int, starts []int, batchSize int) (ll []float64, n []int, err error) {
	if len(starts) != len(seqs) {
		return nil, nil, errors.Errorf("model: %d sequences but %d starts", len(seqs), len(starts))
	}
	if batchSize <= 0 {
		batchSize = 16
	}
	ll, n = make([]float64, len(seqs)), make([]int, len(seqs))
	maxPos := s.lm.Config.MaxPositions
	for b0 := 0; b0 < len(seqs); b0 += batchSize {
		b1 := min(b0+batchSize, len(seqs))
		longest := 0
		for i := b0; i < b1; i++ {
			if starts[i] < 1 || starts[i] >= len(seqs[i]) {
				return nil, nil, errors.Errorf("model: sequence %d: start %d must be in [1, %d)", i, starts[i], len(seqs[i]))
			}
			if len(seqs[i]) > maxPos {
				return nil, nil, errors.Errorf("model: sequence %d has %d tokens > max_position_embeddings %d", i, len(seqs[i]), maxPos)
			}
			longest = max(longest, len(seqs[i]))
		}
		t := min((longest+31)/32*32, maxPos)
		tokens, targets := make([][]int32, batchSize), make([][]int32, batchSize)
		for r := range batchSize {
			tokens[r], targets[r] = make([]int32, t), make([]int32, t)
			if i := b0 + r; i < b1 {
				for p, id := range seqs[i] {
					tokens[r][p] = int32(id)
					if p > 0 {
						targets[r][p-1] = int32(id)
					}
				}
			}
		}
		res, err := s.exec.Call(tokens, targets)
		if err != nil {
			return nil, nil, errors.WithMessage(err, "model: scoring")
		}
		lp, err := TensorFloat64(res[0])
		res[0].FinalizeAll()
		if err != nil {
			return nil, nil, err
		}
		for i := b0; i < b1; i++ {
			r := i - b0
			for p := starts[i] - 1; p+1 < len(seqs[i]); p++ {
				ll[i] += lp[r*t+p]
				n[i]++
			}
		}
	}
	return ll, n, nil
}
