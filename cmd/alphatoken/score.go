package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/internal/atomicfile"
	"github.com/alphatoken/alphatoken/internal/progress"
	"github.com/alphatoken/alphatoken/methods"
)

// valuationMethods lists the registered methods that rank by AlphaToken values.
func valuationMethods() []string {
	var out []string
	for _, n := range methods.Names() {
		if in, _ := methods.Lookup(n); in.Valuation {
			out = append(out, n)
		}
	}
	return out
}

func init() {
	register("score", "value every response token of a dataset (the four components, value, kept)", runScore)
}

func runScore(args []string) error {
	fs, backendSpec := newFlags("score", "--model DIR --ref REF_DIR --data TRAIN.jsonl --val VAL.jsonl --out SCORES.jsonl|DIR [--export trl] [flags]")
	modelDir := fs.String("model", "", "the model being fine-tuned (θ)")
	dataPath := fs.String("data", "", "examples to score, all as one batch")
	out := fs.String("out", "", "output JSONL, one object per response token (with --export trl: a directory)")
	export := fs.String("export", "", "trl: write --out DIR/train.parquet and train.jsonl for TRL's SFTTrainer (input_ids, labels, values) and DIR/scores.jsonl")
	method := fs.String("method", "alphatoken", "a method that ranks by AlphaToken values: "+strings.Join(valuationMethods(), ", "))
	sel := fs.String("select", "top", "mask: top, bottom or random")
	template := fs.String("template", "auto", "chat template for text data")
	dtype := dtypeFlag(fs)
	batch := fs.Int("batch", 8, "examples per graph call (values do not depend on it)")
	seed := fs.Uint64("seed", 1, "seed for --select random")
	maxLen := fs.Int("max-len", 0, "truncate examples to this many tokens, 2 … the model's context (0: the model's context)")
	mf := addMethodFlags(fs, false)
	pf := addPairScoreFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := need(fs, "model", "data", "out"); err != nil {
		return err
	}
	if isPairs, err := data.IsPreferenceFile(*dataPath); err != nil {
		return err
	} else if isPairs {
		return scorePairs(pairScoreArgs{backend: *backendSpec, model: *modelDir, data: *dataPath, out: *out, export: *export,
			method: *method, sel: *sel, template: *template, dtype: *dtype, batch: *batch, seed: *seed, maxLen: *maxLen}, mf, pf)
	}
	if *export != "" && *export != "trl" {
		return fmt.Errorf("--export %q: only trl is supported", *export)
	}
	if err := checkFlags(oneOf("select", *sel, string(alphatoken.SelectTop), string(alphatoken.SelectBottom), string(alphatoken.SelectRandom)),
		atLeast("batch", *batch, 1), zeroOrAtLeast("max-len", *maxLen, 2, "the model's context"), precisionFlag(*dtype), mf.check()); err != nil {
		return err
	}
	info, err := methods.Lookup(*method)
	if err != nil {
		return err
	}
	if !info.Valuation {
		return fmt.Errorf("--method %s does not rank by AlphaToken values; score values tokens with one of: %s",
			*method, strings.Join(valuationMethods(), ", "))
	}
	lm, tok, tmpl, err := openModelTemplate(*backendSpec, *modelDir, *dtype, *template)
	if err != nil {
		return err
	}
	if err := checkFlags(mf.checkModel(lm, *method), contextFlag("max-len", *maxLen, lm)); err != nil {
		return err
	}
	if *mf.fisher != "" && *mf.fisher != "none" && *mf.ref == "" {
		logf("warning: --fisher without --ref: θ_ref is taken to be --model itself (the rule of train-sft: the model at its start), so every Φ_prx is 0")
	}
	ml := *maxLen
	if ml == 0 {
		ml = lm.Config.MaxPositions
	}
	opts := data.Options{MaxLen: ml, Template: tmpl}
	examples, st, err := data.ReadExamples(*dataPath, tok, opts)
	if err != nil {
		return err
	}
	if st.Truncated > 0 {
		logf("warning: %d examples truncated to %d tokens", st.Truncated, ml)
	}
	env, err := mf.env(*method, runSpec{lm: lm, tok: tok, opts: opts, backend: *backendSpec, dtype: *dtype, steps: 1, batch: *batch})
	if err != nil {
		return err
	}
	v, err := methods.NewValuer(env, *method)
	if err != nil {
		return err
	}
	if v.Config.Precondition.Adam() {
		st, err := train.LoadAdamState(*modelDir, lm)
		if err != nil {
			return fmt.Errorf("--precondition adam reads the AdamW state of --model: %w", err)
		}
		if err := v.UseAdam(alphatoken.AdamMoments{Scope: st.Scope, Beta2: st.Beta2, Eps: st.Eps, DType: st.DType}); err != nil {
			return err
		}
	}
	start := time.Now()
	scores, err := alphatoken.Score(v, examples, alphatoken.ScoreOptions{BatchSize: *batch, Rho: *mf.rho, Selection: alphatoken.Selection(*sel),
		Seed: *seed, Tokenizer: tok, Progress: progress.New(os.Stderr, "score", "examples").Func()})
	if err != nil {
		return err
	}
	kept := 0
	for _, s := range scores {
		if s.Kept {
			kept++
		}
	}
	logf("scored %d response tokens of %d examples; kept %d (ρ=%g); %s", len(scores), len(examples), kept, *mf.rho, time.Since(start).Round(time.Millisecond))
	scoresPath := *out
	if *export == "trl" {
		rows, err := trlRows(examples, scores)
		if err != nil {
			return err
		}
		if err := writeTRLExport(*out, rows); err != nil {
			return err
		}
		scoresPath = filepath.Join(*out, "scores.jsonl")
		logf("wrote %s/train.parquet and train.jsonl (input_ids, labels, values) for TRL's SFTTrainer", *out)
	}
	return atomicfile.Write(scoresPath, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, s := range scores {
			if err := enc.Encode(s); err != nil {
				return err
			}
		}
		return nil
	})
}
