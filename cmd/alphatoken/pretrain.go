package main

import (
	"fmt"
	"os"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

func init() {
	register("pretrain", "train a byte-level reference model from scratch on a text corpus (causal LM)", runPretrain)
}

func runPretrain(args []string) error {
	fs, backendSpec := newFlags("pretrain", "--out DIR --corpus FILE [flags]")
	rf := addRunFlags(fs, "output directory: the final HF checkpoint at the top, checkpoint-N/ for resuming, metrics.jsonl, tb/ (TensorBoard)", false)
	corpus := fs.String("corpus", "", "corpus: .txt (documents separated by blank lines) or .jsonl ({\"text\": ...})")
	preset := fs.String("preset", "mini", "model size: tiny, mini, small, deep12")
	steps := fs.Int("steps", 600, "optimizer steps")
	batch := fs.Int("batch", 16, "sequences per micro-batch; a step is --grad-accum micro-batches")
	seq := fs.Int("seq", 128, "tokens per training sequence")
	lr := fs.Float64("lr", 2e-3, "peak learning rate")
	warmup := fs.Int("warmup", 0, "warm-up steps (0: steps/20, at least 1)")
	seed := fs.Uint64("seed", 1, "initialisation and data-order seed")
	evalEvery := fs.Int("eval-every", 100, "held-out loss every N steps")
	ckptEvery := fs.Int("checkpoint-every", 200, "resumable checkpoint every N steps (0: only at the end)")
	samples := fs.Int("samples", 3, "greedy samples printed at the end")
	dtype := dtypeFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := need(fs, "out", "corpus"); err != nil {
		return err
	}
	if err := checkFlags(atLeast("steps", *steps, 1), atLeast("batch", *batch, 1), atLeast("seq", *seq, 2), positiveFloat("lr", *lr),
		atLeast("warmup", *warmup, 0), atLeast("eval-every", *evalEvery, 1), atLeast("checkpoint-every", *ckptEvery, 0),
		atLeast("samples", *samples, 0), precisionFlag(*dtype)); err != nil {
		return err
	}
	if p, ok := model.Presets[*preset]; ok && *seq > p.MaxPositions {
		return fmt.Errorf("--seq %d exceeds the %s preset's context of %d tokens: use --seq 2..%d", *seq, *preset, p.MaxPositions, p.MaxPositions)
	}
	tc := train.Config{Steps: *steps, BatchSize: *batch, MaxLen: *seq, BucketQuantum: *seq, LR: *lr, WarmupSteps: *warmup,
		Seed: *seed, CheckpointEvery: *ckptEvery, KeepCheckpoints: 1, OutDir: *rf.out, LogEvery: 20}
	if err := rf.apply(&tc); err != nil {
		return err
	}
	backend, prec, err := openBackend(*backendSpec, *dtype)
	if err != nil {
		return err
	}
	docs, err := data.ReadCorpus(*corpus)
	if err != nil {
		return err
	}
	tok := tokenizer.NewByteLevel()
	cfg, err := model.Preset(*preset, tok.VocabSize(), tok.BOS(), tok.EOS(), tok.PAD())
	if err != nil {
		return err
	}
	lm, err := model.New(backend, cfg, prec.Storage, *seed)
	if err != nil {
		return err
	}
	lm.Compute = prec.Compute
	trainSet, heldOut, err := train.PretrainData(data.CorpusStream(docs, tok), *seq)
	if err != nil {
		return err
	}
	tr, err := train.New(lm, tok, tc, train.Full{})
	if err != nil {
		return err
	}
	// --out is taken (and with --overwrite cleared) once the corpus has loaded.
	if err := rf.prepare(); err != nil {
		return err
	}
	defer rf.release()
	tr.Hooks = append(tr.Hooks, train.EvalHook(lm, heldOut, *evalEvery, 32))
	if err := rf.start(tr, fs); err != nil {
		return err
	}
	logf("pretrain %s", train.Describe(lm, tr.Config, tr.Method, len(trainSet)))
	logf("corpus %s: %d documents, %d training windows of %d tokens, %d held out", *corpus, len(docs), len(trainSet), *seq, len(heldOut))
	if err := tr.Run(trainSet); err != nil {
		return err
	}
	if err := saveFinal(lm, tok, *rf.out); err != nil {
		return err
	}
	logf("saved %s", *rf.out)
	if *samples > 0 {
		gen, err := model.NewGenerator(lm)
		if err != nil {
			return err
		}
		var prompts [][]int
		for i := 0; i < *samples && i < len(heldOut); i++ {
			prompts = append(prompts, heldOut[i].IDs[:min(24, len(heldOut[i].IDs))])
		}
		outs, err := gen.Generate(prompts, model.GenerateOptions{MaxNewTokens: 80, Stop: []int{tok.EOS()}})
		if err != nil {
			return err
		}
		for i := range prompts {
			fmt.Fprintf(os.Stdout, "--- sample %d\n%s[%s]\n", i+1, tok.Decode(prompts[i]), tok.Decode(outs[i]))
		}
	}
	return nil
}
