package methods

import (
	"math"
	"time"

	. "github.com/gomlx/gomlx/core/graph"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/dpo"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
)

// SePO: an oracle pair trained by us — π^o_ref, an SFT model, and π^o, DPO of it on
// (a subset of) the preference data — scores every token offline with DPO's implicit token reward
// r_t = log π^o(y_t) − log π^o_ref(y_t) (cached like the reference log-probabilities). Per response,
// the chosen branch keeps its top ⌊k·T⌋ tokens by r_t and the rejected branch its bottom ⌊k·T⌋
// (at least one), k = 0.3; budget matched, the top ρ of the batch's chosen tokens by r and of its
// rejected tokens by −r (--dpo-threshold). The loss is reference free,
//
//	−log σ(β'·(r̄_w − r̄_l)),   r̄ = mean of log π_θ over the kept tokens,
//
// with β' = --sepo-beta (1: SePO's code has none). No reference forward runs in a step; the
// reference's log-probabilities only feed the logged rewards (precomputed).

func init() {
	RegisterDPO(DPOInfo{Info: Info{Name: "sepo", Selects: true, Native: 0.3, Needs: []Need{NeedOracle},
		Summary: "SePO: oracle token rewards log π^o/π^o_ref; chosen keeps its top 30%, rejected its bottom 30% (per response); reference-free loss −log σ(β'(r̄_w − r̄_l))",
		Params:  []Param{{Name: "sepo-beta", Default: 1, Usage: "sepo: β' of the reference-free loss −log σ(β'(r̄_w − r̄_l)) (SePO's code: none, i.e. 1)"}}},
		Build: newSePO})
}

// SePOScore is the selection score [2n, t]: r on the chosen rows, −r on the rejected rows, so the
// top of each row is SePO's kept set.
func SePOScore(r *Node) *Node {
	rc, rr := dpo.Halves(r)
	return dpo.Join(rc, Neg(rr))
}

// sepoRowCounts is ⌊k·T_b⌋ (at least 1 when the row has response tokens) for every row.
func sepoRowCounts(k float64, weights [][]float32) []int32 {
	out := make([]int32, len(weights))
	for i, row := range weights {
		n := 0
		for _, w := range row {
			if w != 0 {
				n++
			}
		}
		if n > 0 {
			out[i] = int32(min(max(int(math.Floor(k*float64(n)+1e-9)), 1), n))
		}
	}
	return out
}

func newSePO(env *DPOEnv) (train.Method, error) {
	c := env.DPO
	beta2 := env.Param("sepo-beta")
	budget := env.Options.BudgetMatched
	oracle, oracleRef, cache := env.Oracle, env.OracleRef, &env.Env
	var reward [][]float64
	var m *dpoMethod
	m = newDPOMethod(env, "sepo", func(lm *model.LM, b train.BatchNodes, _ *Node, k dpoKeep, ins []*Node) dpoOut {
		nll, valid := plainForward(lm, b)
		score := SePOScore(ConvertDType(ins[0], nll.DType()))
		var keep *Node
		if budget {
			keep = dpo.Select(score, valid, b.Noise, k.chosen, k.rejected, c.Threshold, alphatoken.SelectTop)
		} else {
			keep = SelectPerRow(score, valid, ins[1])
		}
		rc, rr := dpo.Halves(keptMeanLogProb(nll, keep))
		loss := dpo.MeanOver(Softplus(Neg(MulScalar(Sub(rc, rr), beta2))), nonEmptyPairs(keep, b.Weights))
		return dpoOut{loss: loss, nll: nll, keep: keep}
	})
	m.refFree = true
	m.plan = func(examples []data.Example) error {
		start := time.Now()
		o, err := PositionNLL(cache, "sepo-oracle", oracle, examples)
		if err != nil {
			return err
		}
		or, err := PositionNLL(cache, "sepo-oracle-ref", oracleRef, examples)
		if err != nil {
			return err
		}
		reward = make([][]float64, len(examples))
		for i := range examples {
			reward[i] = make([]float64, len(o[i]))
			for p := range o[i] {
				reward[i][p] = or[i][p] - o[i][p] // log π^o − log π^o_ref
			}
		}
		cache.logf("sepo: oracle token rewards of %d pairs ready in %s", len(examples)/2, time.Since(start).Round(time.Millisecond))
		return nil
	}
	m.stepInputs = func(step int, b *data.Batch, _ [][]float64) ([]any, error) {
		return []any{dpo.Rows(reward, b), sepoRowCounts(m.sched.at(step), b.Weights)}, nil
	}
	return m, nil
}
