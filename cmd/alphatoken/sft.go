package main

import (
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
)

func init() {
	register("train-sft", "supervised fine-tuning on prompt/response JSONL with a token-selection method", runSFT)
}

func runSFT(args []string) error {
	fs, backendSpec := newFlags("train-sft", "--model DIR --data TRAIN.jsonl --out DIR [flags]")
	modelDir := fs.String("model", "", "checkpoint to fine-tune (HF format)")
	dataPath := fs.String("data", "", "training data, JSONL or Parquet in a TRL format: {text}, {prompt,completion}, {messages}, {prompt_ids,completion_ids}")
	evalPath := fs.String("eval", "", "optional held-out JSONL: its response loss is logged as eval_loss")
	rf := addRunFlags(fs, "output directory: the final model at the top, checkpoint-N/ for resuming, metrics.jsonl, tb/ (TensorBoard)", true)
	method := fs.String("method", "full", "token-selection method (listed below): "+methodNames())
	steps := fs.Int("steps", 0, "optimizer steps (0: --epochs over the data)")
	epochs := fs.Float64("epochs", 1, "epochs (> 0), when --steps is 0")
	batch := fs.Int("batch", 16, "sequences per micro-batch (with --packing: rows); a step is --grad-accum micro-batches")
	maxLen := fs.Int("max-len", 256, "context length; longer examples lose the end of the response (counted in the log)")
	lr := fs.Float64("lr", 1e-4, "peak learning rate")
	warmup := fs.Int("warmup", 0, "warm-up steps (0: steps/20, at least 1)")
	wd := fs.Float64("weight-decay", 0, "AdamW decoupled weight decay")
	seed := fs.Uint64("seed", 1, "data-order and random-mask seed")
	template := fs.String("template", "auto", "chat template for text data: auto (the checkpoint's own, else by tokenizer family), jinja, plain, chatml, llama3, gemma")
	dtype := dtypeFlag(fs)
	ckptEvery := fs.Int("checkpoint-every", 0, "resumable checkpoint every N steps (0: only at the end)")
	evalEvery := fs.Int("eval-every", 50, "eval loss every N steps (with --eval)")
	logEvery := fs.Int("log-every", 10, "a metrics line (metrics.jsonl, progress) every N steps")
	mf := addMethodFlags(fs, true)
	methodUsage(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := need(fs, "model", "data", "out"); err != nil {
		return err
	}
	if err := checkFlags(atLeast("steps", *steps, 0), atLeast("batch", *batch, 1), atLeast("max-len", *maxLen, 2),
		positiveFloat("lr", *lr), atLeast("warmup", *warmup, 0), nonNegativeFloat("weight-decay", *wd),
		atLeast("checkpoint-every", *ckptEvery, 0), atLeast("eval-every", *evalEvery, 1), atLeast("log-every", *logEvery, 1),
		precisionFlag(*dtype), mf.check()); err != nil {
		return err
	}
	if *steps == 0 {
		if err := positiveFloat("epochs", *epochs); err != nil {
			return err
		}
	}
	if err := finite(fs, "epochs", "weight-decay"); err != nil {
		return err
	}
	tc := train.Config{BatchSize: *batch, MaxLen: *maxLen, LR: *lr, WarmupSteps: *warmup, WeightDecay: *wd,
		Seed: *seed, CheckpointEvery: *ckptEvery, OutDir: *rf.out, LogEvery: *logEvery}
	if err := rf.apply(&tc); err != nil {
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
	if err := checkFlags(mf.checkModel(lm, *method), contextFlag("max-len", *maxLen, lm)); err != nil {
		return err
	}
	var evalSet []data.Example
	if *evalPath != "" {
		if evalSet, _, err = data.ReadExamples(*evalPath, tok, opts); err != nil {
			return err
		}
	}
	n := *steps
	if n == 0 {
		n = train.StepsForEpochs(*epochs, train.RowsPerEpoch(examples, tc), *batch**rf.gradAccum)
	}
	tc.Steps = n
	m, err := mf.build(*method, runSpec{lm: lm, tok: tok, opts: opts, backend: *backendSpec, dtype: *dtype,
		steps: n, batch: *batch, maxLen: *maxLen})
	if err != nil {
		return err
	}
	tr, err := train.New(lm, tok, tc, m)
	if err != nil {
		return err
	}
	// --out is taken (and with --overwrite cleared) once the model, the data and the method have
	// loaded: a mistake in any of them leaves it as it was.
	if err := rf.prepare(); err != nil {
		return err
	}
	defer rf.release()
	if evalSet != nil {
		tr.Hooks = append(tr.Hooks, train.EvalHook(lm, evalSet, *evalEvery, *batch))
	}
	if err := rf.start(tr, fs); err != nil {
		return err
	}
	logf("train-sft %s", train.Describe(lm, tr.Config, m, len(examples)))
	if err := tr.Run(examples); err != nil {
		return err
	}
	if err := saveFinal(lm, tok, *rf.out); err != nil {
		return err
	}
	logf("saved %s", *rf.out)
	return nil
}
