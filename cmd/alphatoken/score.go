package main

import (
	"encoding/json"
	"io"
	"time"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/internal/atomicfile"
)

func init() {
	register("score", "value every response token of a dataset (the four components, value, kept)", runScore)
}

func runScore(args []string) error {
	fs, backendSpec := newFlags("score", "--model DIR --ref REF_DIR --data TRAIN.jsonl --val VAL.jsonl --out SCORES.jsonl [flags]")
	modelDir := fs.String("model", "", "the model being fine-tuned (θ)")
	dataPath := fs.String("data", "", "examples to score, all as one batch")
	out := fs.String("out", "", "output JSONL, one object per response token")
	method := fs.String("method", "alphatoken", "variant: alphatoken, adaptation-only, stability-only, direct-only, causal-only")
	sel := fs.String("select", "top", "mask: top, bottom or random")
	template := fs.String("template", "auto", "chat template for text data")
	dtype := dtypeFlag(fs)
	batch := fs.Int("batch", 8, "examples per graph call (values do not depend on it)")
	seed := fs.Uint64("seed", 1, "seed for --select random")
	maxLen := fs.Int("max-len", 0, "truncate examples to this many tokens (default: the model's context)")
	vf := addValuationFlags(fs, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := need(fs, "model", "data", "out", "val"); err != nil {
		return err
	}
	lm, tok, err := openModel(*backendSpec, *modelDir, *dtype)
	if err != nil {
		return err
	}
	if *vf.fisher != "" && *vf.ref == "" {
		logf("warning: --fisher without --ref: θ_ref is taken to be --model itself, so the stability terms are 0")
	}
	tmpl, err := data.TemplateByName(*template, tok)
	if err != nil {
		return err
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
	v, err := vf.valuer(*method, lm, tok, opts, *backendSpec, 0)
	if err != nil {
		return err
	}
	start := time.Now()
	scores, err := alphatoken.Score(v, examples, alphatoken.ScoreOptions{BatchSize: *batch, Selection: alphatoken.Selection(*sel),
		Seed: *seed, Tokenizer: tok, Progress: func(done, total int) {
			logf("score: %d/%d examples | %s", done, total, time.Since(start).Round(time.Millisecond))
		}})
	if err != nil {
		return err
	}
	kept := 0
	for _, s := range scores {
		if s.Kept {
			kept++
		}
	}
	logf("scored %d response tokens of %d examples; kept %d (ρ=%g); %s", len(scores), len(examples), kept, v.Config.Rho, time.Since(start).Round(time.Millisecond))
	return atomicfile.Write(*out, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, s := range scores {
			if err := enc.Encode(s); err != nil {
				return err
			}
		}
		return nil
	})
}
