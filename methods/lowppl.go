package methods

import (
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
)

// low-ppl ("low-perplexity selection", a best guess: no separately named method was
// found; the AlphaToken blog compares against "low-perplexity selection", and STM is
// low-perplexity token learning): score_p = −ℓ_π0(p), the NLL under the model before fine-tuning,
// computed offline; keep the ρ share of each batch with the lowest NLL (AlphaToken's scope).

func init() {
	Register(Info{Name: "low-ppl", Selects: true,
		Summary: "low-perplexity selection: the ρ share of each batch with the lowest NLL under π_0 (offline ℓ_π0)",
		Build: func(env *Env) (train.Method, error) {
			base, err := frozenCopy(env)
			if err != nil {
				return nil, err
			}
			return offlineSelective(env, "low-ppl", perBatch, func(examples []data.Example) (*TokenTable, error) {
				nll, err := frozenNLL(env, "low-ppl: ℓ_π0", base, examples)
				if err != nil {
					return nil, err
				}
				return lowPPLScores(nll, examples), nil
			}), nil
		}})
}

// lowPPLScores is low-ppl's (and budget-matched STM's) score −ℓ_π0: higher is kept.
func lowPPLScores(nll *TokenTable, examples []data.Example) *TokenTable {
	return mapTable("−ℓ_π0", examples, func(i, p int) float32 { return -nll.Values[i][p] })
}

// mapTable is a new table with f(i, p) at every label position.
func mapTable(name string, examples []data.Example, f func(i, p int) float32) *TokenTable {
	tt := newTable(name, examples)
	labelValues(examples, func(i, p int) { tt.Values[i][p] = f(i, p) })
	return tt
}
