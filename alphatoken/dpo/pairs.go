package dpo

import (
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
)

// Examples flattens pairs into examples stored chosen, rejected, chosen, … : pair i is examples
// 2i and 2i+1 (the trainer's GroupSize 2).
func Examples(pairs []data.Pair) []data.Example {
	out := make([]data.Example, 0, 2*len(pairs))
	for _, p := range pairs {
		out = append(out, p.Chosen, p.Rejected)
	}
	return out
}

// Batch lays out the pairs pairIdx of flattened examples as a batch of 2n rows (chosen rows
// [0, n), rejected rows [n, 2n)), padded to n pairs and t positions.
func Batch(examples []data.Example, pairIdx []int, n, t, pad int) data.Batch {
	rows := make([]int, 2*n)
	for i := range n {
		rows[i], rows[n+i] = -1, -1
		if i < len(pairIdx) {
			rows[i], rows[n+i] = 2*pairIdx[i], 2*pairIdx[i]+1
		}
	}
	return data.MakeBatch(examples, rows, 2*n, t, pad)
}

// Rows returns a per-example table's rows for a batch ([len(b.Tokens)][b.T()]; zeros for padding
// rows and beyond an example).
func Rows(table [][]float64, b *data.Batch) [][]float64 {
	out := make([][]float64, len(b.Tokens))
	for r := range out {
		out[r] = make([]float64, b.T())
		if i := b.Index[r]; i >= 0 {
			copy(out[r], table[i])
		}
	}
	return out
}

// Objective is DPO's target objective J_tgt (SPEC §3): the mean pair loss ℓ(δ) (c's loss type,
// every token) of the first valPairs pairs of the flattened validation examples, whose reference
// per-position losses are refNLL (one row per example, as the trainer's reference tables).
func Objective(c Config, val []data.Example, refNLL [][]float64, valPairs, maxLen, pad int) (alphatoken.Objective, error) {
	if len(val) < 2 || len(val)%2 != 0 {
		return alphatoken.Objective{}, errors.New("dpo: no validation pairs")
	}
	n := min(valPairs, len(val)/2)
	idx := make([]int, n)
	longest := 0
	for i := range idx {
		idx[i] = i
		longest = max(longest, len(val[2*i].IDs), len(val[2*i+1].IDs))
	}
	if longest > maxLen {
		return alphatoken.Objective{}, errors.Errorf("dpo: validation pair %s has %d tokens, more than the context %d", val[0].Source, longest, maxLen)
	}
	b := Batch(val, idx, n, data.BucketLen(longest, 32, maxLen), pad)
	ref := Rows(refNLL, &b)
	return alphatoken.Objective{Batch: b, Loss: func(nll, weights *Node) *Node {
		return c.Plain(nll, Const(nll.Graph(), ref), weights)
	}}, nil
}
