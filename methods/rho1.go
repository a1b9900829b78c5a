package methods

import (
	. "github.com/gomlx/gomlx/core/graph"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
)

// rho1, Selective Language Modeling (Lin et al., NeurIPS 2024, arXiv 2404.07965): the excess loss of the current model over a reference model trained on high-quality
// data,
//
//	L_Δ(p) = ℓ_θ(p) − ℓ_RM(p),
//
// ranked within the batch; the top k% keep their loss (k = 60%, the paper's 1.1B setting). ℓ_θ is
// the training forward's own loss (detached for the ranking); RM is the helper (--helper: π_0
// fine-tuned on a clean held-out slice, the same model as Token Cleaning's reference), frozen, so
// ℓ_RM is computed once offline. Budget-matched: k = ρ.

func init() {
	Register(Info{Name: "rho1", Selects: true, Native: 0.6, Needs: []Need{NeedHelper},
		Summary: "Rho-1: top-60% of each batch by the excess loss ℓ_θ − ℓ_helper (ℓ_helper offline)",
		Build:   newRho1})
}

func newRho1(env *Env) (train.Method, error) {
	lt := &lazyTable{}
	helper := env.Helper
	m := &selective{name: "rho1", scope: perBatch, sel: alphatoken.SelectTop, sched: env.schedule(), inputs: []input{lt},
		score: func(lm *model.LM, b train.BatchNodes, ins []*Node) (*Node, *Node, *Node, []*Node) {
			_, nll, valid := forwardNLL(lm, b, model.ForwardOptions{})
			return nll, valid, Sub(StopGradient(nll), ConvertDType(ins[0], nll.DType())), nil
		}}
	m.plan = func(examples []data.Example, _ func(int) []int, _ int) error {
		var err error
		lt.tt, err = frozenNLL(env, "rho1: ℓ_helper", helper, examples)
		return err
	}
	return m, nil
}
