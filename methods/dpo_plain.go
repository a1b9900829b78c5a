package methods

import (
	. "github.com/gomlx/gomlx/core/graph"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/dpo"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
)

// Plain DPO (every token; --loss sigmoid, ipo or hinge) and Random-ρ (a random ρ share of each
// branch's tokens, the ranking test's control, with the masked loss of SPEC §6).

func init() {
	RegisterDPO(DPOInfo{Info: Info{Name: "dpo", Summary: "plain DPO (TRL's loss: --loss sigmoid|ipo|hinge): every response token keeps its loss"},
		Build: func(env *DPOEnv) (train.Method, error) {
			c := env.DPO
			return newDPOMethod(env, "dpo", func(lm *model.LM, b train.BatchNodes, ref *Node, _ dpoKeep, _ []*Node) dpoOut {
				nll, _ := plainForward(lm, b)
				return dpoOut{loss: c.Plain(nll, ref, b.Weights), nll: nll}
			}), nil
		}})
	RegisterDPO(DPOInfo{Info: Info{Name: "random", Selects: true,
		Summary: "Random-ρ: a uniformly random ρ share of each branch's tokens (--dpo-threshold), masked DPO loss (the ranking test's control)"},
		Build: func(env *DPOEnv) (train.Method, error) {
			c := env.DPO
			return newDPOMethod(env, "random", func(lm *model.LM, b train.BatchNodes, ref *Node, k dpoKeep, _ []*Node) dpoOut {
				nll, valid := plainForward(lm, b)
				keep := dpo.Select(ZerosLike(nll), valid, b.Noise, k.chosen, k.rejected, c.Threshold, alphatoken.SelectRandom)
				loss, _ := c.MaskedLoss(nll, ref, b.Weights, keep, dpo.RealPairs(b.Weights))
				return dpoOut{loss: loss, nll: nll, keep: keep}
			}), nil
		}})
}
