package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/internal/progress"
	"github.com/alphatoken/alphatoken/model"
)

func init() {
	register("eval", "a checkpoint's mean response-token NLL on a dataset, as one JSON object on stdout", runEval)
}

// evalResult is eval's stdout: NLL pooled over all response tokens (nats), its exponential, and
// the counts.
type evalResult struct {
	MeanNLL    float64 `json:"mean_nll"`
	Perplexity float64 `json:"perplexity"`
	Tokens     int     `json:"tokens"`
	Examples   int     `json:"examples"`
}

func runEval(args []string) error {
	fs, backendSpec := newFlags("eval", "--model DIR|Org/Name --data FILE(.jsonl|.parquet) [--max-len N] [--batch N]")
	modelDir := fs.String("model", "", "checkpoint directory, or Org/Name in the local Hugging Face cache")
	dataPath := fs.String("data", "", "dataset in a TRL format (JSONL or Parquet); pre-tokenized ids are used as given")
	maxLen := fs.Int("max-len", 0, "context length, 2 … the model's context; longer examples lose the end of the response, counted on stderr (0: the model's context)")
	batch := fs.Int("batch", 8, "sequences per forward pass (the result does not depend on it)")
	template := fs.String("template", "auto", "chat template for text data: auto, jinja, plain, chatml, llama3, gemma")
	dtype := dtypeFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := need(fs, "model", "data"); err != nil {
		return err
	}
	if err := checkFlags(atLeast("batch", *batch, 1), zeroOrAtLeast("max-len", *maxLen, 2, "the model's context"), precisionFlag(*dtype)); err != nil {
		return err
	}
	lm, tok, tmpl, err := openModelTemplate(*backendSpec, *modelDir, *dtype, *template)
	if err != nil {
		return err
	}
	if err := contextFlag("max-len", *maxLen, lm); err != nil {
		return err
	}
	ml := *maxLen
	if ml == 0 {
		ml = lm.Config.MaxPositions
	}
	examples, st, err := data.ReadExamples(*dataPath, tok, data.Options{MaxLen: ml, Template: tmpl})
	if err != nil {
		return err
	}
	if st.Truncated > 0 {
		logf("warning: %d of %d examples longer than %d tokens were truncated at the end of the response", st.Truncated, st.Examples, ml)
	}
	res, err := evaluate(lm, examples, *batch)
	if err != nil {
		return err
	}
	out, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(os.Stdout, string(out))
	return err
}

// evaluate pools −log p over every response token: mean_nll = Σ NLL / tokens. Progress goes to stderr.
func evaluate(lm *model.LM, examples []data.Example, batch int) (evalResult, error) {
	sc, err := model.NewScorer(lm)
	if err != nil {
		return evalResult{}, err
	}
	rep := progress.New(os.Stderr, "eval", "examples")
	var sum float64
	var tokens int
	chunk := 8 * batch
	for c0 := 0; c0 < len(examples); c0 += chunk {
		c1 := min(c0+chunk, len(examples))
		seqs, starts := make([][]int, c1-c0), make([]int, c1-c0)
		for i, ex := range examples[c0:c1] {
			seqs[i], starts[i] = ex.IDs, max(ex.PromptLen, 1)
		}
		ll, n, err := sc.LogLikelihoods(seqs, starts, batch)
		if err != nil {
			return evalResult{}, err
		}
		for i := range ll {
			sum -= ll[i]
			tokens += n[i]
		}
		rep.Update(c1, len(examples))
	}
	if tokens == 0 {
		return evalResult{}, fmt.Errorf("no response tokens to evaluate")
	}
	mean := sum / float64(tokens)
	if math.IsNaN(mean) || math.IsInf(mean, 0) {
		return evalResult{}, fmt.Errorf("the mean NLL is %v (non-finite): the model's weights or logits are not finite", mean)
	}
	return evalResult{MeanNLL: mean, Perplexity: math.Exp(mean), Tokens: tokens, Examples: len(examples)}, nil
}
