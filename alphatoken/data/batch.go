package data

import (
	"math/rand/v2"
	"slices"
)

// Batch is a padded batch in the layout the training graphs take.
//
//	Tokens[b][p]  input ids, right-padded with the pad id
//	Targets[b][p] = Tokens[b][p+1] (0 where there is none)
//	Weights[b][p] = 1 at label positions p ∈ R of a real example, 0 elsewhere
//	Segments[b][p] (packed batches only, else nil): which of the row's examples position p holds
type Batch struct {
	Tokens  [][]int32
	Targets [][]int32
	Weights [][]float32
	// Segments numbers the examples of a packed row 0, 1, …; nil for a batch of one example per
	// row (MakeBatch). See MakePackedBatch.
	Segments [][]int32
	// Index[b] is the position of row b's example in the slice it came from (-1: padding row); in a
	// packed batch, the row's first example.
	Index []int
	// Packed[b] lists the examples of packed row b (nil for MakeBatch).
	Packed [][]int
	// NumTokens is Σ Weights (the response tokens of the batch).
	NumTokens int
}

// T is the padded length.
func (b *Batch) T() int { return len(b.Tokens[0]) }

// BucketLen rounds n up to a multiple of quantum, so a few graph shapes cover all batches.
func BucketLen(n, quantum, maxLen int) int {
	if quantum <= 0 {
		quantum = 1
	}
	t := (n + quantum - 1) / quantum * quantum
	if maxLen > 0 && t > maxLen {
		t = maxLen
	}
	return t
}

// MakeBatch pads examples[idx...] to length t (all must fit) into rows; rows beyond len(idx) up to
// size, and rows whose idx is negative, are padding rows with zero weight, so a fixed batch size
// keeps one graph shape.
func MakeBatch(examples []Example, idx []int, size, t, pad int) Batch {
	if size < len(idx) {
		size = len(idx)
	}
	if pad < 0 {
		pad = 0
	}
	b := Batch{Tokens: make([][]int32, size), Targets: make([][]int32, size), Weights: make([][]float32, size),
		Index: make([]int, size)}
	for row := range size {
		tok := make([]int32, t)
		tgt := make([]int32, t)
		w := make([]float32, t)
		b.Index[row] = -1
		for p := range tok {
			tok[p] = int32(pad)
		}
		if row < len(idx) && idx[row] >= 0 {
			ex := &examples[idx[row]]
			b.Index[row] = idx[row]
			for p, id := range ex.IDs[:min(len(ex.IDs), t)] {
				tok[p] = int32(id)
			}
			for p := range min(len(ex.IDs), t) - 1 {
				tgt[p] = int32(ex.IDs[p+1])
				if p+1 >= ex.PromptLen {
					w[p] = 1
					b.NumTokens++
				}
			}
		}
		b.Tokens[row], b.Targets[row], b.Weights[row] = tok, tgt, w
	}
	return b
}

// Sampler yields the batches of an epoch: examples shuffled by (seed, epoch), grouped by length
// within windows of 16 batches to limit padding, and the batch order shuffled again. It is a pure
// function of (seed, epoch), so training resumes on the exact same batches.
type Sampler struct {
	Lengths   []int
	BatchSize int
	Seed      uint64
	DropLast  bool // drop the last partial batch (otherwise it is padded with empty rows)
}

// Epoch returns the example indices of every batch of epoch e.
func (s *Sampler) Epoch(e int) [][]int {
	rng := rand.New(rand.NewPCG(s.Seed, uint64(e)+1))
	order := rng.Perm(len(s.Lengths))
	window := 16 * s.BatchSize
	var batches [][]int
	for start := 0; start < len(order); start += window {
		chunk := slices.Clone(order[start:min(start+window, len(order))])
		slices.SortStableFunc(chunk, func(a, b int) int { return s.Lengths[a] - s.Lengths[b] })
		for i := 0; i < len(chunk); i += s.BatchSize {
			batch := chunk[i:min(i+s.BatchSize, len(chunk))]
			if len(batch) < s.BatchSize && s.DropLast {
				continue
			}
			batches = append(batches, batch)
		}
	}
	rng.Shuffle(len(batches), func(i, j int) { batches[i], batches[j] = batches[j], batches[i] })
	return batches
}

// BatchesPerEpoch is len(Epoch(e)) (the same for every epoch).
func (s *Sampler) BatchesPerEpoch() int { return len(s.Epoch(0)) }
