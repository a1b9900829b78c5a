package train

import (
	"testing"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// grouped is Full plus a check of every batch's layout under GroupSize 2: rows [0, B) hold the
// first members (even examples) of the batch's groups, rows [B, 2B) the second members of the same
// groups in the same order, and missing groups are padding rows in both halves.
type grouped struct {
	Full
	t    *testing.T
	seen map[int]int
}

func (g *grouped) Prepare(step int, b *data.Batch) ([]any, error) {
	n := len(b.Index) / 2
	if len(b.Index) != 2*4 {
		g.t.Fatalf("step %d: %d rows, want 8", step, len(b.Index))
	}
	for r := range n {
		c, j := b.Index[r], b.Index[n+r]
		switch {
		case c < 0 && j < 0:
			if b.Weights[r][0] != 0 || b.Weights[n+r][1] != 0 {
				g.t.Errorf("step %d: padding row %d has weights", step, r)
			}
		case c < 0 || j < 0 || c%2 != 0 || j != c+1:
			g.t.Fatalf("step %d: rows %d and %d hold examples %d and %d", step, r, n+r, c, j)
		default:
			g.seen[c/2]++
		}
	}
	return nil, nil
}

// TestGroupSize: groups of two consecutive examples always share a batch, laid out in halves, and
// an epoch visits every group once (10 groups, batches of 4: the last batch has 2 and 2 padding).
func TestGroupSize(t *testing.T) {
	lm := tinyLM(t, 1)
	cfg := DefaultConfig(3)
	cfg.BatchSize, cfg.GroupSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet = 4, 2, 32, 16, true
	g := &grouped{t: t, seen: map[int]int{}}
	tr, err := New(lm, tokenizer.NewByteLevel(), cfg, g)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(copyTask(20)); err != nil {
		t.Fatal(err)
	}
	if len(g.seen) != 10 {
		t.Fatalf("an epoch visited %d of 10 groups: %v", len(g.seen), g.seen)
	}
	for grp, n := range g.seen {
		if n != 1 {
			t.Errorf("group %d seen %d times", grp, n)
		}
	}
	if err := tr.Run(copyTask(21)); err == nil {
		t.Error("21 examples in groups of 2: want an error")
	}
}
