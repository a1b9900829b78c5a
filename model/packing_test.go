package model

import (
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"
)

// TestPackedRowsMatchSeparate: three examples packed in one row (with padding after them) give,
// at every position of every example, the logits each example gets alone in its own row, for
// every architecture (RoPE scaling, biases, q/k-norm); and the diagonal-gradient copy sees the
// same context.
func TestPackedRowsMatchSeparate(t *testing.T) {
	backend := testBackend(t)
	lens := []int{5, 3, 6}
	const T = 16 // 14 tokens of examples, 2 of padding
	for name, cfg := range tinyConfigs() {
		t.Run(name, func(t *testing.T) {
			lm, err := New(backend, cfg, dtypes.Float64, 3)
			if err != nil {
				t.Fatal(err)
			}
			randomizeNorms(t, lm)
			// Example i's tokens; packed: one row; separate: row i, right-padded to T.
			packed := [][]int32{make([]int32, T)}
			segments := [][]int32{make([]int32, T)}
			separate := make([][]int32, len(lens))
			at := 0
			for i, n := range lens {
				separate[i] = make([]int32, T)
				for p := range n {
					id := int32((i*11 + p*5 + 1) % cfg.VocabSize)
					separate[i][p] = id
					packed[0][at+p] = id
					segments[0][at+p] = int32(i)
				}
				at += n
			}
			for p := at; p < T; p++ {
				segments[0][p] = int32(len(lens))
			}
			run := func(tokens, seg [][]int32) []float64 {
				exec, err := NewStoreExec(backend, lm.Store, "packed", func(_ *gm.Scope, g *Graph, in []*Node) []*Node {
					opts := ForwardOptions{TapBlocks: 1, Diagonal: true}
					if len(in) > 1 {
						opts.Segments = in[1]
					}
					out := Forward(cfg, lm.Weights(g), in[0], opts)
					return []*Node{out.Logits, out.DiagLogits}
				})
				if err != nil {
					t.Fatal(err)
				}
				args := []any{tokens}
				if seg != nil {
					args = append(args, seg)
				}
				res := exec.MustCall(args...)
				if e := relErr(toF64(t, res[1]), toF64(t, res[0])); e > 1e-12 {
					t.Fatalf("the diagonal copy differs from the forward: %g", e)
				}
				return toF64(t, res[0])
			}
			got := run(packed, segments)
			want := run(separate, nil)
			v := cfg.VocabSize
			at = 0
			for i, n := range lens {
				a := got[at*v : (at+n)*v]
				b := want[i*T*v : (i*T+n)*v]
				if e := relErr(a, b); e > 1e-12 {
					t.Errorf("example %d: packed logits differ from its own row's: rel err %g", i, e)
				}
				at += n
			}
			// Without the segments, the second example would see the first: the test can fail.
			leaky := run(packed, nil)
			if e := relErr(leaky[lens[0]*v:(lens[0]+lens[1])*v], want[T*v:(T+lens[1])*v]); e < 1e-6 {
				t.Fatalf("an unmasked packed row matches too (rel err %g): the test cannot tell", e)
			}
		})
	}
}
