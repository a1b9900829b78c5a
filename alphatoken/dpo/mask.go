package dpo

import (
	. "github.com/gomlx/gomlx/core/graph"

	"github.com/alphatoken/alphatoken/alphatoken"
)

// KeepCounts is the keep count of a batch's mask from the response weights of its 2n rows (SPEC §6):
// separate, k = floor(ρN+0.5) of the chosen tokens and of the rejected tokens (each at least 1);
// shared, one k of all the batch's response tokens (returned as kc, with kr 0).
func KeepCounts(rho float64, weights [][]float32, th Threshold) (kc, kr int32) {
	half := len(weights) / 2
	count := func(rows [][]float32) int {
		n := 0
		for _, row := range rows {
			for _, w := range row {
				if w != 0 {
					n++
				}
			}
		}
		return n
	}
	nc, nr := count(weights[:half]), count(weights[half:])
	if th == Shared {
		return int32(alphatoken.KeepCount(rho, nc+nr)), 0
	}
	return int32(alphatoken.KeepCount(rho, nc)), int32(alphatoken.KeepCount(rho, nr))
}

// Select is the keep mask [2n, t] of a pair batch by token values (alphatoken.SelectK within a
// branch): separate, the kc top (bottom, random) chosen tokens and the kr rejected ones; shared,
// kc over the whole batch. valid marks the response positions, noise drives random selection.
func Select(values, valid, noise, kc, kr *Node, th Threshold, sel alphatoken.Selection) *Node {
	if th == Shared {
		return alphatoken.SelectK(values, valid, noise, kc, sel)
	}
	vc, vr := Halves(values)
	okc, okr := Halves(valid)
	nc, nr := Halves(noise)
	return Join(alphatoken.SelectK(vc, okc, nc, kc, sel), alphatoken.SelectK(vr, okr, nr, kr, sel))
}

// BranchCounts is the number of set positions of a [2n, t] mask in the chosen and the rejected
// rows, in dtype of like.
func BranchCounts(mask, like *Node) (chosen, rejected *Node) {
	c, r := Halves(ConvertDType(mask, like.DType()))
	return ReduceAllSum(c), ReduceAllSum(r)
}
