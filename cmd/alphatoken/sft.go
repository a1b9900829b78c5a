package main

import (
	"fmt"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
)

func init() {
	register("train-sft", "supervised fine-tuning on prompt/response JSONL with a token-selection method", runSFT)
}

func runSFT(args []string) error {
	fs, backendSpec := newFlags("train-sft", "--model DIR --data TRAIN.jsonl --out DIR [flags]")
	modelDir := fs.String("model", "", "checkpoint to fine-tune (HF format)")
	dataPath := fs.String("data", "", "training JSONL: {prompt,response}, {messages}, or {prompt_ids,response_ids}")
	evalPath := fs.String("eval", "", "optional held-out JSONL: its response loss is logged as eval_loss")
	out := fs.String("out", "", "output directory")
	method := fs.String("method", "full", "token-selection method: "+methodNames())
	steps := fs.Int("steps", 0, "optimizer steps (default: --epochs over the data)")
	epochs := fs.Float64("epochs", 1, "epochs, when --steps is not given")
	batch := fs.Int("batch", 16, "sequences per step")
	maxLen := fs.Int("max-len", 256, "context length; longer examples lose the end of the response (counted in the log)")
	lr := fs.Float64("lr", 1e-4, "peak learning rate")
	warmup := fs.Int("warmup", 0, "warm-up steps (default steps/20)")
	wd := fs.Float64("weight-decay", 0, "AdamW decoupled weight decay")
	seed := fs.Uint64("seed", 1, "data-order and random-mask seed")
	template := fs.String("template", "auto", "chat template for text data: auto, plain, chatml, llama3")
	dtype := dtypeFlag(fs)
	ckptEvery := fs.Int("checkpoint-every", 0, "resumable checkpoint every N steps (0: only at the end)")
	evalEvery := fs.Int("eval-every", 50, "eval loss every N steps (with --eval)")
	resume := fs.Bool("resume", false, "continue from the newest checkpoint in --out")
	vf := addValuationFlags(fs, true)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := need(fs, "model", "data", "out"); err != nil {
		return err
	}
	lm, tok, err := openModel(*backendSpec, *modelDir, *dtype)
	if err != nil {
		return err
	}
	tmpl, err := data.TemplateByName(*template, tok)
	if err != nil {
		return err
	}
	opts := data.Options{MaxLen: *maxLen, Template: tmpl}
	examples, st, err := data.ReadExamples(*dataPath, tok, opts)
	if err != nil {
		return err
	}
	if st.Truncated > 0 {
		logf("warning: %d of %d examples longer than --max-len %d were truncated at the end of the response", st.Truncated, st.Examples, *maxLen)
	}
	n := *steps
	if n == 0 {
		n = train.StepsForEpochs(*epochs, len(examples), *batch)
	}
	tc := train.Config{Steps: n, BatchSize: *batch, MaxLen: *maxLen, LR: *lr, WarmupSteps: *warmup, WeightDecay: *wd,
		Seed: *seed, CheckpointEvery: *ckptEvery, OutDir: *out}
	m, err := buildMethod(*method, vf, lm, tok, opts, *backendSpec, *batch**maxLen)
	if err != nil {
		return err
	}
	tr, err := train.New(lm, tok, tc, m)
	if err != nil {
		return err
	}
	if *evalPath != "" {
		evalSet, _, err := data.ReadExamples(*evalPath, tok, opts)
		if err != nil {
			return err
		}
		tr.Hooks = append(tr.Hooks, train.EvalHook(lm, evalSet, *evalEvery, *batch))
	}
	if *resume {
		latest, err := train.LatestCheckpoint(*out)
		if err != nil || latest == "" {
			return fmt.Errorf("--resume: no checkpoint in %s (%v)", *out, err)
		}
		if err := tr.Resume(latest); err != nil {
			return err
		}
		logf("resuming from %s (step %d)", latest, tr.Step())
	}
	logf("train-sft %s", train.Describe(lm, tr.Config, m, len(examples)))
	if err := tr.Run(examples); err != nil {
		return err
	}
	if err := saveFinal(lm, tok, *out); err != nil {
		return err
	}
	logf("saved %s", *out)
	return nil
}
