package dpo

import (
	"math/rand/v2"

	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
)

// TokenScore is the valuation of one response token of a preference pair: one line of
// `alphatoken score` on preference data. Example is the pair's index, as Pair.
type TokenScore struct {
	alphatoken.TokenScore
	Pair   int     `json:"pair"`
	Branch string  `json:"branch"` // "chosen" or "rejected"
	W      float64 `json:"w"`      // the pair weight w = −ℓ'(δ)/β of the unmasked δ (σ(−βδ) for sigmoid)
}

// Score values every response token of the flattened pairs as ONE set (SPEC §4, §6): the
// components of ω·l with ω = ±w·a (see the package doc), computed in chunks of opts.BatchSize
// pairs, then the combination over the whole set and the top ρ kept per branch (c.Threshold
// separate) or over both (shared). refNLL holds the reference model's per-position loss of every
// example. The validation gradient is computed first, at the current weights.
func Score(v *alphatoken.Valuer, c Config, examples []data.Example, refNLL [][]float64, opts alphatoken.ScoreOptions) ([]TokenScore, error) {
	if len(examples) == 0 || len(examples)%2 != 0 {
		return nil, errors.New("dpo: nothing to score (pairs are stored chosen, rejected)")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 8
	}
	if opts.Selection == "" {
		opts.Selection = alphatoken.SelectTop
	}
	if opts.Rho == 0 {
		opts.Rho = alphatoken.DefaultRho
	}
	if !(opts.Rho > 0 && opts.Rho <= 1) {
		return nil, errors.Errorf("dpo: ρ must be in (0, 1], got %g", opts.Rho)
	}
	if _, err := v.RefreshValidationGradient(); err != nil {
		return nil, err
	}
	lm := v.LM
	exec, err := model.NewStoreExec(lm.Backend, lm.Store, "score_pairs", func(_ *gm.Scope, g *Graph, in []*Node) []*Node {
		var w *Node
		ev := v.BuildWith(lm.Weights(g), in[0], in[1], func(nll *Node) *Node {
			var omega *Node
			omega, w = c.TokenWeights(nll, in[3], in[2])
			return omega
		})
		return []*Node{ev.TgtDir, ev.TgtCau, ev.PrxDir, ev.PrxCau, w}
	})
	if err != nil {
		return nil, err
	}
	var out []TokenScore
	pad := max(lm.Config.PadTokenID, 0)
	nPairs := len(examples) / 2
	for start := 0; start < nPairs; start += opts.BatchSize {
		end := min(start+opts.BatchSize, nPairs)
		idx := make([]int, end-start)
		longest := 0
		for i := range idx {
			idx[i] = start + i
			longest = max(longest, len(examples[2*idx[i]].IDs), len(examples[2*idx[i]+1].IDs))
		}
		if longest > lm.Config.MaxPositions {
			return nil, errors.Errorf("dpo: pair %s has %d tokens, more than max_position_embeddings %d",
				examples[2*idx[0]].Source, longest, lm.Config.MaxPositions)
		}
		b := Batch(examples, idx, opts.BatchSize, data.BucketLen(longest, 32, lm.Config.MaxPositions), pad)
		res, err := exec.Call(b.Tokens, b.Targets, b.Weights, Rows(refNLL, &b))
		if err != nil {
			return nil, errors.WithMessage(err, "dpo: scoring")
		}
		vals := make([][]float64, len(res))
		for i, r := range res {
			vals[i], err = model.TensorFloat64(r)
			r.FinalizeAll()
			if err != nil {
				return nil, err
			}
		}
		t := b.T()
		for row, ei := range b.Index {
			if ei < 0 {
				continue
			}
			ex := &examples[ei]
			pair, branch := ei/2, "chosen"
			if ei%2 == 1 {
				branch = "rejected"
			}
			for _, p := range ex.LabelPositions() {
				j := row*t + p
				ts := TokenScore{TokenScore: alphatoken.TokenScore{Example: pair, Pos: p, TokenID: ex.IDs[p+1],
					DirTgt: vals[0][j], CauTgt: vals[1][j], DirPrx: vals[2][j], CauPrx: vals[3][j]},
					Pair: pair, Branch: branch, W: vals[4][row%opts.BatchSize]}
				if opts.Tokenizer != nil {
					ts.Token = opts.Tokenizer.TokenText(ts.TokenID)
				}
				out = append(out, ts)
			}
		}
		if opts.Progress != nil {
			opts.Progress(end, nPairs)
		}
	}
	ApplyMask(out, v.Config, c.Threshold, opts.Rho, opts.Selection, opts.Seed)
	return out, nil
}

// ApplyMask fills Value (the combination over the whole set) and Kept: the ρ share of each
// branch's tokens (separate) or of all tokens (shared).
func ApplyMask(scores []TokenScore, cfg alphatoken.Config, th Threshold, rho float64, sel alphatoken.Selection, seed uint64) {
	n := len(scores)
	tgt, prx, noise := make([]float64, n), make([]float64, n), make([]float64, n)
	all := make([]bool, n)
	rng := rand.New(rand.NewPCG(seed, 17))
	for i, s := range scores {
		tgt[i], prx[i], all[i], noise[i] = s.DirTgt+s.CauTgt, s.DirPrx+s.CauPrx, true, rng.Float64()
	}
	values := alphatoken.CombineHost(tgt, prx, all, cfg)
	var keep []bool
	if th == Shared {
		keep = alphatoken.SelectHost(values, all, noise, rho, sel)
	} else {
		keep = make([]bool, n)
		for _, branch := range []string{"chosen", "rejected"} {
			in := make([]bool, n)
			for i, s := range scores {
				in[i] = s.Branch == branch
			}
			for i, k := range alphatoken.SelectHost(values, in, noise, rho, sel) {
				keep[i] = keep[i] || k
			}
		}
	}
	for i := range scores {
		scores[i].Value, scores[i].Kept = values[i], keep[i]
	}
}
