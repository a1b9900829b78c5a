package alphatoken

import (
	"math/rand/v2"

	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// TokenScore is the valuation of one response token: one line of `alphatoken score`.
type TokenScore struct {
	Example int     `json:"example"`  // index of the example in the file
	Pos     int     `json:"pos"`      // label position p (SPEC §1): logits at p predict the token
	TokenID int     `json:"token_id"` // x_{p+1}
	Token   string  `json:"token"`    // its text
	DirTgt  float64 `json:"dir_tgt"`  // Φ_tgt^dir, raw
	CauTgt  float64 `json:"cau_tgt"`  // Φ_tgt^cau, raw
	DirPrx  float64 `json:"dir_prx"`  // Φ_prx^dir, raw
	CauPrx  float64 `json:"cau_prx"`  // Φ_prx^cau, raw
	Value   float64 `json:"value"`    // Φ after normalisation and λ
	Kept    bool    `json:"kept"`     // in the top ρ of the whole file
}

// ScoreOptions controls Score.
type ScoreOptions struct {
	BatchSize int       // examples per graph call (0: 8); values do not depend on it
	Rho       float64   // share of the file's response tokens marked kept (0: DefaultRho)
	Selection Selection // top (default), bottom or random
	Seed      uint64    // for random selection
	Tokenizer tokenizer.Tokenizer
	Progress  func(done, total int)
}

// Score values every response token of examples as ONE batch (SPEC §4): the components are computed
// in chunks (a token's components do not depend on the other examples), then the normalisation
// and the top-ρ threshold run over the whole set. The validation gradient is computed first, at
// the current weights.
func Score(v *Valuer, examples []data.Example, opts ScoreOptions) ([]TokenScore, error) {
	if len(examples) == 0 {
		return nil, errors.New("alphatoken: nothing to score")
	}
	if opts.BatchSize < 0 {
		return nil, errors.Errorf("alphatoken: BatchSize must be ≥ 0 (0: 8), got %d", opts.BatchSize)
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = 8
	}
	switch opts.Selection {
	case "":
		opts.Selection = SelectTop
	case SelectTop, SelectBottom, SelectRandom:
	default:
		return nil, errors.Errorf("alphatoken: unknown selection %q (top, bottom, random)", opts.Selection)
	}
	if opts.Rho == 0 {
		opts.Rho = DefaultRho
	}
	if !(opts.Rho > 0 && opts.Rho <= 1) {
		return nil, errors.Errorf("alphatoken: ρ must be in (0, 1], got %g", opts.Rho)
	}
	if _, err := v.RefreshValidationGradient(); err != nil {
		return nil, err
	}
	lm := v.LM
	exec, err := model.NewStoreExec(lm.Backend, lm.Store, "score", func(scope *gm.Scope, g *Graph, in []*Node) []*Node {
		ev := v.Build(lm.Weights(g), in[0], in[1], in[2])
		return []*Node{ev.TgtDir, ev.TgtCau, ev.PrxDir, ev.PrxCau}
	})
	if err != nil {
		return nil, err
	}
	var out []TokenScore
	pad := max(lm.Config.PadTokenID, 0)
	for start := 0; start < len(examples); start += opts.BatchSize {
		end := min(start+opts.BatchSize, len(examples))
		idx := make([]int, end-start)
		longest := 0
		for i := range idx {
			idx[i] = start + i
			longest = max(longest, len(examples[start+i].IDs))
		}
		if longest > lm.Config.MaxPositions {
			return nil, errors.Errorf("alphatoken: an example of %d tokens exceeds max_position_embeddings %d", longest, lm.Config.MaxPositions)
		}
		b := data.MakeBatch(examples, idx, opts.BatchSize, data.BucketLen(longest, 32, lm.Config.MaxPositions), pad)
		res, err := exec.Call(b.Tokens, b.Targets, b.Weights)
		if err != nil {
			return nil, model.ExplainOOM(errors.WithMessage(err, "alphatoken: scoring"))
		}
		comp := make([][]float64, 4)
		for i, r := range res {
			comp[i], err = model.TensorFloat64(r)
			r.FinalizeAll()
			if err != nil {
				return nil, err
			}
		}
		t := b.T()
		for row, ei := range idx {
			ex := &examples[ei]
			for _, p := range ex.LabelPositions() {
				j := row*t + p
				ts := TokenScore{Example: ei, Pos: p, TokenID: ex.IDs[p+1],
					DirTgt: comp[0][j], CauTgt: comp[1][j], DirPrx: comp[2][j], CauPrx: comp[3][j]}
				if opts.Tokenizer != nil {
					ts.Token = opts.Tokenizer.TokenText(ts.TokenID)
				}
				out = append(out, ts)
			}
		}
		if opts.Progress != nil {
			opts.Progress(end, len(examples))
		}
	}
	ApplyMask(out, v.Config, opts.Rho, opts.Selection, opts.Seed)
	return out, nil
}

// ApplyMask fills Value and Kept (the ρ share) of scores over the whole set (CombineHost, SelectHost).
func ApplyMask(scores []TokenScore, cfg Config, rho float64, sel Selection, seed uint64) {
	n := len(scores)
	tgt, prx, noise := make([]float64, n), make([]float64, n), make([]float64, n)
	valid := make([]bool, n)
	rng := rand.New(rand.NewPCG(seed, 17))
	for i, s := range scores {
		tgt[i], prx[i], valid[i], noise[i] = s.DirTgt+s.CauTgt, s.DirPrx+s.CauPrx, true, rng.Float64()
	}
	values := CombineHost(tgt, prx, valid, cfg)
	keep := SelectHost(values, valid, noise, rho, sel)
	for i := range scores {
		scores[i].Value, scores[i].Kept = values[i], keep[i]
	}
}
