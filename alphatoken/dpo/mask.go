package dpo

import (
	"github.com/gomlx/compute/dtypes"
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

// Twins marks [n, t] the response positions a pair's two responses share: valid in both rows, with
// every target up to and including the position equal in both (the common prefix of y_w and y_l).
// There log π(y_w,t) = log π(y_l,t) identically, so plain DPO's two branch gradients cancel and an
// update of the token moves both likelihoods alike, never the pair's margin.
func Twins(targets, weights *Node) *Node {
	twins, _ := twinsAndForks(targets, weights)
	return twins
}

// Forks marks [n, t] each pair's fork: the first position where the two rows' targets differ,
// when it is a response position of both rows (the first token where y_w and y_l part, with the
// same context in both).
func Forks(targets, weights *Node) *Node {
	_, forks := twinsAndForks(targets, weights)
	return forks
}

// twinsAndForks is Twins and Forks from one pass over the pair rows.
func twinsAndForks(targets, weights *Node) (twins, forks *Node) {
	tc, tr := Halves(targets)
	wc, wr := Halves(weights)
	ne := NotEqual(tc, tr)
	differ := CumSum(ConvertDType(ne, dtypes.Int32), 1) // targets that differed up to here
	both := And(NotEqual(wc, ZerosLike(wc)), NotEqual(wr, ZerosLike(wr)))
	return And(Equal(differ, ZerosLike(differ)), both), And(And(ne, Equal(differ, OnesLike(differ))), both)
}

// TwinCounts are a batch's twin and fork counts and how the keep mask [2n, t] treats them.
type TwinCounts struct {
	Twins, TwinsKeptChosen, TwinsKeptRejected *Node
	// OneSided counts the twins kept in exactly one of the two rows (a one-sided update of a token
	// both responses share).
	OneSided                                  *Node
	Forks, ForksKeptChosen, ForksKeptRejected *Node
}

// CountTwins counts, in dtype of like, a batch's twin positions (Twins) and forks (Forks), and how
// the keep mask [2n, t] treats them.
func CountTwins(targets, weights, keep, like *Node) TwinCounts {
	twin, fork := twinsAndForks(targets, weights)
	kc, kr := Halves(keep)
	count := func(a, m *Node) *Node { return ReduceAllSum(ConvertDType(And(a, m), like.DType())) }
	return TwinCounts{Twins: count(twin, twin), TwinsKeptChosen: count(twin, kc), TwinsKeptRejected: count(twin, kr),
		OneSided: count(twin, NotEqual(ConvertDType(kc, dtypes.Int32), ConvertDType(kr, dtypes.Int32))),
		Forks:    count(fork, fork), ForksKeptChosen: count(fork, kc), ForksKeptRejected: count(fork, kr)}
}
