package model

import (
	"sort"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	gm "github.com/gomlx/gomlx/ml/model"
)

// StepFLOPs is 3 × the forward matmul FLOPs of a [b, t] batch: every projection, the LM head, and
// QKᵀ and AV over the full t×t (no causal skipping) — the usual "fwd + 2×fwd for bwd" estimate.
func StepFLOPs(c *Config, b, t int) float64 {
	perToken := 0
	for k := range NumLinearKinds {
		s := c.LinearShape(k)
		perToken += 2 * s[0] * s[1]
	}
	perToken *= c.Layers
	perToken += 2 * c.Hidden * c.VocabSize
	attn := 2 * 2 * t * c.Heads * c.HeadDim * c.Layers
	return 3 * float64(b*t) * float64(perToken+attn)
}

// MatmulGFLOPS times a 1024² float32 matmul on lm's backend (median of runs).
func MatmulGFLOPS(b *LM, runs int) float64 {
	const n = 1024
	exec := MustNewExec(b.Backend, func(x, y *Node) *Node { return DotGeneral(x, []int{1}, nil, y, []int{0}, nil) })
	m := make([][]float32, n)
	for i := range m {
		m[i] = make([]float32, n)
		for j := range m[i] {
			m[i][j] = float32((i*31+j*17)%97) / 97
		}
	}
	x, y := tensors.FromValue(m), tensors.FromValue(m)
	var times []float64
	for i := range runs + 1 {
		t0 := time.Now()
		out := exec.MustCall(x, y)[0]
		out.FinalizeAll()
		if i > 0 {
			times = append(times, time.Since(t0).Seconds())
		}
	}
	sort.Float64s(times)
	return 2 * n * n * n / times[len(times)/2] / 1e9
}

// BenchmarkTrainStep: one forward+backward step (gradients of every weight) of the mini and small
// presets at batch 8 × 128 tokens, reporting tokens/s, achieved GFLOP/s, a 1024² matmul's GFLOP/s
// measured in the same run, and their ratio (the figure: how much of the matmul rate a step gets).
//
//	GOEXPERIMENT=simd go test ./model -run '^$' -bench TrainStep -benchtime 5x
func BenchmarkTrainStep(b *testing.B) {
	for _, preset := range []string{"mini", "small"} {
		b.Run(preset, func(b *testing.B) {
			backend := testBackend(b)
			cfg, _ := Preset(preset, 259, 257, 258, 256)
			lm, err := New(backend, cfg, dtypes.Float32, 1)
			if err != nil {
				b.Fatal(err)
			}
			const B, T = 8, 128
			tokens := tensors.FromValue(testTokens(B, T, cfg.VocabSize))
			exec := gm.MustNewExec(backend, lm.Store, func(scope *gm.Scope, tok *Node) []*Node {
				out := Forward(cfg, lm.Weights(tok.Graph()), tok, ForwardOptions{})
				loss := ReduceAllMean(TokenNLL(out.Logits, ConvertDType(ShiftLeft(tok, 1, 0), dtypes.Int32)))
				return append([]*Node{loss}, scope.BuildTrainableVariablesGradientsGraph(loss)...)
			})
			step := func() {
				for _, o := range exec.MustCall(tokens) {
					o.FinalizeAll()
				}
			}
			step() // compile and warm up
			mm0 := MatmulGFLOPS(lm, 5)
			b.ResetTimer()
			t0 := time.Now()
			for range b.N {
				step()
			}
			sec := time.Since(t0).Seconds() / float64(b.N)
			b.StopTimer()
			mm := max(mm0, MatmulGFLOPS(lm, 5))
			gf := StepFLOPs(cfg, B, T) / sec / 1e9
			b.ReportMetric(float64(B*T)/sec, "tokens/s")
			b.ReportMetric(gf, "GFLOP/s")
			b.ReportMetric(mm, "matmul-GFLOP/s")
			b.ReportMetric(gf/mm, "step/matmul")
			b.Logf("%s: %.2fM params, %.1f GFLOP/step, %.3f s/step, simd=%v", preset, float64(cfg.NumParams())/1e6,
				StepFLOPs(cfg, B, T)/1e9, sec, SIMD())
		})
	}
}
