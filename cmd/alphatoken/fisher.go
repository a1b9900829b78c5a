package main

import (
	"os"
	"time"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
)

func init() {
	register("fisher", "estimate the Monte-Carlo Fisher of a reference model for the stability proxy", runFisher)
}

func runFisher(args []string) error {
	fs, backendSpec := newFlags("fisher", "--model REF_DIR --prompts FILE.jsonl --out FISHER.safetensors [flags]")
	modelDir := fs.String("model", "", "reference checkpoint θ_ref")
	promptsPath := fs.String("prompts", "", "JSONL of target-task prompts ({prompt}, {messages} or {prompt_ids})")
	n := fs.Int("n", 1000, "number of prompts used (FisherPrompts)")
	maxNew := fs.Int("max-new-tokens", 64, "length of the responses sampled from θ_ref (temperature 1)")
	kind := fs.String("kind", "diag", "diag or kfac")
	k := fs.Int("k", 3, "K: the last K blocks are covered")
	out := fs.String("out", "", "output safetensors file")
	seed := fs.Uint64("seed", 1, "sampling seed")
	template := fs.String("template", "auto", "chat template for text prompts")
	batch := fs.Int("batch", 8, "sequences per pass")
	dtype := dtypeFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := need(fs, "model", "prompts", "out"); err != nil {
		return err
	}
	ref, tok, err := openModel(*backendSpec, *modelDir, *dtype)
	if err != nil {
		return err
	}
	tmpl, err := data.TemplateByName(*template, tok)
	if err != nil {
		return err
	}
	prompts, err := data.ReadPrompts(*promptsPath, tok, data.Options{Template: tmpl, MaxLen: ref.Config.MaxPositions - *maxNew})
	if err != nil {
		return err
	}
	if len(prompts) > *n {
		prompts = prompts[:*n]
	}
	start := time.Now()
	last := time.Now()
	f, err := alphatoken.EstimateFisher(ref, prompts, alphatoken.FisherOptions{Kind: alphatoken.FisherKind(*kind), Blocks: *k,
		MaxNewTokens: *maxNew, Stop: tmpl.Stop(tok), Seed: *seed, BatchSize: *batch,
		Progress: func(done, total int) {
			if time.Since(last) > 2*time.Second || done == total {
				el := time.Since(start)
				eta := time.Duration(float64(el) * float64(total-done) / float64(max(done, 1))).Round(time.Second)
				logf("fisher: %d/%d (%.0f%%) | %s elapsed | ETA %s", done, total, 100*float64(done)/float64(total), el.Round(time.Second), eta)
				last = time.Now()
			}
		}})
	if err != nil {
		return err
	}
	if err := f.Save(*out); err != nil {
		return err
	}
	logf("wrote %s: %s from %d prompts in %s", *out, f, len(prompts), time.Since(start).Round(time.Millisecond))
	_ = os.Stdout
	return nil
}
