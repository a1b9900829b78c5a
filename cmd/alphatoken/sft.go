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
	o := addOptFlags(fs, optHelp{batch: 16,
		steps:         "optimizer steps (0: --epochs over the data)",
		epochs:        "epochs (> 0), when --steps is 0",
		batchHelp:     "sequences per micro-batch (with --packing: rows); a step is --grad-accum micro-batches",
		maxLen:        "context length; longer examples lose the end of the response (counted in the log)",
		warmup:        "warm-up steps (0: steps/20, at least 1)",
		seed:          "data-order and random-mask seed",
		template:      "chat template for text data: auto (the checkpoint's own, else by tokenizer family), jinja, plain, chatml, llama3, gemma",
		evalEveryHelp: "eval loss every N steps (with --eval)",
	})
	mf := addMethodFlags(fs, true)
	methodUsage(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := need(fs, "model", "data", "out"); err != nil {
		return err
	}
	if err := checkFlags(o.check(fs), mf.check()); err != nil {
		return err
	}
	tc := o.config(*rf.out)
	if err := rf.apply(&tc); err != nil {
		return err
	}
	lm, tok, tmpl, err := openModelTemplate(*backendSpec, *modelDir, *o.dtype, *o.template)
	if err != nil {
		return err
	}
	opts := data.Options{MaxLen: *o.maxLen, Template: tmpl}
	examples, st, err := data.ReadExamples(*dataPath, tok, opts)
	if err != nil {
		return err
	}
	if st.Truncated > 0 {
		logf("warning: %d of %d examples longer than --max-len %d were truncated at the end of the response", st.Truncated, st.Examples, *o.maxLen)
	}
	if err := checkFlags(mf.checkModel(lm, *method), contextFlag("max-len", *o.maxLen, lm)); err != nil {
		return err
	}
	var evalSet []data.Example
	if *evalPath != "" {
		if evalSet, _, err = data.ReadExamples(*evalPath, tok, opts); err != nil {
			return err
		}
	}
	n := *o.steps
	if n == 0 {
		n = train.StepsForEpochs(*o.epochs, train.RowsPerEpoch(examples, tc), *o.batch**rf.gradAccum)
	}
	tc.Steps = n
	m, err := mf.build(*method, runSpec{lm: lm, tok: tok, opts: opts, backend: *backendSpec, dtype: *o.dtype,
		steps: n, batch: *o.batch, maxLen: *o.maxLen})
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
		tr.Hooks = append(tr.Hooks, train.EvalHook(lm, evalSet, *o.evalEvery, *o.batch))
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
