package methods

import (
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
)

// token-cleaning, fixed-model cleaning (Pang et al., ICML 2025, github.com/UCSC-REAL/TokenCleaning): the influence of a model update on each response token,
//
//	s_p = ℓ_π0(p) − ℓ_ref(p),
//
// with π_0 the model about to be fine-tuned and ref the helper, π_0 fine-tuned on a clean held-out
// slice of the target data (--helper; the ablation runner trains and caches it). A high s_p means
// the update helped the token: it is informative and kept. Both losses are computed offline (2
// forwards per example); the mask is the GLOBAL top 60% of the whole training set's response
// tokens (the code's select_token_level=global, data_prop=0.6), so a batch keeps a varying share.
// Budget-matched: the top ρ of each batch by s_p. A ρ schedule moves the global share.

func init() {
	Register(Info{Name: "token-cleaning", Selects: true, Native: 0.6, Needs: []Need{NeedHelper},
		Summary: "Token Cleaning (fixed model): global top-60% of the training set by ℓ_π0 − ℓ_helper (offline)",
		Build:   newTokenCleaning})
}

func newTokenCleaning(env *Env) (train.Method, error) {
	base, err := frozenCopy(env)
	if err != nil {
		return nil, err
	}
	sc := global
	if env.Options.BudgetMatched {
		sc = perBatch
	}
	helper := env.Helper
	return offlineSelective(env, "token-cleaning", sc, func(examples []data.Example) (*TokenTable, error) {
		l0, err := frozenNLL(env, "token-cleaning: ℓ_π0", base, examples)
		if err != nil {
			return nil, err
		}
		lRef, err := frozenNLL(env, "token-cleaning: ℓ_helper", helper, examples)
		if err != nil {
			return nil, err
		}
		return tokenCleaningScores(l0, lRef, examples), nil
	}), nil
}

// tokenCleaningScores is s = ℓ_π0 − ℓ_ref at every label position.
func tokenCleaningScores(l0, lRef *TokenTable, examples []data.Example) *TokenTable {
	return mapTable("ℓ_π0 − ℓ_ref", examples, func(i, p int) float32 { return l0.Values[i][p] - lRef.Values[i][p] })
}
