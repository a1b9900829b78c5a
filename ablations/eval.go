package ablations

import (
	"fmt"
	"io"
	"slices"

	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/ablations/minibench"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/internal/progress"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// Probe names in table order, and the name of the target column.
var ProbeNames = []string{minibench.ProbeARC, minibench.ProbeHellaSwag, minibench.ProbeMMLU, minibench.ProbeGSM}

// Scores are a model's MiniBench results, in percent (SPEC §8): the target score (pass@1 for code,
// exact match for math), each retention probe, their mean, and Overall = mean(target, retention).
type Scores struct {
	Target    float64            `json:"target"`
	Probes    map[string]float64 `json:"probes"`
	Retention float64            `json:"retention"`
	Overall   float64            `json:"overall"`
}

// EvalOptions limits the evaluation (0: every item).
type EvalOptions struct {
	MaxProbeItems  int // items per retention probe
	MaxTargetItems int // target test items
	BatchSize      int // sequences per forward pass (default 32)
}

// Evaluator scores models on a MiniBench build. Prompts are encoded as in SFT (the plain template:
// <bos> prompt, response then <eos>); multiple choice is decided by the summed log-likelihood of
// each choice given the context; generation is greedy with each task's stop rule.
type Evaluator struct {
	Bench   *minibench.Bench
	Target  *minibench.Target
	Tok     tokenizer.Tokenizer
	Options EvalOptions
	// Log, if set, receives progress lines (items scored, items/s, ETA) during Evaluate.
	Log io.Writer
}

// NewEvaluator prepares the evaluation of a target ("code" or "math").
func NewEvaluator(b *minibench.Bench, target string, tok tokenizer.Tokenizer, opts EvalOptions) (*Evaluator, error) {
	t := b.Target(target)
	if t == nil {
		return nil, errors.Errorf("ablations: unknown target %q (code, math)", target)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 32
	}
	return &Evaluator{Bench: b, Target: t, Tok: tok, Options: opts}, nil
}

func limit[T any](xs []T, n int) []T {
	if n > 0 && n < len(xs) {
		return xs[:n]
	}
	return xs
}

// prompt encodes text as a generation or scoring context: <bos> text.
func (e *Evaluator) prompt(text string) []int {
	return data.PlainTemplate{}.Prompt(e.Tok, []data.Message{{Role: "user", Content: text}})
}

// Evaluate scores lm on the retention probes and the target.
func (e *Evaluator) Evaluate(lm *model.LM) (*Scores, error) {
	sc, err := model.NewScorer(lm)
	if err != nil {
		return nil, err
	}
	gen, err := model.NewGenerator(lm)
	if err != nil {
		return nil, err
	}
	s := &Scores{Probes: map[string]float64{}}
	mc := map[string][]minibench.MCItem{minibench.ProbeARC: limit(e.Bench.ARC, e.Options.MaxProbeItems),
		minibench.ProbeHellaSwag: limit(e.Bench.HellaSwag, e.Options.MaxProbeItems), minibench.ProbeMMLU: limit(e.Bench.MMLU, e.Options.MaxProbeItems)}
	gsm := limit(e.Bench.GSM, e.Options.MaxProbeItems)
	targets := limit(e.Target.Test, e.Options.MaxTargetItems)
	total := len(gsm) + len(targets)
	for _, items := range mc {
		total += len(items)
	}
	rep, done := progress.New(e.Log, "eval", "items"), 0
	rep.Start()
	advance := func(base int) func(d, _ int) { return func(d, _ int) { rep.Update(base+d, total) } }
	for _, name := range []string{minibench.ProbeARC, minibench.ProbeHellaSwag, minibench.ProbeMMLU} {
		acc, err := e.multipleChoice(sc, mc[name])
		if err != nil {
			return nil, errors.WithMessagef(err, "ablations: probe %s", name)
		}
		s.Probes[name] = 100 * acc
		done += len(mc[name])
		rep.Update(done, total)
	}
	prompts := make([][]int, len(gsm))
	for i, it := range gsm {
		prompts[i] = e.prompt(it.Prompt)
	}
	outs, err := e.generate(gen, prompts, 64, minibench.GSMStop, advance(done))
	if err != nil {
		return nil, errors.WithMessage(err, "ablations: probe gsm")
	}
	correct := 0
	for i, it := range gsm {
		if got, ok := minibench.ExtractGSMAnswer(outs[i]); ok && got == it.Answer {
			correct++
		}
	}
	s.Probes[minibench.ProbeGSM] = 100 * float64(correct) / float64(len(gsm))
	for _, n := range ProbeNames {
		s.Retention += s.Probes[n] / float64(len(ProbeNames))
	}
	s.Target, err = e.targetScore(gen, advance(done+len(gsm)))
	if err != nil {
		return nil, err
	}
	s.Overall = (s.Target + s.Retention) / 2
	return s, nil
}

// TargetScore is pass@1 (code) or exact match (math) on the target's test items, in percent.
func (e *Evaluator) TargetScore(gen *model.Generator) (float64, error) {
	return e.targetScore(gen, nil)
}

func (e *Evaluator) targetScore(gen *model.Generator, onBatch func(done, total int)) (float64, error) {
	items := limit(e.Target.Test, e.Options.MaxTargetItems)
	prompts := make([][]int, len(items))
	for i, it := range items {
		prompts[i] = e.prompt(it.Prompt)
	}
	outs, err := e.generate(gen, prompts, e.Target.MaxNewBytes, e.Target.Stop, onBatch)
	if err != nil {
		return 0, errors.WithMessagef(err, "ablations: target %s", e.Target.Name)
	}
	n := 0
	for i, it := range items {
		if e.Target.Judge(it, outs[i]) {
			n++
		}
	}
	return 100 * float64(n) / float64(len(items)), nil
}

// generate decodes greedily, stopping at <eos> or when stop(text) holds; it returns the texts
// without the <eos>. onBatch (optional) is called after each batch.
func (e *Evaluator) generate(gen *model.Generator, prompts [][]int, maxNew int, stop func(string) bool, onBatch func(done, total int)) ([]string, error) {
	eos := e.Tok.EOS()
	outs, err := gen.Generate(prompts, model.GenerateOptions{MaxNewTokens: maxNew, Stop: []int{eos},
		BatchSize: e.Options.BatchSize, StopFunc: func(_ int, g []int) bool { return stop(e.Tok.Decode(g)) }, Progress: onBatch})
	if err != nil {
		return nil, err
	}
	texts := make([]string, len(outs))
	for i, o := range outs {
		if n := len(o); n > 0 && o[n-1] == eos {
			o = o[:n-1]
		}
		texts[i] = e.Tok.Decode(o)
	}
	return texts, nil
}

// multipleChoice returns the share of items whose highest-likelihood choice is the answer (ties:
// the first choice among the tied).
func (e *Evaluator) multipleChoice(sc *model.Scorer, items []minibench.MCItem) (float64, error) {
	var seqs [][]int
	var starts []int
	for _, it := range items {
		ctx := e.prompt(it.Context)
		for _, c := range it.Choices {
			seqs = append(seqs, append(slices.Clone(ctx), e.Tok.Encode(c)...))
			starts = append(starts, len(ctx))
		}
	}
	ll, _, err := sc.LogLikelihoods(seqs, starts, e.Options.BatchSize)
	if err != nil {
		return 0, err
	}
	correct, k := 0, 0
	for _, it := range items {
		best := 0
		for c := range it.Choices {
			if ll[k+c] > ll[k+best] {
				best = c
			}
		}
		if best == it.Answer {
			correct++
		}
		k += len(it.Choices)
	}
	if len(items) == 0 {
		return 0, errors.New("no items")
	}
	return float64(correct) / float64(len(items)), nil
}

// String renders scores on one line.
func (s *Scores) String() string {
	return fmt.Sprintf("target %.1f | retention %.1f (arc %.1f, hellaswag %.1f, mmlu %.1f, gsm %.1f) | overall %.1f",
		s.Target, s.Retention, s.Probes["arc"], s.Probes["hellaswag"], s.Probes["mmlu"], s.Probes["gsm"], s.Overall)
}
