package methods

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// Benchmark settings (environment overrides make quicker runs possible):
//
//	ALPHATOKEN_BENCH_PRESET (deep12), ALPHATOKEN_BENCH_BATCH (32 = B_val), ALPHATOKEN_BENCH_T (128),
//	ALPHATOKEN_BENCH_STEPS (4, timed steps per configuration).
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envStr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// benchSetup builds the benchmark model, synthetic SFT data (prompt T/4, response 3T/4) and, for
// the valuation, θ_ref (= the model) and a positive random diagonal Fisher.
type benchSetup struct {
	lm       *model.LM
	examples []data.Example
	fisher   *alphatoken.Fisher
	batch, t int
}

func newBenchSetup(b testing.TB) *benchSetup { return newBenchSetupWith(b, "deep12", 32, 128) }

// newBenchSetupWith is newBenchSetup with other defaults (the environment still overrides them).
func newBenchSetupWith(b testing.TB, defPreset string, defBatch, defT int) *benchSetup {
	preset := envStr("ALPHATOKEN_BENCH_PRESET", defPreset)
	batch, t := envInt("ALPHATOKEN_BENCH_BATCH", defBatch), envInt("ALPHATOKEN_BENCH_T", defT)
	tok := tokenizer.NewByteLevel()
	cfg, err := model.Preset(preset, tok.VocabSize(), tok.BOS(), tok.EOS(), tok.PAD())
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxPositions = max(cfg.MaxPositions, t)
	lm, err := model.New(testBackend(b), cfg, dtypes.Float32, 1)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	exs := make([]data.Example, 4*batch)
	for i := range exs {
		ids := make([]int, t)
		for j := range ids {
			ids[j] = 'a' + rng.IntN(26)
		}
		exs[i] = data.Example{IDs: ids, PromptLen: t / 4}
	}
	f := &alphatoken.Fisher{Kind: alphatoken.FisherDiag, Blocks: 3, Diag: map[string]*tensors.Tensor{}}
	for _, l := range alphatoken.ScoredLayers(cfg, 3) {
		vals := make([]float64, l.Out*l.In)
		for i := range vals {
			vals[i] = rng.Float64()
		}
		f.Diag[l.Name], _ = model.TensorFromFloat64(vals, dtypes.Float32, l.Out, l.In)
	}
	return &benchSetup{lm: lm, examples: exs, fisher: f, batch: batch, t: t}
}

// trainer makes a trainer for a method: "plain" (full fine-tuning), or a registered method with
// the AlphaToken valuation's ValRefresh.
func (s *benchSetup) trainer(b testing.TB, name string, refresh int) (*train.Trainer, train.Method) {
	return s.trainerWith(b, name, s.fisher, func(vc *alphatoken.Config) { vc.ValRefresh = refresh }, nil)
}

// trainerWith is trainer with a Fisher (nil: --fisher none), the valuation config adjusted by set
// (after the defaults, B_val = the batch) and the options by opts.
func (s *benchSetup) trainerWith(b testing.TB, name string, fisher *alphatoken.Fisher, set func(*alphatoken.Config), opts func(*Options)) (*train.Trainer, train.Method) {
	cfg := train.DefaultConfig(1000)
	cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet, cfg.LogEvery = s.batch, s.t, s.t, true, 1000
	if name == "plain" {
		name = "full"
	}
	ref, err := s.lm.Clone()
	if err != nil {
		b.Fatal(err)
	}
	vc := alphatoken.DefaultConfig()
	vc.ValExamples = s.batch
	set(&vc)
	env := &Env{LM: s.lm, Ref: ref, Helper: ref, Fisher: fisher, FisherNone: fisher == nil, Val: s.examples[:s.batch],
		Valuation: vc, Options: DefaultOptions(), Steps: 1000, BatchSize: s.batch, MaxLen: s.t, Log: io.Discard}
	if opts != nil {
		opts(&env.Options)
	}
	m, err := Build(name, env)
	if err != nil {
		b.Fatal(err)
	}
	tr, err := train.New(s.lm, nil, cfg, m)
	if err != nil {
		b.Fatal(err)
	}
	return tr, m
}

// timeSteps runs one warm-up step, then n timed steps (Prepare included: the validation gradient
// is part of the step's cost), and returns seconds per step.
func timeSteps(b testing.TB, tr *train.Trainer, exs []data.Example, n int) float64 {
	if err := tr.RunUntil(exs, tr.Step()+1); err != nil {
		b.Fatal(err)
	}
	return timeRun(b, tr, exs, n)
}

// timeRun times n steps (no warm-up) and returns seconds per step.
func timeRun(b testing.TB, tr *train.Trainer, exs []data.Example, n int) float64 {
	sec, _ := timeRunCPU(b, tr, exs, n)
	return sec
}

// timeRunCPU times n steps (no warm-up) and returns wall-clock and process CPU seconds per step.
func timeRunCPU(b testing.TB, tr *train.Trainer, exs []data.Example, n int) (wall, cpu float64) {
	t0, c0 := time.Now(), cpuSeconds()
	if err := tr.RunUntil(exs, tr.Step()+n); err != nil {
		b.Fatal(err)
	}
	return time.Since(t0).Seconds() / float64(n), (cpuSeconds() - c0) / float64(n)
}

func median(x []float64) float64 {
	y := slices.Clone(x)
	slices.Sort(y)
	if len(y)%2 == 0 {
		return (y[len(y)/2-1] + y[len(y)/2]) / 2
	}
	return y[len(y)/2]
}

// BenchmarkAlphaTokenStep measures, in one run, one AlphaToken SFT step against one plain SFT step
// on a 12-block model (deep12: d 256, 12 blocks) with K = 3, batch = B_val = 32 sequences of 128
// tokens, at ValRefresh 1 and 4; and the parts of the step: the validation gradient (timed on its
// own), the diagonal pass (full − causal-only, less the direct contractions) and the causal path
// (full − direct-only). The variants take turns: each round times one step of each (four for
// ValRefresh 4, one refresh among them) and one validation gradient, so load on a shared machine
// affects all alike; figures are medians over the rounds and ratios are taken within the run. The
// ratios are also given in process CPU time (cpu-ratio-*), which load disturbs much less than wall
// time: the work a step costs, whatever the two cores' parallel efficiency.
//
//	GOEXPERIMENT=simd go test ./methods -run '^$' -bench AlphaTokenStep -benchtime 1x -timeout 60m
func BenchmarkAlphaTokenStep(b *testing.B) {
	s := newBenchSetup(b)
	rounds := envInt("ALPHATOKEN_BENCH_STEPS", 4)
	plain, _ := s.trainer(b, "plain", 1)
	at1, _ := s.trainer(b, "alphatoken", 1)
	at4, m4 := s.trainer(b, "alphatoken", 4)
	v4 := m4.(*selective).valuer
	directOnly, _ := s.trainer(b, "direct-only", 1000)
	causalOnly, _ := s.trainer(b, "causal-only", 1000)
	full0, _ := s.trainer(b, "alphatoken", 1000)
	variants := []struct {
		name  string
		tr    *train.Trainer
		steps int
	}{{"plain", plain, 1}, {"alphatoken1", at1, 1}, {"alphatoken4", at4, 4}, {"full0", full0, 1},
		{"direct", directOnly, 1}, {"causal", causalOnly, 1}}
	for _, v := range variants { // warm-up (and, for alphatoken4, a step count ≡ 1 mod 4)
		if err := v.tr.RunUntil(s.examples, v.tr.Step()+1); err != nil {
			b.Fatal(err)
		}
	}
	times, cpus := map[string][]float64{}, map[string][]float64{}
	b.ResetTimer()
	for range rounds {
		for _, v := range variants {
			wall, cpu := timeRunCPU(b, v.tr, s.examples, v.steps)
			times[v.name], cpus[v.name] = append(times[v.name], wall), append(cpus[v.name], cpu)
		}
		t0, c0 := time.Now(), cpuSeconds()
		if _, err := v4.RefreshValidationGradient(); err != nil {
			b.Fatal(err)
		}
		times["validation"] = append(times["validation"], time.Since(t0).Seconds())
		cpus["validation"] = append(cpus["validation"], cpuSeconds()-c0)
	}
	b.StopTimer()
	m := func(name string) float64 { return median(times[name]) }
	c := func(name string) float64 { return median(cpus[name]) }
	tPlain, t1, t4, tFull0, tDirect, tCausal, tVal := m("plain"), m("alphatoken1"), m("alphatoken4"), m("full0"), m("direct"), m("causal"), m("validation")
	b.ReportMetric(t1/tPlain, "ratio-refresh1")
	b.ReportMetric(t4/tPlain, "ratio-refresh4")
	b.ReportMetric(c("alphatoken1")/c("plain"), "cpu-ratio-refresh1")
	b.ReportMetric(c("alphatoken4")/c("plain"), "cpu-ratio-refresh4")
	b.ReportMetric(tPlain, "plain-s/step")
	b.ReportMetric(t1, "alphatoken1-s/step")
	b.ReportMetric(t4, "alphatoken4-s/step")
	over := t1 - tPlain
	causal := tFull0 - tDirect
	diag := tFull0 - tCausal
	rest := tFull0 - tPlain - causal - diag
	b.Logf("config: %s, K=3, batch %d × %d tokens, %d rounds, simd=%v", envStr("ALPHATOKEN_BENCH_PRESET", "deep12"),
		s.batch, s.t, rounds, model.SIMD())
	b.Logf("plain step %.2fs (rounds: %.2f); AlphaToken step %.2fs at ValRefresh 1 (%.2fx), %.2fs at ValRefresh 4 (%.2fx)",
		tPlain, times["plain"], t1, t1/tPlain, t4, t4/tPlain)
	b.Logf("overhead at ValRefresh 1: %.2fs = validation gradient %.2fs (%.0f%%) + in-step valuation %.2fs", over, tVal, 100*tVal/over, tFull0-tPlain)
	b.Logf("in-step valuation %.2fs: diagonal pass + direct contractions %.2fs, causal path + its contractions %.2fs, shared (taps, masks, combination) %.2fs",
		tFull0-tPlain, diag, causal, rest)
	cPlain := c("plain")
	b.Logf("CPU seconds per step (medians): plain %.2f; AlphaToken %.2f at ValRefresh 1 (%.2fx), %.2f at ValRefresh 4 (%.2fx); validation gradient %.2f (%.2fx plain); "+
		"step graph without refresh %.2f (%.2fx), direct-only %.2f, causal-only %.2f",
		cPlain, c("alphatoken1"), c("alphatoken1")/cPlain, c("alphatoken4"), c("alphatoken4")/cPlain, c("validation"), c("validation")/cPlain,
		c("full0"), c("full0")/cPlain, c("direct"), c("causal"))
}

// TestPeakMemoryProbe runs when ALPHATOKEN_MEMPROBE is "plain" or "alphatoken": two steps of that
// kind, then it prints the process's peak resident memory (VmHWM). BenchmarkPeakMemory runs it in
// fresh processes, so each figure is that step's own high-water mark.
func TestPeakMemoryProbe(t *testing.T) {
	kind := os.Getenv("ALPHATOKEN_MEMPROBE")
	if kind == "" {
		t.Skip("run by BenchmarkPeakMemory")
	}
	s := newBenchSetup(t)
	tr, _ := s.trainer(t, kind, 1)
	if err := tr.RunUntil(s.examples, 2); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("VmHWM_KB=%d\n", vmHWM())
}

func vmHWM() int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "VmHWM:") {
			n, _ := strconv.Atoi(strings.Fields(sc.Text())[1])
			return n
		}
	}
	return -1
}

// BenchmarkPeakMemory reports the peak resident memory of a plain and of an AlphaToken SFT step
// (same model and batch as BenchmarkAlphaTokenStep), each measured in a fresh process.
//
//	GOEXPERIMENT=simd go test ./methods -run '^$' -bench PeakMemory -benchtime 1x -timeout 30m
func BenchmarkPeakMemory(b *testing.B) {
	res := map[string]float64{}
	for _, kind := range []string{"plain", "alphatoken"} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestPeakMemoryProbe$", "-test.count", "1")
		cmd.Env = append(os.Environ(), "ALPHATOKEN_MEMPROBE="+kind)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("%s probe: %v\n%s", kind, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM_KB="); ok {
				kb, _ := strconv.Atoi(v)
				res[kind] = float64(kb) / 1024
			}
		}
	}
	b.ReportMetric(res["plain"], "plain-MiB")
	b.ReportMetric(res["alphatoken"], "alphatoken-MiB")
	b.ReportMetric(res["alphatoken"]/res["plain"], "ratio")
}

// BenchmarkFisherKinds times, in one run, an AlphaToken SFT step with no Fisher proxy, the
// diagonal Fisher and the Kronecker (K-FAC) Fisher, interleaved (none, diag, kfac, then again) so
// that machine load affects all three alike, and the estimation of each Fisher from the batch's
// sequences. The Fisher suite's s/step column comes from separate runs and is only as steady as
// the machine was; this is the ratio to quote. Defaults: the MiniBench mini model and SFT batch.
//
//	ALPHATOKEN_BENCH_PRESET=mini ALPHATOKEN_BENCH_BATCH=8 ALPHATOKEN_BENCH_T=128 ALPHATOKEN_BENCH_STEPS=8 \
//	GOEXPERIMENT=simd go test ./methods -run '^$' -bench FisherKinds -benchtime 1x
func BenchmarkFisherKinds(b *testing.B) {
	s := newBenchSetup(b)
	n := envInt("ALPHATOKEN_BENCH_STEPS", 4)
	k := 3
	if cfg := s.lm.Config; cfg.Layers < 2*k {
		k = max(1, cfg.Layers/2)
	}
	kinds := []alphatoken.FisherKind{alphatoken.FisherNone, alphatoken.FisherDiag, alphatoken.FisherKFAC}
	fishers := map[alphatoken.FisherKind]*alphatoken.Fisher{}
	estimate := map[alphatoken.FisherKind]float64{}
	for _, kind := range kinds[1:] {
		t0 := time.Now()
		f, err := alphatoken.FisherFromSequences(s.lm, s.examples[:s.batch], alphatoken.FisherOptions{Kind: kind, Blocks: k})
		if err != nil {
			b.Fatal(err)
		}
		estimate[kind] = time.Since(t0).Seconds()
		fishers[kind] = f
	}
	trainers := map[alphatoken.FisherKind]*train.Trainer{}
	for _, kind := range kinds {
		trainers[kind], _ = s.trainerWith(b, "alphatoken", fishers[kind], func(vc *alphatoken.Config) {
			vc.Blocks, vc.Fisher, vc.ValRefresh = k, kind, 4
		}, nil)
	}
	b.ResetTimer()
	secs := map[alphatoken.FisherKind]float64{}
	for range 2 {
		for _, kind := range kinds {
			secs[kind] += timeSteps(b, trainers[kind], s.examples, n) / 2
		}
	}
	b.StopTimer()
	b.ReportMetric(secs[alphatoken.FisherNone]/secs[alphatoken.FisherDiag], "none/diag")
	b.ReportMetric(secs[alphatoken.FisherKFAC]/secs[alphatoken.FisherDiag], "kfac/diag")
	b.Logf("config: %s, K=%d, batch %d × %d tokens, ValRefresh 4, %d timed steps × 2 rounds each, simd=%v",
		envStr("ALPHATOKEN_BENCH_PRESET", "deep12"), k, s.batch, s.t, n, model.SIMD())
	for _, kind := range kinds {
		b.Logf("%-4s: %.3f s/step (%.2fx diag); Fisher from %d sequences in %.2fs", kind, secs[kind],
			secs[kind]/secs[alphatoken.FisherDiag], s.batch, estimate[kind])
	}
}

// BenchmarkMethods measures one SFT step of every registered method (and the baselines
// budget-matched) against full fine-tuning, in one run: R rounds (default 4) over the methods, each
// round 4 steps per method (one validation-gradient refresh). The cost is the process's CPU time
// (user + system, getrusage) per step — the work the step does, which other jobs on a shared
// machine do not inflate as they do wall time — as the median over rounds; wall time is shown
// too. The MiniBench mini model with its SFT batch (8 × 128 tokens) and valuation settings (K = 2,
// ValRefresh 4); the helper model is a copy of the model (cost does not depend on its weights). It
// also times each method's offline pass (Plan: the per-token scores of the training examples,
// before step 0; CPU time) over the setup's examples. The table goes to stdout.
//
//	ALPHATOKEN_BENCH_ROUNDS=12 GOEXPERIMENT=simd go test ./methods -run '^$' -bench 'Methods$' -benchtime 1x -timeout 60m
func BenchmarkMethods(b *testing.B) {
	s := newBenchSetupWith(b, "mini", 8, 128)
	rounds := envInt("ALPHATOKEN_BENCH_ROUNDS", 4)
	type run struct {
		label      string
		tr         *train.Trainer
		cpu, wall  []float64
		offlineCPU float64
	}
	var runs []*run
	for _, name := range Names() {
		in, _ := Lookup(name)
		variants := []bool{false}
		if in.Native > 0 || in.Threshold {
			variants = append(variants, true)
		}
		for _, budget := range variants {
			label := name
			if budget {
				label += " (budget-matched)"
			}
			tr, m := s.trainerWith(b, name, s.fisher, func(vc *alphatoken.Config) { vc.Blocks, vc.ValRefresh = 2, 4 },
				func(o *Options) { o.BudgetMatched = budget })
			r := &run{label: label, tr: tr}
			if p, ok := m.(train.Planner); ok {
				sampler := data.Sampler{Lengths: make([]int, len(s.examples)), BatchSize: s.batch, Seed: 1}
				c0 := cpuSeconds()
				if err := p.Plan(s.examples, func(step int) []int { return sampler.Epoch(0)[step%sampler.BatchesPerEpoch()] }, 1000); err != nil {
					b.Fatal(err)
				}
				r.offlineCPU = cpuSeconds() - c0
			}
			if err := tr.RunUntil(s.examples, 1); err != nil { // warm-up (graph compilation, buffers)
				b.Fatal(err)
			}
			runs = append(runs, r)
		}
	}
	b.ResetTimer()
	for range rounds {
		for _, r := range runs {
			c0, t0 := cpuSeconds(), time.Now()
			if err := r.tr.RunUntil(s.examples, r.tr.Step()+4); err != nil {
				b.Fatal(err)
			}
			r.cpu = append(r.cpu, (cpuSeconds()-c0)/4)
			r.wall = append(r.wall, time.Since(t0).Seconds()/4)
		}
	}
	b.StopTimer()
	full := median(runs[slices.IndexFunc(runs, func(r *run) bool { return r.label == "full" })].cpu)
	fmt.Printf("config: %s, batch %d × %d tokens, K=2, ValRefresh 4, %d rounds × 4 steps each (medians over rounds), simd=%v; offline pass over %d examples\n",
		envStr("ALPHATOKEN_BENCH_PRESET", "mini"), s.batch, s.t, rounds, model.SIMD(), len(s.examples))
	fmt.Printf("%-36s %12s %8s %12s %14s   %s\n", "method", "CPU s/step", "× full", "wall s/step", "offline CPU s", "round CPU means (s/step)")
	for _, r := range runs {
		m := median(r.cpu)
		fmt.Printf("%-36s %12.3f %8.2f %12.3f %14.2f   %.3f\n", r.label, m, m/full, median(r.wall), r.offlineCPU, r.cpu)
		b.ReportMetric(m/full, strings.ReplaceAll(strings.ReplaceAll(r.label, " (budget-matched)", "-bm"), " ", "")+"/full")
	}
}

// cpuSeconds is the process's user + system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}
