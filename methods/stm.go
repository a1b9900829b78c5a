package methods

import (
	"math"

	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
)

// stm, Selective Token Masking (Wu et al., arXiv 2501.14315): the perplexity of
// every response token under the model about to be fine-tuned, PPL_p = exp ℓ_π0(p), computed
// offline; tokens with PPL_p > τ (default 2.5, i.e. p < 0.4) lose their loss and the rest keep it,
// so the keep ratio varies with the data (the metrics log the realised kept/tokens of every step).
// The released code gives the first position of a sequence a dummy PPL of 10; here every label
// position has a real prediction (the prompt precedes the response), so there is no such position.
// Budget-matched: the ρ share of each batch with the lowest PPL (then the same as low-ppl).

func init() {
	Register(Info{Name: "stm", Selects: true, Threshold: true,
		Summary: "STM: drop response tokens with perplexity exp ℓ_π0 > τ under π_0 (offline; data-dependent keep ratio)",
		Params:  []Param{{Name: "ppl-threshold", Default: 2.5, Usage: "τ of stm: tokens with perplexity under π_0 above it are dropped"}},
		Build:   newSTM})
}

func newSTM(env *Env) (train.Method, error) {
	tau := env.Param("ppl-threshold")
	if !(tau > 1) {
		return nil, errors.Errorf("methods: stm: --ppl-threshold must be > 1 (a perplexity), got %g", tau)
	}
	base, err := frozenCopy(env)
	if err != nil {
		return nil, err
	}
	sc := fixedMask
	if env.Options.BudgetMatched {
		sc = perBatch
	}
	return offlineSelective(env, "stm", sc, func(examples []data.Example) (*TokenTable, error) {
		nll, err := frozenNLL(env, "stm: ℓ_π0", base, examples)
		if err != nil {
			return nil, err
		}
		if sc == perBatch {
			return lowPPLScores(nll, examples), nil
		}
		return stmKeep(nll, examples, tau), nil
	}), nil
}

// stmKeep is STM's mask: 1 where exp ℓ ≤ τ.
func stmKeep(nll *TokenTable, examples []data.Example, tau float64) *TokenTable {
	limit := math.Log(tau)
	return mapTable("stm keep", examples, func(i, p int) float32 {
		if float64(nll.Values[i][p]) <= limit {
			return 1
		}
		return 0
	})
}
