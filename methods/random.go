package methods

import (
	. "github.com/gomlx/gomlx/core/graph"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
)

func init() {
	Register(Info{
		Name:    "random",
		Summary: "Random-ρ: a uniformly random ρ share of each batch's response tokens (the ranking test's control)",
		Selects: true,
		Build: func(env *Env) (train.Method, error) {
			return &selective{name: "random", scope: perBatch, sel: alphatoken.SelectRandom, sched: env.schedule(), packs: true,
				score: func(lm *model.LM, b train.BatchNodes, _ []*Node) (*Node, *Node, *Node, []*Node) {
					_, nll, valid := forwardNLL(lm, b, model.ForwardOptions{})
					return nll, valid, ZerosLike(nll), nil
				}}, nil
		},
	})
}
