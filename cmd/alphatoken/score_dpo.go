package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/dpo"
	"github.com/alphatoken/alphatoken/internal/atomicfile"
	"github.com/alphatoken/alphatoken/methods"
)

// Scoring preference data (`alphatoken score --data PAIRS.jsonl`): every response token of both
// branches gets the four components of its branch's per-token loss (SPEC §6), its value and its
// kept flag, plus the pair, the branch and the pair's weight w.

// pairScoreFlags are score's flags that only preference data uses.
type pairScoreFlags struct {
	beta            *float64
	loss, threshold *string
}

func addPairScoreFlags(fs *flag.FlagSet) *pairScoreFlags {
	return &pairScoreFlags{
		beta:      fs.Float64("beta", dpo.DefaultBeta, "preference data: β of the DPO loss (J_tgt and the pair weight w)"),
		loss:      fs.String("loss", string(dpo.LossSigmoid), "preference data: pair loss sigmoid, ipo or hinge"),
		threshold: fs.String("dpo-threshold", string(dpo.Separate), "preference data: kept = the top ρ of each branch (separate) or of all tokens (shared)"),
	}
}

type pairScoreArgs struct {
	backend, model, data, out, export, method, sel, template, dtype string
	batch                                                           int
	seed                                                            uint64
	maxLen                                                          int
}

func scorePairs(a pairScoreArgs, mf *methodFlags, pf *pairScoreFlags) error {
	if a.export != "" {
		return fmt.Errorf("--export %s: preference data has no TRL SFT export", a.export)
	}
	if *mf.helper != "" {
		return fmt.Errorf("--helper is not used on preference data")
	}
	info, err := methods.LookupDPO(a.method)
	if err != nil {
		return err
	}
	if !info.Valuation {
		var names []string
		for _, n := range methods.DPONames() {
			if in, _ := methods.LookupDPO(n); in.Valuation {
				names = append(names, n)
			}
		}
		return fmt.Errorf("--method %s does not rank by AlphaToken values; score values preference pairs with one of: %s", a.method, strings.Join(names, ", "))
	}
	lm, tok, tmpl, err := openModelTemplate(a.backend, a.model, a.dtype, a.template)
	if err != nil {
		return err
	}
	if *mf.ref == "" {
		logf("warning: no --ref: the reference is --model itself, so every pair's w is w(δ = 0) and the stability terms are 0")
	}
	ml := a.maxLen
	if ml == 0 {
		ml = lm.Config.MaxPositions
	}
	opts := data.Options{MaxLen: ml, Template: tmpl}
	pairs, _, err := data.ReadPairs(a.data, tok, opts)
	if err != nil {
		return err
	}
	f := &dpoFlags{selectionFlags: mf.selectionFlags, beta: pf.beta, loss: pf.loss, threshold: pf.threshold, coefficient: new(string),
		ref: mf.ref, refLogps: new(string), oracle: new(string), oracleRef: new(string)}
	*f.coefficient, *f.refLogps = string(dpo.Unmasked), string(methods.RefPrecompute)
	env, err := f.env(a.method, runSpec{lm: lm, tok: tok, opts: opts, backend: a.backend, dtype: a.dtype, steps: 1, batch: a.batch, maxLen: ml},
		*mf.cache)
	if err != nil {
		return err
	}
	v, err := methods.NewDPOValuer(env, a.method)
	if err != nil {
		return err
	}
	examples := dpo.Examples(pairs)
	refNLL, err := methods.PositionNLL(&env.Env, "ref-logps", env.Ref, examples)
	if err != nil {
		return err
	}
	start := time.Now()
	scores, err := dpo.Score(v, env.DPO, examples, refNLL, alphatoken.ScoreOptions{BatchSize: a.batch, Rho: *mf.rho,
		Selection: alphatoken.Selection(a.sel), Seed: a.seed, Tokenizer: tok, Progress: func(done, total int) {
			logf("score: %d/%d pairs | %s", done, total, time.Since(start).Round(time.Millisecond))
		}})
	if err != nil {
		return err
	}
	var kept [2]int
	for _, s := range scores {
		if s.Kept {
			kept[map[string]int{"chosen": 0, "rejected": 1}[s.Branch]]++
		}
	}
	logf("scored %d response tokens of %d pairs; kept %d chosen and %d rejected (ρ=%g, %s thresholds); %s", len(scores), len(pairs),
		kept[0], kept[1], *mf.rho, env.DPO.Threshold, time.Since(start).Round(time.Millisecond))
	return atomicfile.Write(a.out, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, s := range scores {
			if err := enc.Encode(s); err != nil {
				return err
			}
		}
		return nil
	})
}
