package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gomlx/compute/dtypes"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/internal/atomicfile"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// bench-gpu: one command that measures, on one model and in one run, what matters for using
// AlphaToken on a GPU. The parent process writes a random-init checkpoint (the project's own model
// code) and synthetic pre-tokenized data, then runs each part in a child process of its own (this
// binary, `bench-gpu --part …`) under a time limit, so a part that fails, runs out of memory or
// hangs costs only its own line, its GPU memory can be measured apart, and the run goes on:
//
//	fisher     EstimateFisher (diag, K) on N prompts × M sampled tokens, as `alphatoken fisher` does
//	train      the train-sft trainer (train.New with the CLI's method factory) for full and
//	           alphatoken, in each dtype: tokens/s over the timed steps, after warm-up
//	torch      the same model's step in PyTorch (torch_step.py, embedded), where python3 has torch,
//	           transformers and CUDA
//
// Peak GPU memory per part is polled from nvidia-smi (GoMLX's PJRT binding does not expose the
// device allocator's statistics); without nvidia-smi it is "n/a". Results go to stdout, progress to
// stderr.

//go:embed torch_step.py
var torchStepPy []byte

// childEnv marks a child process that must run as the CLI (the tests' binary reads it in TestMain).
const childEnv = "ALPHATOKEN_AS_CLI"

func init() {
	register("bench-gpu", "the GPU check: full and AlphaToken SFT steps (bf16, f32), Fisher sampling, peak memory, PyTorch, on one model", runBenchGPU)
}

// benchPreset is the model and workload of a bench-gpu run.
type benchPreset struct {
	cfg                                           model.Config
	batch, seq, prompt, warmup, steps, valN       int
	fisherPrompts, fisherPromptLen, fisherNew, sb int
}

var benchPresets = map[string]benchPreset{
	// The 344M Qwen3-style model of issue 9 (Qwen3-0.6B's vocabulary and head layout, 12 blocks).
	"qwen3-344m": {cfg: model.Config{Arch: model.Qwen3, VocabSize: 151936, Hidden: 1024, Layers: 12, Heads: 16, KVHeads: 8,
		HeadDim: 128, Intermediate: 3072, RMSNormEps: 1e-6, RoPETheta: 1e6, TieEmbeddings: true, MaxPositions: 4096,
		BOSTokenID: -1, PadTokenID: -1, DType: "float32"},
		batch: 8, seq: 512, prompt: 64, warmup: 3, steps: 10, valN: 32,
		fisherPrompts: 1000, fisherPromptLen: 64, fisherNew: 64, sb: 250},
	// A tiny Qwen3-style model for the CPU test of the command.
	"tiny": {cfg: model.Config{Arch: model.Qwen3, VocabSize: 512, Hidden: 32, Layers: 3, Heads: 4, KVHeads: 2,
		HeadDim: 8, Intermediate: 64, RMSNormEps: 1e-6, RoPETheta: 1e6, TieEmbeddings: true, MaxPositions: 256,
		BOSTokenID: -1, PadTokenID: -1, DType: "float32"},
		batch: 2, seq: 32, prompt: 8, warmup: 1, steps: 2, valN: 2,
		fisherPrompts: 6, fisherPromptLen: 5, fisherNew: 4, sb: 4},
}

// partResult is what a part reports (a child prints it as one JSON line on stdout).
type partResult struct {
	Part    string  `json:"part"`
	Skipped string  `json:"skipped,omitempty"`
	Error   string  `json:"error,omitempty"`
	Seconds float64 `json:"seconds"` // wall time of the part (start-up and compilation included)
	// train
	StepSeconds  float64 `json:"step_seconds,omitempty"` // median over the timed steps
	TokensPerSec float64 `json:"tokens_per_sec,omitempty"`
	WarmSeconds  float64 `json:"warm_seconds,omitempty"` // loading, compilation and warm-up steps
	Note         string  `json:"note,omitempty"`
	// fisher
	Prompts       int     `json:"prompts,omitempty"`
	NewTokens     int     `json:"new_tokens,omitempty"`
	SampleSeconds float64 `json:"sample_seconds,omitempty"` // all sampling, the first batch's compilation included
	FirstBatch    float64 `json:"first_batch_seconds,omitempty"`
	SteadyRate    float64 `json:"steady_new_tokens_per_sec,omitempty"` // batches after the first
	FisherSeconds float64 `json:"fisher_seconds,omitempty"`            // sampling + per-sequence gradients
	// torch
	Torch []torchRun `json:"torch,omitempty"`
	// filled by the parent
	PeakGPUMiB  float64 `json:"-"` // < 0: not measurable
	PeakHostMiB float64 `json:"-"`
}

type torchRun struct {
	Run          string  `json:"run"`
	StepSeconds  float64 `json:"step_s"`
	TokensPerSec float64 `json:"tokens_per_s"`
	PeakMiB      float64 `json:"peak_mib"`
	Error        string  `json:"error"`
	Skipped      string  `json:"skipped"`
}

// benchFlags are the settings shared by the parent and its children.
type benchFlags struct {
	preset, configPath                       *string
	batch, seq, prompt, warmup, steps, valN  *int
	fisherPrompts, fisherPromptLen, fishNew  *int
	sampleBatch, k, refresh                  *int
	dtypes, parts, python, dir, torchRuns    *string
	budget                                   *time.Duration
	keep                                     *bool
	part, method, dtype                      *string
	p                                        benchPreset
	backend                                  string
	partTimeout                              map[string]float64
	fisherPath, trainPath, valPath, promptsF string
}

func runBenchGPU(args []string) error {
	fs, backendSpec := newFlags("bench-gpu", "[--backend xla:cuda] [--preset qwen3-344m | --config config.json] [flags]")
	f := &benchFlags{
		preset:          fs.String("preset", "qwen3-344m", "model and workload: qwen3-344m (the GPU check) or tiny (a CPU test)"),
		configPath:      fs.String("config", "", "an HF config.json (llama, qwen2, qwen3, gemma3_text) to use instead of the preset's model"),
		batch:           fs.Int("batch", 0, "sequences per training step (0: the preset's, 8)"),
		seq:             fs.Int("seq", 0, "tokens per sequence (0: the preset's, 512)"),
		prompt:          fs.Int("prompt", 0, "prompt tokens per sequence, not trained on (0: the preset's, 64)"),
		warmup:          fs.Int("warmup", 0, "untimed steps first, compilation included (0: the preset's, 3)"),
		steps:           fs.Int("steps", 0, "timed training steps (0: the preset's, 10)"),
		valN:            fs.Int("val-examples", 0, "B_val for AlphaToken (0: the preset's, 32)"),
		fisherPrompts:   fs.Int("fisher-prompts", 0, "Fisher prompts (0: the preset's, 1000)"),
		fisherPromptLen: fs.Int("fisher-prompt-len", 0, "tokens per Fisher prompt (0: the preset's, 64)"),
		fishNew:         fs.Int("fisher-new-tokens", 0, "tokens sampled per Fisher prompt (0: the preset's, 64)"),
		sampleBatch:     fs.Int("sample-batch", 0, "Fisher prompts sampled together (0: the preset's, 250)"),
		k:               fs.Int("k", 3, "AlphaToken K: the last K blocks are scored (and covered by the Fisher)"),
		refresh:         fs.Int("val-refresh", 1, "AlphaToken: recompute the validation gradient every N steps"),
		dtypes:          fs.String("dtypes", "bfloat16,float32", "training dtypes to time"),
		parts:           fs.String("parts", "fisher,train,torch", "parts to run"),
		torchRuns:       fs.String("torch-runs", "bf16-eager,bf16-compile", "PyTorch variants (f32, tf32, bf16-eager, bf16-compile)"),
		python:          fs.String("python", "python3", "Python with torch and transformers for the PyTorch part"),
		budget:          fs.Duration("budget", 8*time.Minute, "time for the whole run; each part gets a share and is stopped at its limit"),
		dir:             fs.String("dir", "", "work directory for the checkpoint and data (default: a temporary one, in /dev/shm if present)"),
		keep:            fs.Bool("keep", false, "keep the work directory"),
		part:            fs.String("part", "", "internal: run one part (fisher or train) in this process and print its result as JSON"),
		method:          fs.String("method", "", "internal: the training method of a train part"),
		dtype:           fs.String("dtype", "", "internal: the dtype of a train part"),
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see -h)", fs.Arg(0))
	}
	f.backend = *backendSpec
	if err := f.resolve(); err != nil {
		return err
	}
	if *f.part != "" {
		res := f.runPart()
		line, _ := json.Marshal(res)
		fmt.Fprintln(os.Stdout, string(line))
		return nil
	}
	return f.runAll()
}

// resolve fills the preset's values for the flags left at 0 and checks them.
func (f *benchFlags) resolve() error {
	p, ok := benchPresets[*f.preset]
	if !ok {
		return fmt.Errorf("unknown --preset %q (qwen3-344m, tiny)", *f.preset)
	}
	if *f.configPath != "" {
		raw, err := os.ReadFile(*f.configPath)
		if err != nil {
			return fmt.Errorf("--config: %v", err)
		}
		cfg, err := model.ParseConfig(raw)
		if err != nil {
			return fmt.Errorf("--config %s: %v", *f.configPath, err)
		}
		p.cfg = *cfg
	}
	for _, o := range []struct {
		name string
		flag *int
		into *int
	}{{"batch", f.batch, &p.batch}, {"seq", f.seq, &p.seq}, {"prompt", f.prompt, &p.prompt}, {"warmup", f.warmup, &p.warmup},
		{"steps", f.steps, &p.steps}, {"val-examples", f.valN, &p.valN}, {"fisher-prompts", f.fisherPrompts, &p.fisherPrompts},
		{"fisher-prompt-len", f.fisherPromptLen, &p.fisherPromptLen}, {"fisher-new-tokens", f.fishNew, &p.fisherNew},
		{"sample-batch", f.sampleBatch, &p.sb}} {
		if err := zeroOrAtLeast(o.name, *o.flag, 1, "the preset's"); err != nil {
			return err
		}
		if *o.flag > 0 {
			*o.into = *o.flag
		}
	}
	switch {
	case p.prompt >= p.seq:
		return fmt.Errorf("--prompt %d must be shorter than --seq %d", p.prompt, p.seq)
	case p.seq > p.cfg.MaxPositions:
		return fmt.Errorf("--seq %d exceeds the model's max_position_embeddings %d", p.seq, p.cfg.MaxPositions)
	case p.fisherPromptLen+p.fisherNew > p.cfg.MaxPositions:
		return fmt.Errorf("--fisher-prompt-len + --fisher-new-tokens exceed max_position_embeddings %d", p.cfg.MaxPositions)
	case *f.k < 1 || *f.k > p.cfg.Layers:
		return blocksFlag(*f.k, p.cfg.Layers)
	case *f.refresh < 1:
		return atLeast("val-refresh", *f.refresh, 1)
	case *f.budget <= 0:
		return fmt.Errorf("--budget must be positive")
	case p.warmup < 1 || p.steps < 1:
		return fmt.Errorf("--warmup and --steps must be ≥ 1 (the first step compiles)")
	}
	if err := p.cfg.Validate(); err != nil {
		return err
	}
	f.p = p
	return nil
}

// --- the parent -----------------------------------------------------------------------------------

// plannedPart is one child run: its name, display label, share of the budget and arguments.
type plannedPart struct {
	name, label string
	share       float64
	args        []string
}

func (f *benchFlags) runAll() error {
	start := time.Now()
	deadline := start.Add(*f.budget)
	out := os.Stdout
	dir := *f.dir
	if dir == "" {
		base := ""
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			base = "/dev/shm"
		}
		var err error
		if dir, err = os.MkdirTemp(base, "alphatoken-bench-gpu-"); err != nil {
			return err
		}
	}
	if !*f.keep {
		defer os.RemoveAll(dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	*f.dir = dir
	f.paths()

	p := f.p
	c := p.cfg
	fmt.Fprintf(out, "bench-gpu  %s  %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), buildLine())
	fmt.Fprintf(out, "device     %s | backend %s\n", deviceLine(), orDefault(f.backend, "go (default)"))
	fmt.Fprintf(out, "model      %s: %s, vocab %d, hidden %d, %d blocks, %d heads (%d KV, head_dim %d), intermediate %d, tied %v; %s parameters\n",
		orDefault(*f.configPath, *f.preset), c.Arch, c.VocabSize, c.Hidden, c.Layers, c.Heads, c.KVHeads, c.HeadDim,
		c.Intermediate, c.TieEmbeddings, thousands(float64(c.NumParams())))
	fmt.Fprintf(out, "workload   batch %d × %d tokens (prompt %d), %d warm-up + %d timed steps, lr 1e-5; AlphaToken K=%d, ValRefresh %d, B_val %d, diag Fisher\n",
		p.batch, p.seq, p.prompt, p.warmup, p.steps, *f.k, *f.refresh, p.valN)
	fmt.Fprintf(out, "           Fisher: %d prompts × %d tokens, %d new tokens each, temperature 1, %d prompts per batch; budget %s\n\n",
		p.fisherPrompts, p.fisherPromptLen, p.fisherNew, p.sb, *f.budget)

	t0 := time.Now()
	if err := f.writeInputs(); err != nil {
		fmt.Fprintf(out, "%-22s error: %v\n", "checkpoint", err)
		return err
	}
	fmt.Fprintf(out, "%-22s random init (seed 1, float32) and data written in %.1f s\n", "checkpoint", time.Since(t0).Seconds())

	parts := f.plan()
	results := map[string]*partResult{}
	for _, pp := range parts {
		left := time.Until(deadline) - 5*time.Second
		limit := min(time.Duration(pp.share*float64(*f.budget)), left)
		var res *partResult
		if limit < 10*time.Second {
			res = &partResult{Part: pp.name, Skipped: fmt.Sprintf("the %s budget is spent", *f.budget)}
		} else if pp.name == "torch" {
			res = f.runTorch(limit)
		} else {
			res = runChild(pp.args, limit)
		}
		results[pp.label] = res
		if pp.name == "fisher" && res.Error == "" && res.Skipped == "" {
			if _, err := os.Stat(f.fisherPath); err != nil {
				res.Error = "no Fisher file written"
			}
		}
		fmt.Fprintf(out, "%-22s %s\n", pp.label, res.describe())
	}
	f.summary(out, results)
	fmt.Fprintf(out, "total                  %s\n", time.Since(start).Round(time.Second))
	return nil
}

// paths sets the work files.
func (f *benchFlags) paths() {
	f.fisherPath = filepath.Join(*f.dir, "fisher.safetensors")
	f.trainPath = filepath.Join(*f.dir, "train.jsonl")
	f.valPath = filepath.Join(*f.dir, "val.jsonl")
	f.promptsF = filepath.Join(*f.dir, "prompts.jsonl")
}

// plan lists the child runs, with their shares of the budget.
func (f *benchFlags) plan() []plannedPart {
	want := map[string]bool{}
	for _, s := range strings.Split(*f.parts, ",") {
		want[strings.TrimSpace(s)] = true
	}
	common := []string{"--backend", f.backend, "--preset", *f.preset, "--config", *f.configPath, "--dir", *f.dir,
		"--batch", strconv.Itoa(f.p.batch), "--seq", strconv.Itoa(f.p.seq), "--prompt", strconv.Itoa(f.p.prompt),
		"--warmup", strconv.Itoa(f.p.warmup), "--steps", strconv.Itoa(f.p.steps), "--val-examples", strconv.Itoa(f.p.valN),
		"--fisher-prompts", strconv.Itoa(f.p.fisherPrompts), "--fisher-prompt-len", strconv.Itoa(f.p.fisherPromptLen),
		"--fisher-new-tokens", strconv.Itoa(f.p.fisherNew), "--sample-batch", strconv.Itoa(f.p.sb),
		"--k", strconv.Itoa(*f.k), "--val-refresh", strconv.Itoa(*f.refresh)}
	var parts []plannedPart
	if want["fisher"] {
		parts = append(parts, plannedPart{"fisher", "fisher", 0.21, append([]string{"--part", "fisher"}, common...)})
	}
	if want["train"] {
		for _, dt := range strings.Split(*f.dtypes, ",") {
			dt = strings.TrimSpace(dt)
			for _, m := range []string{"full", "alphatoken"} {
				parts = append(parts, plannedPart{"train", m + " " + dt, 0.115,
					append([]string{"--part", "train", "--method", m, "--dtype", dt}, common...)})
			}
		}
	}
	if want["torch"] {
		parts = append(parts, plannedPart{"torch", "torch", 0.23, nil})
	}
	return parts
}

// writeInputs writes the random-init checkpoint (with the byte-level tokenizer), the synthetic
// training, validation and prompt files.
func (f *benchFlags) writeInputs() error {
	p := f.p
	// No backend: the weights are drawn and written on the host (the parent never touches the GPU).
	lm, err := model.New(nil, &p.cfg, dtypes.Float32, 1)
	if err != nil {
		return err
	}
	ckpt := filepath.Join(*f.dir, "model")
	if err := lm.Save(ckpt, model.SaveOptions{}); err != nil {
		return err
	}
	if err := tokenizer.NewByteLevel().Save(ckpt); err != nil {
		return err
	}
	// Token ids are bytes (the byte-level tokenizer): the step's cost does not depend on them.
	rng := rand.New(rand.NewPCG(1, 2))
	ids := func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = rng.IntN(256)
		}
		return out
	}
	write := func(path string, n int, line func() any) error {
		var buf bytes.Buffer
		for range n {
			b, _ := json.Marshal(line())
			buf.Write(append(b, '\n'))
		}
		return atomicfile.WriteBytes(path, buf.Bytes())
	}
	pair := func() any {
		return map[string][]int{"prompt_ids": ids(p.prompt), "response_ids": ids(p.seq - p.prompt)}
	}
	if err := write(f.trainPath, 8*p.batch, pair); err != nil {
		return err
	}
	if err := write(f.valPath, p.valN, pair); err != nil {
		return err
	}
	return write(f.promptsF, p.fisherPrompts, func() any { return map[string][]int{"prompt_ids": ids(p.fisherPromptLen)} })
}

// runChild runs `<this binary> bench-gpu <args>` with a time limit and reads its JSON result.
func runChild(args []string, limit time.Duration) *partResult {
	exe, err := os.Executable()
	if err != nil {
		return &partResult{Error: err.Error()}
	}
	name := "?"
	if i := slices.Index(args, "--part"); i >= 0 && i+1 < len(args) {
		name = args[i+1]
	}
	cmd := exec.Command(exe, append([]string{"bench-gpu"}, args...)...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	return runLimited(cmd, name, limit, func(stdout []byte) *partResult {
		var res *partResult
		for _, line := range bytes.Split(stdout, []byte("\n")) {
			var r partResult
			if json.Unmarshal(line, &r) == nil && r.Part != "" {
				res = &r
			}
		}
		return res
	})
}

// runLimited runs cmd in its own process group, stopping it (and its children) at the limit,
// watches its GPU memory, and turns its stdout into a result (parse returns nil if there is none).
func runLimited(cmd *exec.Cmd, name string, limit time.Duration, parse func(stdout []byte) *partResult) *partResult {
	var stdout bytes.Buffer
	tail := &tailBuffer{max: 2000}
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(os.Stderr, tail)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return &partResult{Part: name, Error: err.Error()}
	}
	ctx, cancel := context.WithCancel(context.Background())
	peak := make(chan float64, 1)
	go func() { peak <- watchGPUMemory(ctx, cmd.Process.Pid) }()
	var timedOut atomic.Bool
	timer := time.AfterFunc(limit, func() {
		timedOut.Store(true)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	})
	waitErr := cmd.Wait()
	timer.Stop()
	cancel()
	res := parse(stdout.Bytes())
	last := lastLine(tail.String())
	switch {
	case timedOut.Load() && res != nil: // a part that reports as it goes (fisher: its sampling)
		res.Note = fmt.Sprintf("stopped at its time limit of %s before the end (last output: %s)", limit.Round(time.Second), last)
	case timedOut.Load():
		res = &partResult{Part: name, Error: fmt.Sprintf("stopped at its time limit of %s (last output: %s)", limit.Round(time.Second), last)}
	case res == nil && waitErr != nil:
		res = &partResult{Part: name, Error: fmt.Sprintf("%v: %s", waitErr, last)}
	case res == nil:
		res = &partResult{Part: name, Error: "no result printed: " + last}
	}
	res.Seconds = time.Since(start).Seconds()
	res.PeakGPUMiB = <-peak
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.PeakHostMiB = float64(ru.Maxrss) / 1024 // KiB on Linux
		}
	}
	return res
}

// runTorch runs the embedded torch_step.py with the model's shape.
func (f *benchFlags) runTorch(limit time.Duration) *partResult {
	c := f.p.cfg
	if c.Arch != model.Qwen3 {
		return &partResult{Part: "torch", Skipped: fmt.Sprintf("torch_step.py builds Qwen3 models; this one is %s", c.Arch)}
	}
	if _, err := exec.LookPath(*f.python); err != nil {
		return &partResult{Part: "torch", Skipped: fmt.Sprintf("no %s on PATH (--python)", *f.python)}
	}
	script := filepath.Join(*f.dir, "torch_step.py")
	if err := os.WriteFile(script, torchStepPy, 0o644); err != nil {
		return &partResult{Part: "torch", Error: err.Error()}
	}
	args := []string{script, "--json", "--runs", *f.torchRuns, "--vocab", strconv.Itoa(c.VocabSize),
		"--hidden", strconv.Itoa(c.Hidden), "--intermediate", strconv.Itoa(c.Intermediate), "--layers", strconv.Itoa(c.Layers),
		"--heads", strconv.Itoa(c.Heads), "--kv-heads", strconv.Itoa(c.KVHeads), "--head-dim", strconv.Itoa(c.HeadDim),
		"--theta", strconv.FormatFloat(c.RoPETheta, 'g', -1, 64), "--max-positions", strconv.Itoa(c.MaxPositions),
		"--batch", strconv.Itoa(f.p.batch), "--seq", strconv.Itoa(f.p.seq), "--prompt", strconv.Itoa(f.p.prompt),
		"--steps", strconv.Itoa(f.p.steps)}
	if !c.TieEmbeddings {
		args = append(args, "--untied")
	}
	return runLimited(exec.Command(*f.python, args...), "torch", limit, func(stdout []byte) *partResult {
		res := &partResult{Part: "torch"}
		for _, line := range bytes.Split(stdout, []byte("\n")) {
			var r torchRun
			if json.Unmarshal(line, &r) != nil {
				continue
			}
			if r.Skipped != "" {
				res.Skipped = r.Skipped
			} else if r.Run != "" {
				res.Torch = append(res.Torch, r)
			}
		}
		if res.Skipped == "" && len(res.Torch) == 0 {
			return nil
		}
		return res
	})
}

// describe renders a result as one line.
func (r *partResult) describe() string {
	mem := ""
	switch {
	case r.PeakGPUMiB > 0:
		mem = " | peak GPU memory " + mib(r.PeakGPUMiB)
	case r.PeakGPUMiB == 0:
		mem = " | peak GPU memory n/a (not seen by nvidia-smi)"
	default:
		mem = " | peak GPU memory n/a (no nvidia-smi)"
	}
	if r.PeakHostMiB > 0 {
		mem += ", host " + mib(r.PeakHostMiB)
	}
	switch {
	case r.Skipped != "":
		return "skipped: " + r.Skipped
	case r.Error != "":
		return "error: " + r.Error + mem
	}
	switch r.Part {
	case "train":
		return fmt.Sprintf("%s tokens/s (%.4f s/step, median of the timed steps; %.1f s to load, compile and warm up)%s%s",
			thousands(r.TokensPerSec), r.StepSeconds, r.WarmSeconds, noteOf(r.Note), mem)
	case "fisher":
		steady := ""
		if r.SteadyRate > 0 {
			steady = fmt.Sprintf("; then %s new tokens/s", thousands(r.SteadyRate))
		}
		total := fmt.Sprintf("diag Fisher (sampling + per-sequence gradients) in %.1f s", r.FisherSeconds)
		if r.FisherSeconds == 0 {
			total = "diag Fisher not finished"
		}
		return fmt.Sprintf("sampled %d prompts × %d new tokens in %.1f s (first batch, compilation included, %.1f s%s); %s%s%s",
			r.Prompts, r.NewTokens/max(r.Prompts, 1), r.SampleSeconds, r.FirstBatch, steady, total, noteOf(r.Note), mem)
	case "torch":
		var s []string
		for _, t := range r.Torch {
			if t.Error != "" {
				s = append(s, fmt.Sprintf("%s error: %s", t.Run, t.Error))
			} else {
				s = append(s, fmt.Sprintf("%s %s tokens/s (%.4f s/step, peak allocated %s)", t.Run, thousands(t.TokensPerSec), t.StepSeconds, mib(t.PeakMiB)))
			}
		}
		return strings.Join(s, "; ")
	}
	return "?"
}

// summary prints the ratios the check is for.
func (f *benchFlags) summary(out io.Writer, results map[string]*partResult) {
	ok := func(r *partResult) bool { return r != nil && r.Error == "" && r.Skipped == "" && r.StepSeconds > 0 }
	fmt.Fprintln(out)
	for _, dt := range strings.Split(*f.dtypes, ",") {
		dt = strings.TrimSpace(dt)
		full, at := results["full "+dt], results["alphatoken "+dt]
		if ok(full) && ok(at) {
			fmt.Fprintf(out, "ratio                  alphatoken / full step time, %s: %.2fx\n", dt, at.StepSeconds/full.StepSeconds)
		} else if full != nil || at != nil {
			fmt.Fprintf(out, "ratio                  alphatoken / full step time, %s: n/a (a part did not finish)\n", dt)
		}
	}
	bf, f32 := results["full bfloat16"], results["full float32"]
	if ok(bf) && ok(f32) {
		fmt.Fprintf(out, "ratio                  full step tokens/s, bfloat16 / float32: %.2fx\n", bf.TokensPerSec/f32.TokensPerSec)
	}
	if t := results["torch"]; t != nil && ok(bf) {
		for _, r := range t.Torch {
			if r.Error == "" && r.TokensPerSec > 0 && strings.HasPrefix(r.Run, "bf16") {
				fmt.Fprintf(out, "ratio                  full bfloat16 tokens/s / PyTorch %s: %.2fx\n", r.Run, bf.TokensPerSec/r.TokensPerSec)
			}
		}
	}
}

// --- the children ---------------------------------------------------------------------------------

// runPart runs one part in this process.
func (f *benchFlags) runPart() *partResult {
	f.paths()
	start := time.Now()
	var res *partResult
	var err error
	switch *f.part {
	case "fisher":
		res, err = f.fisherPart()
	case "train":
		res, err = f.trainPart()
	default:
		err = fmt.Errorf("unknown --part %q (fisher, train)", *f.part)
	}
	if res == nil {
		res = &partResult{}
	}
	res.Part = *f.part
	if err != nil {
		res.Error = firstLine(err.Error())
	}
	res.Seconds = time.Since(start).Seconds()
	return res
}

// fisherPart estimates the diag Fisher as `alphatoken fisher` does (float32 reference, temperature-1
// samples), timing the sampling half.
func (f *benchFlags) fisherPart() (*partResult, error) {
	ref, tok, err := openModel(f.backend, filepath.Join(*f.dir, "model"), "float32")
	if err != nil {
		return nil, err
	}
	prompts, err := data.ReadPrompts(f.promptsF, tok, data.Options{MaxLen: ref.Config.MaxPositions - f.p.fisherNew})
	if err != nil {
		return nil, err
	}
	res := &partResult{Prompts: len(prompts), NewTokens: len(prompts) * f.p.fisherNew}
	start := time.Now()
	var firstAt, sampledAt time.Time
	var firstDone int
	fisher, err := alphatoken.EstimateFisher(ref, prompts, alphatoken.FisherOptions{Kind: alphatoken.FisherDiag, Blocks: *f.k,
		MaxNewTokens: f.p.fisherNew, Seed: 1, BatchSize: 16, SampleBatch: f.p.sb,
		Progress: func(done, total int) {
			half := total / 2
			if done <= half && firstAt.IsZero() {
				firstAt, firstDone = time.Now(), done
			}
			if done >= half && sampledAt.IsZero() {
				// Sampling is done: report it now, in case the gradients do not finish in time.
				sampledAt = time.Now()
				res.SampleSeconds = sampledAt.Sub(start).Seconds()
				res.FirstBatch = firstAt.Sub(start).Seconds()
				if rest := sampledAt.Sub(firstAt).Seconds(); rest > 0 && len(prompts) > firstDone {
					res.SteadyRate = float64((len(prompts)-firstDone)*f.p.fisherNew) / rest
				}
				res.Part = "fisher"
				line, _ := json.Marshal(res)
				fmt.Fprintln(os.Stdout, string(line))
			}
			logf("bench-gpu fisher: %d/%d (%s)", done, total, time.Since(start).Round(time.Second))
		}})
	if err != nil {
		return res, err
	}
	res.FisherSeconds = time.Since(start).Seconds()
	return res, fisher.Save(f.fisherPath)
}

// trainPart times the train-sft trainer (train.New with the CLI's method factory and valuation
// flags) for one method and dtype.
func (f *benchFlags) trainPart() (*partResult, error) {
	p := f.p
	loadStart := time.Now()
	lm, tok, err := openModel(f.backend, filepath.Join(*f.dir, "model"), *f.dtype)
	if err != nil {
		return nil, err
	}
	opts := data.Options{MaxLen: p.seq, Template: data.PlainTemplate{}}
	examples, _, err := data.ReadExamples(f.trainPath, tok, opts)
	if err != nil {
		return nil, err
	}
	res := &partResult{}
	vfs := flag.NewFlagSet("bench-gpu valuation", flag.ContinueOnError)
	mf := addMethodFlags(vfs, true)
	var vargs []string
	if *f.method != "full" {
		vargs = []string{"--k", strconv.Itoa(*f.k), "--val-refresh", strconv.Itoa(*f.refresh), "--val", f.valPath,
			"--val-examples", strconv.Itoa(p.valN)}
		if _, err := os.Stat(f.fisherPath); err == nil {
			vargs = append(vargs, "--fisher", f.fisherPath)
		} else {
			vargs = append(vargs, "--fisher", "none")
			res.Note = "no Fisher (the fisher part did not run or failed): stability terms off (--fisher none)"
		}
	}
	if err := vfs.Parse(vargs); err != nil {
		return nil, err
	}
	m, err := mf.build(*f.method, runSpec{lm: lm, tok: tok, opts: opts, backend: f.backend, dtype: *f.dtype,
		steps: p.warmup + p.steps, batch: p.batch, maxLen: p.seq})
	if err != nil {
		return res, err
	}
	tc := train.Config{Steps: p.warmup + p.steps, BatchSize: p.batch, MaxLen: p.seq, LR: 1e-5, LogEvery: 1, Seed: 1}
	tr, err := train.New(lm, tok, tc, m)
	if err != nil {
		return res, err
	}
	if err := tr.Run(examples); err != nil {
		return res, err
	}
	h := tr.History
	if len(h) != tc.Steps {
		return res, fmt.Errorf("bench-gpu: %d step records for %d steps", len(h), tc.Steps)
	}
	var dts []float64
	for i := p.warmup; i < len(h); i++ {
		prev := 0.0
		if i > 0 {
			prev = h[i-1].Elapsed
		}
		dts = append(dts, h[i].Elapsed-prev)
	}
	slices.Sort(dts)
	res.StepSeconds = dts[len(dts)/2]
	res.TokensPerSec = float64(p.batch*p.seq) / res.StepSeconds
	res.WarmSeconds = time.Since(loadStart).Seconds() - (h[len(h)-1].Elapsed - h[p.warmup-1].Elapsed)
	return res, nil
}

// --- helpers --------------------------------------------------------------------------------------

// watchGPUMemory polls nvidia-smi for the memory pid uses until ctx ends: the peak in MiB, or −1
// without nvidia-smi.
func watchGPUMemory(ctx context.Context, pid int) float64 {
	smi, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return -1
	}
	peak := 0.0
	for {
		out, err := exec.Command(smi, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits").Output()
		if err == nil {
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				fields := strings.Split(sc.Text(), ",")
				if len(fields) == 2 && strings.TrimSpace(fields[0]) == strconv.Itoa(pid) {
					if v, err := strconv.ParseFloat(strings.TrimSpace(fields[1]), 64); err == nil {
						peak = max(peak, v)
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return peak
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// deviceLine names the GPU (nvidia-smi) or the CPU.
func deviceLine() string {
	if smi, err := exec.LookPath("nvidia-smi"); err == nil {
		out, err := exec.Command(smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader").Output()
		if err == nil {
			return strings.ReplaceAll(strings.TrimSpace(string(out)), "\n", "; ")
		}
	}
	return fmt.Sprintf("no nvidia-smi; %d CPU cores (%s/%s)", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
}

// buildLine gives the Go version and the commit the binary was built from.
func buildLine() string {
	s := runtime.Version()
	if info, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", ""
		for _, kv := range info.Settings {
			switch kv.Key {
			case "vcs.revision":
				rev = kv.Value
			case "vcs.modified":
				if kv.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			s += ", commit " + rev + dirty
		}
	}
	return s
}

func thousands(x float64) string {
	s := strconv.FormatInt(int64(x+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// mib renders a size given in MiB.
func mib(m float64) string {
	if m >= 1024 {
		return fmt.Sprintf("%.1f GiB", m/1024)
	}
	return fmt.Sprintf("%.0f MiB", m)
}

func noteOf(note string) string {
	if note == "" {
		return ""
	}
	return " [" + note + "]"
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return firstLine(lines[len(lines)-1])
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
