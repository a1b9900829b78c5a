package model

import (
	"slices"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
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
	StopFunc func(prompt int, generated []int) bool
	// Seed: a prompt's sampled continuation is a pure function of (Seed, its index in the prompts),
	// whatever BatchSize or the other prompts are (sample.go).
	Seed      uint64
	BatchSize int // prompts decoded together (default 16)
	// Quantum rounds the prompt length and the room for new tokens up to a multiple of it, bounding the
	// compiled shapes (default 32).
	Quantum int
	// NoCache re-runs the whole causal forward pass for every new token instead of decoding with the
	// key/value cache (slower; kept as the reference the cache is tested against).
	NoCache bool
	// Progress, if set, is called after each batch with the number of prompts done and the total.
	Progress func(done, total int)
}

// Generator samples continuations: a prefill pass over the left-padded prompts, then one decode step
// per token, with the key/value cache and the sampling inside the compiled graphs (decode.go,
// sample.go). With GenerateOptions.NoCache each new token instead re-runs the causal forward pass
// over the whole right-padded buffer (same sampler). Lengths are bucketed and the last batch is
// padded, so few graphs are compiled.
type Generator struct {
	lm        *LM
	cached    *cachedGenerator
	recompute map[sampling]*gm.Exec
}

// NewGenerator returns a generator for lm; its graphs compile lazily, per shape and sampling setting.
func NewGenerator(lm *LM) (*Generator, error) {
	return &Generator{lm: lm, cached: newCachedGenerator(lm), recompute: map[sampling]*gm.Exec{}}, nil
}

// genRow is one prompt being generated for: its global index (for the sampling keys; −1 for a row
// that only pads the batch), the prompt and where its new tokens go.
type genRow struct {
	index  int
	prompt []int
	out    *[]int
	done   bool
	maxPos int
}

// take records a sampled token (unless the row is done) and returns whether the row goes on: a row
// stops after a stop token, when StopFunc says so, or when it fills max_position_embeddings.
func (r *genRow) take(tok int, opts GenerateOptions) bool {
	if r.done {
		return false
	}
	*r.out = append(*r.out, tok)
	if slices.Contains(opts.Stop, tok) || (opts.StopFunc != nil && opts.StopFunc(r.index, *r.out)) ||
		len(r.prompt)+len(*r.out) >= r.maxPos {
		r.done = true
	}
	return !r.done
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
	if opts.TopP < 0 || opts.TopP > 1 || opts.Temperature < 0 {
		return nil, errors.Errorf("model: TopP %g must be in [0, 1] and Temperature %g ≥ 0", opts.TopP, opts.Temperature)
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
	b := min(opts.BatchSize, len(prompts))
	for start := 0; start < len(prompts); start += b {
		rows := make([]*genRow, b)
		for i := range rows {
			if n := start + i; n < len(prompts) {
				out[n] = []int{}
				rows[i] = &genRow{index: n, prompt: prompts[n], out: &out[n], maxPos: maxPos}
			} else { // pads the last batch to the compiled batch size
				rows[i] = &genRow{index: -1, prompt: []int{0}, out: new([]int), done: true, maxPos: maxPos}
			}
		}
		var err error
		if opts.NoCache {
			err = gen.recomputeBatch(rows, opts)
		} else {
			err = gen.cached.run(rows, opts)
		}
		if err != nil {
			return nil, err
		}
		if opts.Progress != nil {
			opts.Progress(min(start+b, len(prompts)), len(prompts))
		}
	}
	return out, nil
}

// recomputeBatch generates for one batch by re-running the whole causal forward pass over the
// right-padded sequences for every new token (the reference for the cache).
func (gen *Generator) recomputeBatch(rows []*genRow, opts GenerateOptions) error {
	key := sampling{temperature: opts.Temperature, topP: opts.TopP}
	exec := gen.recompute[key]
	if exec == nil {
		var err error
		exec, err = NewStoreExec(gen.lm.Backend, gen.lm.Store, "generate", func(scope *gm.Scope, g *Graph, in []*Node) []*Node {
			tokens, pos, keys := in[0], in[1], in[2]
			out := Forward(gen.lm.Config, gen.lm.Weights(g), tokens, ForwardOptions{})
			b := tokens.Shape().Dimensions[0]
			idx := Concatenate([]*Node{Iota(g, shapes.Make(dtypes.Int32, b, 1), 0), Reshape(pos, b, 1)}, 1)
			logits := Gather(out.Logits, idx) // [b, V]
			return []*Node{sampleTokens(logits, keys, opts.Temperature, opts.TopP)}
		})
		if err != nil {
			return err
		}
		exec.SetMaxCache(64)
		gen.recompute[key] = exec
	}
	maxPos := gen.lm.Config.MaxPositions
	for step := 0; step < opts.MaxNewTokens; step++ {
		longest := 0
		for _, r := range rows {
			if !r.done {
				longest = max(longest, len(r.prompt)+len(*r.out))
			}
		}
		if longest == 0 {
			break
		}
		t := min(roundUp(longest, opts.Quantum), maxPos)
		tokens := make([][]int32, len(rows))
		pos := make([]int32, len(rows))
		for i, r := range rows {
			tokens[i] = make([]int32, t)
			seq := append(slices.Clone(r.prompt), *r.out...)
			n := min(len(seq), t)
			for j := range n {
				tokens[i][j] = int32(seq[j])
			}
			pos[i] = int32(n - 1)
		}
		res, err := exec.Call(tokens, pos, sampleKeys(rows, opts.Seed, step))
		if err != nil {
			return errors.WithMessage(err, "model: generate")
		}
		next, err := tensors.CopyFlatData[int32](res[0])
		res[0].FinalizeAll()
		if err != nil {
			return err
		}
		for i, r := range rows {
			r.take(int(next[i]), opts)
		}
	}
	return nil
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
