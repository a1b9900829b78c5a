package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/alphatoken/alphatoken/alphatoken/train"
)

// runFlags are the flags every training command shares (train-sft, train-dpo, pretrain): the
// output directory and how an existing one is treated, resuming, and the optimizer and logging
// features of train.Config.
type runFlags struct {
	out                         *string
	resume, overwrite, override *bool
	gradAccum                   *int
	clip                        *float64
	scheduler                   *string
	packing                     *bool // nil: the command does not pack
	tensorboard                 *string
	lock                        *train.Lock
}

// addRunFlags declares the shared flags; withPacking adds --packing (SFT).
func addRunFlags(fs *flag.FlagSet, outUsage string, withPacking bool) *runFlags {
	schedules := make([]string, len(train.Schedules))
	for i, s := range train.Schedules {
		schedules[i] = string(s)
	}
	rf := &runFlags{
		out:       fs.String("out", "", outUsage),
		resume:    fs.Bool("resume", false, "continue the run in --out from its newest checkpoint (its settings must match, see --resume-override)"),
		overwrite: fs.Bool("overwrite", false, "replace what --out holds (a non-empty --out is refused without --resume or --overwrite)"),
		override: fs.Bool("resume-override", false, "with --resume: continue even though settings that change the run's math differ from the checkpoint's "+
			"(each difference is logged)"),
		gradAccum: fs.Int("grad-accum", 1, "micro-batches of --batch per optimizer step (the step's gradient is that of all of them)"),
		clip:      fs.Float64("clip", 1, "clip the global gradient norm to this; 0 or negative: no clipping"),
		scheduler: fs.String("scheduler", string(train.ScheduleCosine), "learning rate after the warm-up: "+strings.Join(schedules, ", ")+
			" (cosine and linear decay to 0.1×--lr)"),
		tensorboard: fs.String("tensorboard", "", "TensorBoard event files of the logged steps (default OUT/tb; off: none)"),
	}
	if withPacking {
		rf.packing = fs.Bool("packing", false, "pack several short examples into each row of --max-len tokens (attention and RoPE positions "+
			"kept inside each example; --batch then counts rows); methods: full, random")
	}
	return rf
}

// finite checks float flags: each must be a finite number (NaN and ±Inf are errors naming it).
func finite(fs *flag.FlagSet, names ...string) error {
	for _, n := range names {
		f := fs.Lookup(n)
		if f == nil {
			continue
		}
		v := f.Value.(flag.Getter).Get().(float64)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("--%s must be a finite number, got %v", n, v)
		}
	}
	return nil
}

// apply checks the shared flags and sets them in tc.
func (rf *runFlags) apply(tc *train.Config) error {
	if *rf.gradAccum < 1 {
		return fmt.Errorf("--grad-accum must be ≥ 1, got %d", *rf.gradAccum)
	}
	if math.IsNaN(*rf.clip) || math.IsInf(*rf.clip, 0) {
		return fmt.Errorf("--clip must be a finite number (0 or negative: no clipping), got %v", *rf.clip)
	}
	s, err := train.ParseSchedule(*rf.scheduler)
	if err != nil {
		return fmt.Errorf("--scheduler: %q is not one of %s", *rf.scheduler, schedulesList())
	}
	tc.GradAccum, tc.Schedule, tc.ClipNorm = *rf.gradAccum, s, *rf.clip
	if *rf.clip <= 0 {
		tc.ClipNorm = -1 // train.Config: negative disables (0 would take the default)
	}
	if rf.packing != nil {
		tc.Packing = *rf.packing
	}
	switch *rf.tensorboard {
	case "":
		tc.TensorBoardDir = filepath.Join(*rf.out, "tb")
	case "off", "none":
		tc.TensorBoardDir = ""
	default:
		tc.TensorBoardDir = *rf.tensorboard
	}
	return nil
}

func schedulesList() string {
	var s []string
	for _, x := range train.Schedules {
		s = append(s, string(x))
	}
	return strings.Join(s, ", ")
}

// prepare takes --out for this run (train.PrepareOutDir): refuses a non-empty one without --resume
// or --overwrite, reports a lock taken over from a dead run. Call release when the run ends.
func (rf *runFlags) prepare() error {
	if *rf.override && !*rf.resume {
		return fmt.Errorf("--resume-override applies to --resume only")
	}
	l, err := train.PrepareOutDir(*rf.out, *rf.resume, *rf.overwrite)
	if err != nil {
		return err
	}
	if l.Stale != nil {
		logf("warning: %s was locked by a run that ended without releasing it (killed or crashed): %s; taking it over", *rf.out, l.Stale)
	}
	rf.lock = l
	return nil
}

func (rf *runFlags) release() {
	if rf.lock != nil {
		_ = rf.lock.Release()
		rf.lock = nil
	}
}

// start records the run's settings in tr (for resume checks) and, with --resume, restores the
// newest checkpoint of --out.
func (rf *runFlags) start(tr *train.Trainer, fs *flag.FlagSet) error {
	settings, err := runSettings(fs)
	if err != nil {
		return err
	}
	tr.RunSettings, tr.ResumeOverride = settings, *rf.override
	if !*rf.resume {
		return nil
	}
	latest, err := train.LatestCheckpoint(*rf.out)
	if err != nil || latest == "" {
		return fmt.Errorf("--resume: no checkpoint in %s (%v)", *rf.out, err)
	}
	if err := tr.Resume(latest); err != nil {
		return err
	}
	logf("resuming from %s (step %d)", latest, tr.Step())
	return nil
}

// notRecorded are the flags runSettings leaves out: those that do not change a run's math (where
// it writes, how often it logs, checkpoints or evaluates, the backend, caches), and those whose
// effect train.Config records itself (steps, batch, lr, …: a difference shows once, as
// "LR: 0.0001 → 0.0002").
var notRecorded = map[string]bool{"out": true, "resume": true, "overwrite": true, "resume-override": true, "tensorboard": true,
	"checkpoint-every": true, "log-every": true, "eval": true, "eval-every": true, "backend": true, "offline-cache": true,
	"samples": true,
	"steps":   true, "epochs": true, "batch": true, "max-len": true, "seq": true, "lr": true, "warmup": true,
	"weight-decay": true, "seed": true, "grad-accum": true, "clip": true, "scheduler": true, "packing": true}

// runSettings records every other flag that changes a run's math, by flag name: a file's value is its
// content's SHA-256 (so a moved file still matches and an edited one does not), a checkpoint
// directory's a digest of its config.json and tokenizer.json and the sizes of its weight files.
func runSettings(fs *flag.FlagSet) (map[string]string, error) {
	out := map[string]string{}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if notRecorded[f.Name] || err != nil {
			return
		}
		v := f.Value.String()
		if v != "" && v != "none" {
			if st, statErr := os.Stat(v); statErr == nil {
				if st.IsDir() {
					v, err = dirDigest(v)
				} else {
					v, err = fileDigest(v)
				}
			}
		}
		out["--"+f.Name] = v
	})
	return out, err
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// dirDigest fingerprints a checkpoint directory without reading its weights.
func dirDigest(dir string) (string, error) {
	h := sha256.New()
	for _, name := range []string{"config.json", "tokenizer.json"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			fmt.Fprintf(h, "%s %d\n", name, len(b))
			h.Write(b)
		}
	}
	weights, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	sort.Strings(weights)
	for _, w := range weights {
		if st, err := os.Stat(w); err == nil {
			fmt.Fprintf(h, "%s %d\n", filepath.Base(w), st.Size())
		}
	}
	return "checkpoint:" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// optFlags are the optimisation flags train-sft and train-dpo share: steps or epochs, batch,
// context, learning rate and its warm-up, weight decay, seed, chat template, dtype, and how often
// to checkpoint, evaluate and log.
type optFlags struct {
	steps, batch, maxLen, warmup   *int
	ckptEvery, evalEvery, logEvery *int
	epochs, lr, wd                 *float64
	seed                           *uint64
	template, dtype                *string
}

// optHelp holds the help (and the batch default) that differ between SFT and DPO.
type optHelp struct {
	batch                                 int
	steps, epochs, batchHelp, maxLen      string
	warmup, seed, template, evalEveryHelp string
}

func addOptFlags(fs *flag.FlagSet, h optHelp) *optFlags {
	return &optFlags{
		steps:     fs.Int("steps", 0, h.steps),
		epochs:    fs.Float64("epochs", 1, h.epochs),
		batch:     fs.Int("batch", h.batch, h.batchHelp),
		maxLen:    fs.Int("max-len", 256, h.maxLen),
		lr:        fs.Float64("lr", 1e-4, "peak learning rate"),
		warmup:    fs.Int("warmup", 0, h.warmup),
		wd:        fs.Float64("weight-decay", 0, "AdamW decoupled weight decay"),
		seed:      fs.Uint64("seed", 1, h.seed),
		template:  fs.String("template", "auto", h.template),
		dtype:     dtypeFlag(fs),
		ckptEvery: fs.Int("checkpoint-every", 0, "resumable checkpoint every N steps (0: only at the end)"),
		evalEvery: fs.Int("eval-every", 50, h.evalEveryHelp),
		logEvery:  fs.Int("log-every", 10, "a metrics line (metrics.jsonl, progress) every N steps"),
	}
}

// check validates the optimisation flags (after fs.Parse): each error names its flag and range.
func (o *optFlags) check(fs *flag.FlagSet) error {
	if err := checkFlags(atLeast("steps", *o.steps, 0), atLeast("batch", *o.batch, 1), atLeast("max-len", *o.maxLen, 2),
		positiveFloat("lr", *o.lr), atLeast("warmup", *o.warmup, 0), nonNegativeFloat("weight-decay", *o.wd),
		atLeast("checkpoint-every", *o.ckptEvery, 0), atLeast("eval-every", *o.evalEvery, 1), atLeast("log-every", *o.logEvery, 1),
		precisionFlag(*o.dtype)); err != nil {
		return err
	}
	if *o.steps == 0 {
		if err := positiveFloat("epochs", *o.epochs); err != nil {
			return err
		}
	}
	return finite(fs, "epochs", "weight-decay")
}

// config is the trainer configuration of the flags (steps are set once the data is read).
func (o *optFlags) config(out string) train.Config {
	return train.Config{BatchSize: *o.batch, MaxLen: *o.maxLen, LR: *o.lr, WarmupSteps: *o.warmup, WeightDecay: *o.wd,
		Seed: *o.seed, CheckpointEvery: *o.ckptEvery, OutDir: out, LogEvery: *o.logEvery}
}
