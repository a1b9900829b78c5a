package model

import (
	"math"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/gomlx/compute"
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

// matmulTimer times a 1024² float32 matmul on a backend: the reference rate a step is compared with.
type matmulTimer struct {
	exec *Exec
	x, y *tensors.Tensor
}

const matmulN = 1024

func newMatmulTimer(backend compute.Backend) *matmulTimer {
	exec := MustNewExec(backend, func(x, y *Node) *Node { return DotGeneral(x, []int{1}, nil, y, []int{0}, nil) })
	vals := make([]float32, matmulN*matmulN)
	for i := range vals {
		vals[i] = float32((i/matmulN*31+i%matmulN*17)%97) / 97
	}
	x := tensors.FromFlatDataAndDimensions(vals, matmulN, matmulN)
	m := &matmulTimer{exec: exec, x: x, y: x}
	m.seconds() // compile and warm up
	return m
}

// seconds runs one matmul and returns its wall-clock and process CPU durations.
func (m *matmulTimer) seconds() (wall, cpu float64) {
	t0, c0 := time.Now(), cpuSeconds()
	m.exec.MustCall(m.x, m.y)[0].FinalizeAll()
	return time.Since(t0).Seconds(), cpuSeconds() - c0
}

// cpuSeconds is the CPU time (user + system) this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// gflops is the rate of a matmul that took sec seconds.
func (m *matmulTimer) gflops(sec float64) float64 { return 2 * matmulN * matmulN * matmulN / sec / 1e9 }

func median(x []float64) float64 {
	y := slices.Clone(x)
	slices.Sort(y)
	return y[len(y)/2]
}

// BenchmarkTrainStep: one forward+backward step (gradients of every weight) of the mini and small
// presets at batch 8 × 128 tokens, against a 1024² float32 matmul timed in the same run: each step
// is followed by three matmuls, so machine load affects both alike. Reported: tokens/s and GFLOP/s
// of the median step, the median matmul's GFLOP/s, and their ratio (step/matmul, the figure: how
// much of the matmul rate a step gets). cpu-step/matmul is the same ratio per CPU second (process
// CPU time), which load on a shared machine disturbs much less.
//
//	GOEXPERIMENT=simd go test ./model -run '^$' -bench TrainStep -benchtime 20x
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
			exec, err := NewStoreExec(backend, lm.Store, "train_step", func(scope *gm.Scope, g *Graph, in []*Node) []*Node {
				out := Forward(cfg, lm.Weights(g), in[0], ForwardOptions{})
				loss := ReduceAllMean(TokenNLL(out.Logits, ConvertDType(ShiftLeft(in[0], 1, 0), dtypes.Int32)))
				return append([]*Node{loss}, scope.BuildTrainableVariablesGradientsGraph(loss)...)
			})
			if err != nil {
				b.Fatal(err)
			}
			step := func() (wall, cpu float64) {
				t0, c0 := time.Now(), cpuSeconds()
				outs, err := exec.Call(tokens)
				if err != nil {
					b.Fatal(err)
				}
				for _, o := range outs {
					o.FinalizeAll()
				}
				return time.Since(t0).Seconds(), cpuSeconds() - c0
			}
			step() // compile and warm up
			mm := newMatmulTimer(backend)
			var steps, mms, stepsCPU, mmsCPU []float64
			b.ResetTimer()
			for range b.N {
				w, c := step()
				steps, stepsCPU = append(steps, w), append(stepsCPU, c)
				for range 3 {
					w, c := mm.seconds()
					mms, mmsCPU = append(mms, w), append(mmsCPU, c)
				}
			}
			b.StopTimer()
			flops := StepFLOPs(cfg, B, T)
			sec, mmSec := median(steps), median(mms)
			gf := flops / sec / 1e9
			b.ReportMetric(float64(B*T)/sec, "tokens/s")
			b.ReportMetric(gf, "GFLOP/s")
			b.ReportMetric(mm.gflops(mmSec), "matmul-GFLOP/s")
			b.ReportMetric(gf/mm.gflops(mmSec), "step/matmul")
			b.ReportMetric(median(mmsCPU)/median(stepsCPU)*flops/(2*matmulN*matmulN*matmulN), "cpu-step/matmul")
			b.Logf("%s: %.2fM params, %.1f GFLOP/step, median %.3f s/step (fastest %.3f), %d steps, simd=%v", preset,
				float64(cfg.NumParams())/1e6, flops/1e9, sec, slices.Min(steps), len(steps), SIMD())
		})
	}
}

// matmulShape is one matmul of a training step: count products of [batch,] [m, k] × [k, n].
type matmulShape struct{ batch, m, k, n, count int }

func (s matmulShape) flops() float64 { return 2 * float64(s.count*s.batch*s.m*s.k*s.n) }

// stepMatmuls lists the matmuls of one forward+backward step of a [b, t] batch, as StepFLOPs counts
// them: for every projection [out, in] over n = b·t tokens the forward [n, in]·[in, out], the input
// gradient [n, out]·[out, in] and the weight gradient [out, n]·[n, in]; the same three for the LM
// head; attention's QKᵀ and AV and their four gradient products, batched over b·heads.
func stepMatmuls(c *Config, b, t int) []matmulShape {
	n := b * t
	var out []matmulShape
	three := func(o, i, count int) {
		out = append(out, matmulShape{1, n, i, o, count}, matmulShape{1, n, o, i, count}, matmulShape{1, o, n, i, count})
	}
	for kind := range NumLinearKinds {
		s := c.LinearShape(kind)
		three(s[0], s[1], c.Layers)
	}
	three(c.VocabSize, c.Hidden, 1)
	bh := b * c.Heads
	out = append(out, matmulShape{bh, t, c.HeadDim, t, 2 * c.Layers}, matmulShape{bh, t, t, c.HeadDim, 4 * c.Layers})
	return out
}

// BenchmarkStepMatmuls runs the matmuls of BenchmarkTrainStep's steps (stepMatmuls: mini and small
// presets, 8 × 128 tokens), every one of them, in one graph with nothing else (each its own
// parameters, so none is deduplicated), interleaved with the 1024² matmul. Reported: GFLOP/s of that
// graph and matmuls/matmul, its rate relative to the 1024² matmul's: the step/matmul a step would
// reach if it spent nothing outside its matmuls at their own shapes.
//
//	GOEXPERIMENT=simd go test ./model -run '^$' -bench StepMatmuls -benchtime 20x
func BenchmarkStepMatmuls(b *testing.B) {
	for _, preset := range []string{"mini", "small"} {
		b.Run(preset, func(b *testing.B) {
			backend := testBackend(b)
			cfg, _ := Preset(preset, 259, 257, 258, 256)
			const B, T = 8, 128
			shapes := stepMatmuls(cfg, B, T)
			var total float64
			var args []any
			fill := func(dims ...int) *tensors.Tensor {
				vals := make([]float32, dims[0]*dims[1]*dims[2])
				for i := range vals {
					vals[i] = float32(i%97) / 97
				}
				return tensors.FromFlatDataAndDimensions(vals, dims...)
			}
			for _, s := range shapes {
				total += s.flops()
				x, y := fill(s.batch, s.m, s.k), fill(s.batch, s.k, s.n)
				for range s.count {
					args = append(args, x, y)
				}
			}
			if want := StepFLOPs(cfg, B, T); math.Abs(total-want) > 1e-9*want {
				b.Fatalf("stepMatmuls counts %g FLOPs, StepFLOPs %g", total, want)
			}
			exec := MustNewExec(backend, func(in []*Node) []*Node {
				var out []*Node
				for i := 0; i < len(in); i += 2 {
					out = append(out, DotGeneral(in[i], []int{2}, []int{0}, in[i+1], []int{1}, []int{0}))
				}
				return out
			})
			run := func() float64 {
				t0 := time.Now()
				for _, o := range exec.MustCall(args...) {
					o.FinalizeAll()
				}
				return time.Since(t0).Seconds()
			}
			run() // compile and warm up
			mm := newMatmulTimer(backend)
			var times, mms []float64
			b.ResetTimer()
			for range b.N {
				times = append(times, run())
				for range 3 {
					w, _ := mm.seconds()
					mms = append(mms, w)
				}
			}
			b.StopTimer()
			gf, ref := total/median(times)/1e9, mm.gflops(median(mms))
			b.ReportMetric(gf, "GFLOP/s")
			b.ReportMetric(ref, "matmul-GFLOP/s")
			b.ReportMetric(gf/ref, "matmuls/matmul")
			b.Logf("%s: %d matmuls, %.1f GFLOP, median %.4f s", preset, len(args)/2, total/1e9, median(times))
		})
	}
}
