package data

import (
	"slices"
	"testing"
)

// TestPack: every example lands in exactly one row, no row exceeds the capacity, best-fit
// decreasing fills rows (here within one row of the lower bound ⌈Σ len / capacity⌉), and the
// result is a pure function of the lengths.
func TestPack(t *testing.T) {
	lengths := make([]int, 200)
	total := 0
	for i := range lengths {
		lengths[i] = 3 + (i*37)%60
		total += lengths[i]
	}
	const capacity = 128
	rows := Pack(lengths, capacity)
	seen := make([]int, len(lengths))
	for r, row := range rows {
		n := 0
		for _, i := range row {
			seen[i]++
			n += lengths[i]
		}
		if n > capacity {
			t.Fatalf("row %d holds %d tokens > %d", r, n, capacity)
		}
	}
	for i, c := range seen {
		if c != 1 {
			t.Fatalf("example %d packed %d times", i, c)
		}
	}
	lower := (total + capacity - 1) / capacity
	if len(rows) > lower+1 {
		t.Errorf("%d rows for %d tokens (lower bound %d)", len(rows), total, lower)
	}
	if !slices.EqualFunc(rows, Pack(lengths, capacity), slices.Equal) {
		t.Fatal("Pack is not deterministic")
	}
	if got := RowLengths(rows, lengths); slices.Max(got) > capacity {
		t.Fatalf("RowLengths %v", got)
	}
	// An example longer than the capacity gets its own row.
	if rows := Pack([]int{5, 300, 4}, 10); len(rows) != 2 || !slices.Equal(rows[0], []int{1}) {
		t.Errorf("oversized example: %v", rows)
	}
}

// TestMakePackedBatch: examples follow one another in their row with their own targets; only
// each example's label positions carry weight (the last token of an example predicts nothing);
// segments number the examples, and padding takes the next number.
func TestMakePackedBatch(t *testing.T) {
	exs := []Example{{IDs: []int{9, 1, 2, 3}, PromptLen: 2}, {IDs: []int{9, 4, 5}, PromptLen: 1}, {IDs: []int{7, 8}, PromptLen: 1}}
	b := MakePackedBatch(exs, [][]int{{0, 1}, {2}}, 3, 9, 0)
	if b.NumTokens != 5 || len(b.Tokens) != 3 || b.T() != 9 {
		t.Fatalf("batch: %+v", b)
	}
	for _, c := range []struct {
		name string
		got  any
		want any
	}{
		{"tokens", b.Tokens[0], []int32{9, 1, 2, 3, 9, 4, 5, 0, 0}},
		{"targets", b.Targets[0], []int32{1, 2, 3, 0, 4, 5, 0, 0, 0}},
		{"weights", b.Weights[0], []float32{0, 1, 1, 0, 1, 1, 0, 0, 0}},
		{"segments", b.Segments[0], []int32{0, 0, 0, 0, 1, 1, 1, 2, 2}},
		{"row 1 weights", b.Weights[1], []float32{1, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"row 1 segments", b.Segments[1], []int32{0, 0, 1, 1, 1, 1, 1, 1, 1}},
		{"padding row segments", b.Segments[2], make([]int32, 9)},
		{"index", b.Index, []int{0, 2, -1}},
	} {
		if !equalAny(c.got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	if !slices.Equal(b.Packed[0], []int{0, 1}) || b.Packed[2] != nil {
		t.Errorf("packed %v", b.Packed)
	}
}

func equalAny(a, b any) bool {
	switch x := a.(type) {
	case []int32:
		return slices.Equal(x, b.([]int32))
	case []float32:
		return slices.Equal(x, b.([]float32))
	case []int:
		return slices.Equal(x, b.([]int))
	}
	return false
}
