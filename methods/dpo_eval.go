package methods

import (
	"math"

	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/dpo"
	"github.com/alphatoken/alphatoken/alphatoken/train"
)

// PairEval measures a policy on held-out preference pairs against the DPO reference: the mean DPO
// loss (the run's loss type, every token), the reward accuracy (the share of pairs whose chosen
// reward β·Σ_t h_t is the larger) and the mean reward margin.
type PairEval struct {
	c      dpo.Config
	pairs  []data.Example // flattened
	refNLL [][]float64
	policy *onlineNLL
	batch  int
	maxLen int
	pad    int
}

// NewPairEval precomputes the reference log-probabilities of the held-out pairs (cached in
// env.Cache) for evaluating env.LM.
func NewPairEval(env *DPOEnv, pairs []data.Example) (*PairEval, error) {
	if len(pairs) < 2 || len(pairs)%2 != 0 {
		return nil, errors.New("methods: no held-out pairs to evaluate")
	}
	ref, err := PositionNLL(&env.Env, "ref-logps-eval", env.Ref, pairs)
	if err != nil {
		return nil, err
	}
	pol, err := newOnlineNLL(env.LM, "eval_pairs")
	if err != nil {
		return nil, err
	}
	maxLen := env.MaxLen
	if maxLen == 0 {
		maxLen = env.LM.Config.MaxPositions
	}
	return &PairEval{c: env.DPO, pairs: pairs, refNLL: ref, policy: pol, batch: max(env.BatchSize, 1), maxLen: maxLen,
		pad: max(env.LM.Config.PadTokenID, 0)}, nil
}

// Eval returns the loss, reward accuracy and mean margin over the held-out pairs.
func (e *PairEval) Eval() (loss, accuracy, margin float64, err error) {
	n := len(e.pairs) / 2
	c := e.c
	for start := 0; start < n; start += e.batch {
		idx := make([]int, 0, e.batch)
		longest := 0
		for i := start; i < min(start+e.batch, n); i++ {
			idx = append(idx, i)
			longest = max(longest, len(e.pairs[2*i].IDs), len(e.pairs[2*i+1].IDs))
		}
		b := dpo.Batch(e.pairs, idx, e.batch, data.BucketLen(longest, 32, e.maxLen), e.pad)
		pol, err := e.policy.rows(b.Tokens, b.Targets, b.Weights)
		if err != nil {
			return 0, 0, 0, err
		}
		ref := dpo.Rows(e.refNLL, &b)
		for i := range idx {
			var delta, rc, rr float64
			for _, rs := range [2]struct {
				r    int
				sign float64
			}{{i, 1}, {e.batch + i, -1}} {
				r, sign := rs.r, rs.sign
				cnt := 0.0
				for _, w := range b.Weights[r] {
					cnt += float64(w)
				}
				var sum float64
				for p, w := range b.Weights[r] {
					sum += float64(w) * (ref[r][p] - pol[r][p])
				}
				agg := sum
				if c.Loss == dpo.LossIPO {
					agg = sum / math.Max(cnt, 1)
				}
				delta += sign * agg
				if sign > 0 {
					rc = c.Beta * sum
				} else {
					rr = c.Beta * sum
				}
			}
			switch c.Loss {
			case dpo.LossSigmoid:
				loss += math.Log1p(math.Exp(-c.Beta*delta)) / float64(n)
			case dpo.LossHinge:
				loss += math.Max(0, 1-c.Beta*delta) / float64(n)
			case dpo.LossIPO:
				loss += (delta - 1/(2*c.Beta)) * (delta - 1/(2*c.Beta)) / float64(n)
			}
			if rc > rr {
				accuracy += 1 / float64(n)
			}
			margin += (rc - rr) / float64(n)
		}
	}
	return loss, accuracy, margin, nil
}

// PairEvalHook logs eval_loss, eval_reward_accuracy and eval_reward_margin every `every` steps.
func PairEvalHook(e *PairEval, every int) train.Hook {
	return train.Hook{Name: "eval-pairs", Every: every, Fn: func(_ int, rec *train.Record) error {
		l, acc, m, err := e.Eval()
		if err != nil {
			return err
		}
		rec.Metrics["eval_loss"], rec.Metrics["eval_reward_accuracy"], rec.Metrics["eval_reward_margin"] = l, acc, m
		return nil
	}}
}
