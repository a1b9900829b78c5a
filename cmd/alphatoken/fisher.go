package main

import (
	"fmt"
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
	n := fs.Int("n", 1000, "number of prompts used (FisherPrompts), ≥ 1: the first N of --prompts")
	maxNew := fs.Int("max-new-tokens", 64, "length of the responses sampled from θ_ref (temperature 1), ≥ 1")
	kind := fs.String("kind", "diag", "diag or kfac")
	k := fs.Int("k", 3, "K: the last K blocks are covered")
	out := fs.String("out", "", "output safetensors file")
	seed := fs.Uint64("seed", 1, "sampling seed")
	template := fs.String("template", "auto", "chat template for text prompts")
	batch := fs.Int("batch", 8, "sequences per backward pass")
	sampleBatch := fs.Int("sample-batch", 64, "prompts sampled together (speed only: prompt n's response depends on --seed and n)")
	dtype := dtypeFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := need(fs, "model", "prompts", "out"); err != nil {
		return err
	}
	if err := checkFlags(atLeast("n", *n, 1), atLeast("max-new-tokens", *maxNew, 1), oneOf("kind", *kind, "diag", "kfac"),
		atLeast("k", *k, 1), atLeast("batch", *batch, 1), atLeast("sample-batch", *sampleBatch, 1), precisionFlag(*dtype)); err != nil {
		return err
	}
	ref, tok, tmpl, err := openModelTemplate(*backendSpec, *modelDir, *dtype, *template)
	if err != nil {
		return err
	}
	if err := blocksFlag(*k, ref.Config.Layers); err != nil {
		return err
	}
	if *maxNew > ref.Config.MaxPositions-2 {
		return fmt.Errorf("--max-new-tokens %d leaves no room for a prompt in the model's context of %d tokens: use --max-new-tokens 1..%d",
			*maxNew, ref.Config.MaxPositions, ref.Config.MaxPositions-2)
	}
	prompts, err := data.ReadPrompts(*promptsPath, tok, data.Options{Template: tmpl, MaxLen: ref.Config.MaxPositions - *maxNew})
	if err != nil {
		return err
	}
	if len(prompts) > *n {
		prompts = prompts[:*n]
	}
	start := time.Now()
	f, err := alphatoken.EstimateFisher(ref, prompts, alphatoken.FisherOptions{Kind: alphatoken.FisherKind(*kind), Blocks: *k,
		MaxNewTokens: *maxNew, Stop: tmpl.Stop(tok), Seed: *seed, BatchSize: *batch, SampleBatch: *sampleBatch,
		Progress: alphatoken.FisherProgress(os.Stderr)})
	if err != nil {
		return err
	}
	if err := f.Save(*out); err != nil {
		return err
	}
	logf("wrote %s: %s from %d prompts in %s", *out, f, len(prompts), time.Since(start).Round(time.Millisecond))
	return nil
}
