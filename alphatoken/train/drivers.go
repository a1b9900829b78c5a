package train

import (
	"fmt"

	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
)

// EvalLoss is the mean per-token negative log-likelihood of the examples' label positions.
func EvalLoss(lm *model.LM, examples []data.Example, batchSize int) (float64, error) {
	sc, err := model.NewScorer(lm)
	if err != nil {
		return 0, err
	}
	seqs := make([][]int, len(examples))
	starts := make([]int, len(examples))
	for i, ex := range examples {
		seqs[i], starts[i] = ex.IDs, max(ex.PromptLen, 1)
	}
	ll, n, err := sc.LogLikelihoods(seqs, starts, batchSize)
	if err != nil {
		return 0, err
	}
	var sum float64
	var count int
	for i := range ll {
		sum += ll[i]
		count += n[i]
	}
	if count == 0 {
		return 0, errors.New("train: no tokens to evaluate")
	}
	return -sum / float64(count), nil
}

// EvalHook evaluates the loss on held-out examples every `every` steps as metric "eval_loss".
func EvalHook(lm *model.LM, heldOut []data.Example, every, batchSize int) Hook {
	return Hook{Name: "eval", Every: every, Fn: func(step int, rec *Record) error {
		l, err := EvalLoss(lm, heldOut, batchSize)
		if err != nil {
			return err
		}
		rec.Metrics["eval_loss"] = l
		return nil
	}}
}

// PretrainData cuts a corpus into windows of seqLen tokens and holds out a share (at least 8
// windows) for evaluation, deterministically: every 50th window is held out.
func PretrainData(stream []int, seqLen int) (trainSet, heldOut []data.Example, err error) {
	windows := data.CorpusWindows(stream, seqLen, "corpus")
	if len(windows) < 20 {
		return nil, nil, errors.Errorf("train: corpus has %d tokens: fewer than 20 windows of %d", len(stream), seqLen)
	}
	for i, w := range windows {
		if i%50 == 25 || (len(windows) < 400 && i%(len(windows)/8) == 0) {
			heldOut = append(heldOut, w)
		} else {
			trainSet = append(trainSet, w)
		}
	}
	return trainSet, heldOut, nil
}

// StepsForEpochs is the number of steps for the given epochs over n examples.
func StepsForEpochs(epochs float64, n, batchSize int) int {
	return max(int(epochs*float64((n+batchSize-1)/batchSize)+0.5), 1)
}

// Describe is a one-line summary of a run for logs.
func Describe(lm *model.LM, cfg Config, method Method, nExamples int) string {
	batch := fmt.Sprintf("batch %d", cfg.BatchSize)
	if cfg.GradAccum > 1 {
		batch = fmt.Sprintf("%d micro-batches of %d", cfg.GradAccum, cfg.BatchSize)
	}
	if cfg.Packing {
		batch += " packed rows"
	}
	sched := fmt.Sprintf("%s to %.2g×", cfg.Schedule, cfg.MinLRRatio)
	if cfg.Schedule == ScheduleConstant {
		sched = "constant"
	}
	clip := fmt.Sprintf("clip %g", cfg.ClipNorm)
	if cfg.ClipNorm <= 0 {
		clip = "no clipping"
	}
	return fmt.Sprintf("%s: %s model, %.2fM params (%s weights, %s compute), %d examples, %d steps × %s, lr %.2g (warmup %d, %s), %s, max len %d",
		method.Name(), lm.Config.Arch, float64(lm.Config.NumParams())/1e6, model.DTypeName(lm.DType), model.DTypeName(lm.ComputeDType()), nExamples, cfg.Steps, batch,
		cfg.LR, cfg.WarmupSteps, sched, clip, cfg.MaxLen)
}
