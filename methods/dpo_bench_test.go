package methods

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/dpo"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// BenchmarkDPOMethods measures one DPO step of every registered DPO method (and the baselines
// budget-matched) against plain DPO, in one run: R rounds (default 2) over the methods, each round
// 4 steps per method. The cost is the process's CPU time per step (getrusage: robust to other jobs
// on a shared machine), the median over rounds; wall time alongside. MiniBench's mini model,
// batches of 4 pairs (8 sequences) of 128 tokens (prompt 32, responses 96), AlphaToken with K = 2
// and ValRefresh 4 (B_val = 4 pairs), reference log-probabilities precomputed (offline CPU shown
// apart). TI-DPO's step includes sampling its anchors. The table goes to stdout.
//
//	ALPHATOKEN_BENCH_ROUNDS=12 GOEXPERIMENT=simd go test ./methods -run '^$' -bench 'DPOMethods$' -benchtime 1x -timeout 60m
func BenchmarkDPOMethods(b *testing.B) {
	s := newBenchSetupWith(b, "mini", 8, 128)
	rounds := envInt("ALPHATOKEN_BENCH_ROUNDS", 2)
	const nPairs = 4
	rng := rand.New(rand.NewPCG(2, 2))
	randIDs := func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = 'a' + rng.IntN(26)
		}
		return out
	}
	var pairs []data.Pair
	for range 4 * nPairs {
		prompt := randIDs(s.t / 4)
		mk := func() data.Example {
			return data.Example{IDs: append(append([]int(nil), prompt...), randIDs(s.t-s.t/4)...), PromptLen: s.t / 4}
		}
		pairs = append(pairs, data.Pair{Chosen: mk(), Rejected: mk()})
	}
	exs := dpo.Examples(pairs)
	type run struct {
		label      string
		tr         *train.Trainer
		cpu, wall  []float64
		offlineCPU float64
	}
	var runs []*run
	for _, name := range DPONames() {
		in, _ := LookupDPO(name)
		variants := []bool{false}
		if in.Native > 0 || in.Threshold {
			variants = append(variants, true)
		}
		for _, budget := range variants {
			label := name
			if budget {
				label += " (budget-matched)"
			}
			ref, err := s.lm.Clone()
			if err != nil {
				b.Fatal(err)
			}
			vc := alphatoken.DefaultConfig()
			vc.Blocks, vc.ValRefresh, vc.ValExamples = 2, 4, nPairs
			env := &DPOEnv{Env: Env{LM: s.lm, Ref: ref, Fisher: s.fisher, Valuation: vc, Options: DefaultOptions(), Steps: 1000,
				BatchSize: nPairs, MaxLen: s.t, Log: io.Discard},
				DPO: dpo.DefaultConfig(), ValPairs: exs[:2*nPairs], RefLogps: RefPrecompute, Oracle: ref, OracleRef: ref,
				Seed: 1, Stop: []int{tokenizer.ByteEOS}}
			env.Options.BudgetMatched = budget
			m, err := BuildDPO(name, env)
			if err != nil {
				b.Fatal(err)
			}
			cfg := train.DefaultConfig(1000)
			cfg.BatchSize, cfg.GroupSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet, cfg.LogEvery = nPairs, 2, s.t, s.t, true, 1000
			tr, err := train.New(s.lm, nil, cfg, m)
			if err != nil {
				b.Fatal(err)
			}
			r := &run{label: label, tr: tr}
			c0 := cpuSeconds()
			if err := m.(train.Planner).Plan(exs, nil, 1000); err != nil {
				b.Fatal(err)
			}
			r.offlineCPU = cpuSeconds() - c0
			if err := tr.RunUntil(exs, 1); err != nil { // warm-up (graph compilation, buffers)
				b.Fatal(err)
			}
			runs = append(runs, r)
		}
	}
	b.ResetTimer()
	for range rounds {
		for _, r := range runs {
			c0, t0 := cpuSeconds(), time.Now()
			if err := r.tr.RunUntil(exs, r.tr.Step()+4); err != nil {
				b.Fatal(err)
			}
			r.cpu = append(r.cpu, (cpuSeconds()-c0)/4)
			r.wall = append(r.wall, time.Since(t0).Seconds()/4)
		}
	}
	b.StopTimer()
	median := func(x []float64) float64 {
		y := slices.Clone(x)
		slices.Sort(y)
		if len(y)%2 == 1 {
			return y[len(y)/2]
		}
		return (y[len(y)/2-1] + y[len(y)/2]) / 2
	}
	base := median(runs[slices.IndexFunc(runs, func(r *run) bool { return r.label == "dpo" })].cpu)
	fmt.Printf("config: mini, %d pairs × 2 × %d tokens, K=2, ValRefresh 4, %d rounds × 4 steps each (medians over rounds); offline pass over %d pairs\n",
		nPairs, s.t, rounds, len(pairs))
	fmt.Printf("%-30s %12s %8s %12s %14s\n", "method", "CPU s/step", "× dpo", "wall s/step", "offline CPU s")
	for _, r := range runs {
		m := median(r.cpu)
		fmt.Printf("%-30s %12.3f %8.2f %12.3f %14.2f\n", r.label, m, m/base, median(r.wall), r.offlineCPU)
		b.ReportMetric(m/base, strings.ReplaceAll(strings.ReplaceAll(r.label, " (budget-matched)", "-bm"), " ", "")+"/dpo")
	}
}
