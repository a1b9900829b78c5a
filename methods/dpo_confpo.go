package methods

import (
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/dpo"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
)

// ConfPO: the critical tokens of each response are those whose confidence
// c_t = π_θ(y_t) (detached, from the training forward) is below the response's mean confidence,
// log c_t < log((1/T) Σ_t c_t), separately for chosen and rejected; a pair with an empty critical
// set in either branch is dropped (its loss is 0). Loss, DPO form (default; a best guess, the
// released code is SimPO's): the DPO loss of the masked sequences, −log σ(β Σ_{S_w} h − β Σ_{S_l} h)
// (--loss applies); SimPO form (--confpo-simpo 1, the released code): −log σ(β'(r̄_w − r̄_l) − γ')
// with r̄ the mean log π_θ over the critical set, reference free. Budget matched: the ρ
// least-confident tokens of each branch of the batch (--dpo-threshold), same losses.

func init() {
	RegisterDPO(DPOInfo{Info: Info{Name: "confpo", Selects: true, Threshold: true,
		Summary: "ConfPO: per response, the tokens less confident than the response's mean; pairs with an empty branch dropped; DPO form (SimPO form with --confpo-simpo 1)",
		Params: []Param{
			{Name: "confpo-simpo", Default: 0, Usage: "confpo: 1 trains the released SimPO form −log σ(β'(r̄_w − r̄_l) − γ') (reference free), 0 the DPO form"},
			{Name: "confpo-beta", Default: 1.5, Usage: "confpo SimPO form: β' (the ConfPO script's value)"},
			{Name: "confpo-gamma", Default: 1.6, Usage: "confpo SimPO form: the margin γ' (the ConfPO script's value)"},
		}},
		Build: newConfPO})
}

// ConfPOMask is ConfPO's critical set [2n, t]: the response positions whose confidence
// exp(−l_t) is below the row's mean confidence (log c_t < log mean_t c_t).
func ConfPOMask(nll, valid *Node) *Node {
	nll = StopGradient(nll)
	vf := ConvertDType(valid, nll.DType())
	conf := Mul(Exp(Neg(nll)), vf)
	mean := Div(ReduceAndKeep(conf, ReduceSum, 1), MaxScalar(ReduceAndKeep(vf, ReduceSum, 1), 1))
	return And(valid, LessThan(Neg(nll), Log(mean)))
}

// nonEmptyPairs is [n] bool: real pairs whose kept set is not empty in either branch.
func nonEmptyPairs(keep, weights *Node) *Node {
	k := ReduceSum(ConvertDType(keep, dtypes.Float32), 1)
	kc, kr := dpo.Halves(k)
	zero := ZerosLike(kc)
	return And(dpo.RealPairs(weights), And(GreaterThan(kc, zero), GreaterThan(kr, zero)))
}

// keptMeanLogProb is r̄ per row [2n]: the mean of log π = −l over the row's kept positions.
func keptMeanLogProb(nll, keep *Node) *Node {
	k := ConvertDType(keep, nll.DType())
	return Div(ReduceSum(Mul(Neg(nll), k), 1), MaxScalar(ReduceSum(k, 1), 1))
}

func newConfPO(env *DPOEnv) (train.Method, error) {
	c := env.DPO
	simpo := env.Param("confpo-simpo") != 0
	beta2, gamma2 := env.Param("confpo-beta"), env.Param("confpo-gamma")
	budget := env.Options.BudgetMatched
	m := newDPOMethod(env, "confpo", func(lm *model.LM, b train.BatchNodes, ref *Node, k dpoKeep, _ []*Node) dpoOut {
		nll, valid := plainForward(lm, b)
		var keep *Node
		if budget {
			keep = dpo.Select(StopGradient(nll), valid, b.Noise, k.chosen, k.rejected, c.Threshold, alphatoken.SelectTop)
		} else {
			keep = ConfPOMask(nll, valid)
		}
		real := nonEmptyPairs(keep, b.Weights)
		var loss *Node
		if simpo {
			rc, rr := dpo.Halves(keptMeanLogProb(nll, keep))
			margin := AddScalar(MulScalar(Sub(rc, rr), beta2), -gamma2)
			loss = dpo.MeanOver(Softplus(Neg(margin)), real)
		} else {
			cm := c
			cm.Coefficient = dpo.Masked
			loss, _ = cm.MaskedLoss(nll, ref, b.Weights, keep, real)
		}
		dropped := Sub(ReduceAllSum(ConvertDType(dpo.RealPairs(b.Weights), nll.DType())), ReduceAllSum(ConvertDType(real, nll.DType())))
		return dpoOut{loss: loss, nll: nll, keep: keep, own: []*Node{dropped}}
	})
	m.metrics = []string{"dropped_pairs"}
	m.refFree = simpo
	return m, nil
}
