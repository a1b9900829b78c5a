package data

import (
	"cmp"
	"slices"
)

// Packing puts several short examples in one row of a batch, as TRL's SFTConfig(packing=True)
// does, so that a batch of rows of length T carries about T tokens per row instead of the padded
// length of its longest example. Each example keeps its own attention: a position sees only
// earlier positions of the same example (a block-diagonal causal mask), and its RoPE position
// restarts at 0 with the example (Batch.Segments; model.ForwardOptions.Segments). Loss and values
// sit at each example's own label positions; the last token of an example predicts nothing (its
// target would be the next example's first token).

// Pack groups examples (given by their lengths) into rows of at most capacity tokens by best-fit
// decreasing: longest first, each into the row whose free space is smallest but enough, or a new
// row (TRL's "bfd" strategy). Rows list example indices in the order they were placed; the
// result is a pure function of lengths and capacity. An example longer than capacity gets a row of
// its own (the caller truncates or rejects it).
func Pack(lengths []int, capacity int) [][]int {
	order := make([]int, len(lengths))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(lengths[b], lengths[a]) })
	var rows [][]int
	// open[f] holds the rows with exactly f tokens free (f in 1..capacity-1), in creation order.
	open := make([][]int, max(capacity, 1))
	free := []int{}
	for _, i := range order {
		n := lengths[i]
		best := -1
		for f := max(n, 1); f < len(open); f++ {
			if len(open[f]) > 0 {
				best = f
				break
			}
		}
		if best < 0 {
			rows = append(rows, []int{i})
			free = append(free, capacity-n)
			if f := capacity - n; f > 0 && f < len(open) {
				open[f] = append(open[f], len(rows)-1)
			}
			continue
		}
		r := open[best][0]
		open[best] = open[best][1:]
		rows[r] = append(rows[r], i)
		free[r] -= n
		if f := free[r]; f > 0 {
			open[f] = append(open[f], r)
		}
	}
	return rows
}

// RowLengths is the number of tokens of each packed row.
func RowLengths(rows [][]int, lengths []int) []int {
	out := make([]int, len(rows))
	for r, row := range rows {
		for _, i := range row {
			out[r] += lengths[i]
		}
	}
	return out
}

// MakePackedBatch lays out packed rows (each a list of example indices, see Pack) into a batch of
// size rows of length t: the examples of a row follow one another, each with its own targets and
// label weights, and Segments numbers them 0, 1, … within the row (padding after the last example
// takes the next number, so it sees only itself and other padding). Index[b] is the first example
// of row b (-1: a padding row); Packed[b] lists all of them.
func MakePackedBatch(examples []Example, rows [][]int, size, t, pad int) Batch {
	if size < len(rows) {
		size = len(rows)
	}
	if pad < 0 {
		pad = 0
	}
	b := Batch{Tokens: make([][]int32, size), Targets: make([][]int32, size), Weights: make([][]float32, size),
		Segments: make([][]int32, size), Index: make([]int, size), Packed: make([][]int, size)}
	for row := range size {
		tok := make([]int32, t)
		tgt := make([]int32, t)
		w := make([]float32, t)
		seg := make([]int32, t)
		for p := range tok {
			tok[p] = int32(pad)
		}
		b.Index[row] = -1
		at, n := 0, int32(0)
		if row < len(rows) {
			b.Packed[row] = slices.Clone(rows[row])
			for _, i := range rows[row] {
				ex := &examples[i]
				if b.Index[row] < 0 {
					b.Index[row] = i
				}
				l := min(len(ex.IDs), t-at)
				for p := range l {
					tok[at+p] = int32(ex.IDs[p])
					seg[at+p] = n
				}
				for p := range l - 1 {
					tgt[at+p] = int32(ex.IDs[p+1])
					if p+1 >= ex.PromptLen {
						w[at+p] = 1
						b.NumTokens++
					}
				}
				at += l
				n++
			}
		}
		for p := at; p < t; p++ {
			seg[p] = n
		}
		b.Tokens[row], b.Targets[row], b.Weights[row], b.Segments[row] = tok, tgt, w, seg
	}
	return b
}
