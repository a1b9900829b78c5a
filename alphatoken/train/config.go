// Package train runs language-model training: causal-LM pre-training on a corpus and supervised
// fine-tuning (SFT) with a per-token loss mask or weights chosen by a Method. It is a generic
// trainer: the token-selection methods (AlphaToken, its ablations, the baselines) live in package
// methods and reach the trainer only through the Method and Planner interfaces.
//
// One optimizer step is one compiled GoMLX graph: forward, the method's loss (for AlphaToken the
// valuation and mask run inside the same graph), gradients of every model weight, global-norm
// clipping and the AdamW update (GoMLX's optimizer.Adam with decoupled weight decay). With
// GradAccum = N > 1 a step runs N micro-batches instead: each adds its share of the gradient to
// accumulators (micro-batch i weighs n_i/Σn, n = its response tokens, so for Full the step's
// gradient is exactly the big batch's), and the last one also clips and applies the update. The
// learning rate follows linear warm-up, then cosine (default), linear or constant (Schedule).
// With Packing, several short examples share a row (data.Pack), each attending only to itself.
//
// Nothing non-finite reaches disk: after every step the trainer checks the loss, the gradient norm
// and every updated weight and optimizer moment; a non-finite step stops the run with a NaNError
// naming the step and the last checkpoint. A checkpoint is written every CheckpointEvery steps into
// a uniquely named temporary directory and published (renamed) only once the step after it has
// run finite, so the newest checkpoint never holds a state whose next step diverges. One process
// writes an output directory at a time (PrepareOutDir's lock). Resume continues from a checkpoint
// bit-for-bit on CPU (the data order and the random masks are pure functions of the seed and the
// step) and refuses a run whose settings differ from the checkpoint's (Trainer.ResumeOverride).
//
// Logged steps go to OutDir/metrics.jsonl and, with TensorBoardDir, to TensorBoard event files.
package train

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/pkg/errors"
)

// Schedule is the learning-rate curve after the warm-up.
type Schedule string

const (
	ScheduleCosine   Schedule = "cosine"   // cosine decay from LR to LR·MinLRRatio at Steps (default)
	ScheduleLinear   Schedule = "linear"   // linear decay from LR to LR·MinLRRatio at Steps
	ScheduleConstant Schedule = "constant" // LR after the warm-up
)

// Schedules lists the schedules, for flag help and errors.
var Schedules = []Schedule{ScheduleCosine, ScheduleLinear, ScheduleConstant}

// Config holds the run-level settings of a training run. Zero values take the defaults of
// DefaultConfig where noted.
type Config struct {
	Steps           int      // optimizer steps (required)
	BatchSize       int      // rows per micro-batch (default 8): sequences, or packed rows with Packing
	GradAccum       int      // micro-batches per optimizer step (default 1)
	MaxLen          int      // context length for training; longer examples are truncated (default 256)
	BucketQuantum   int      // batches are padded to a multiple of this length (default 32)
	Packing         bool     // pack several examples per row of MaxLen tokens (data.Pack)
	LR              float64  // peak learning rate (default 3e-4)
	Schedule        Schedule // after the warm-up: cosine (default), linear or constant
	WarmupSteps     int      // linear warm-up steps (default Steps/20)
	MinLRRatio      float64  // cosine and linear decay end at LR·MinLRRatio (default 0.1)
	WeightDecay     float64  // AdamW decoupled weight decay (default 0; applied to every weight)
	Beta1           float64  // default 0.9
	Beta2           float64  // default 0.95
	Eps             float64  // default 1e-8
	ClipNorm        float64  // clip the global gradient norm to this (default 1; negative disables)
	Seed            uint64   // data order and random masks
	LogEvery        int      // a metrics line (and progress) every N steps (default 10)
	CheckpointEvery int      // a resumable checkpoint every N steps (0: only at the end)
	KeepCheckpoints int      // most recent checkpoints kept (default 2)
	OutDir          string   // where checkpoints and metrics.jsonl go ("" keeps nothing on disk)
	TensorBoardDir  string   // TensorBoard event files of the logged steps ("" writes none)
	Quiet           bool     // no progress lines on stderr
	// GroupSize > 1: the examples come in groups of GroupSize consecutive ones that always share a
	// batch (a DPO pair: chosen, then rejected). The sampler shuffles groups; a batch holds
	// BatchSize groups in BatchSize·GroupSize rows, member j of every group in rows
	// [j·BatchSize, (j+1)·BatchSize) (TRL's DPO layout: the chosen half, then the rejected half),
	// with padding rows where a batch has fewer groups. 0 or 1: one example per row. Not with Packing.
	GroupSize int
}

// DefaultConfig returns the defaults for a run of the given number of steps.
func DefaultConfig(steps int) Config {
	c := Config{Steps: steps}
	c.fill()
	return c
}

func (c *Config) fill() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	deff := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.BatchSize, 8)
	def(&c.GradAccum, 1)
	if c.Schedule == "" {
		c.Schedule = ScheduleCosine
	}
	def(&c.MaxLen, 256)
	def(&c.BucketQuantum, 32)
	def(&c.WarmupSteps, max(c.Steps/20, 1))
	def(&c.LogEvery, 10)
	def(&c.KeepCheckpoints, 2)
	deff(&c.LR, 3e-4)
	deff(&c.MinLRRatio, 0.1)
	deff(&c.Beta1, 0.9)
	deff(&c.Beta2, 0.95)
	deff(&c.Eps, 1e-8)
	deff(&c.ClipNorm, 1)
}

// Validate checks the settings (after defaults). Every real setting must be finite.
func (c *Config) Validate() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"LR", c.LR}, {"MinLRRatio", c.MinLRRatio}, {"WeightDecay", c.WeightDecay}, {"Beta1", c.Beta1},
		{"Beta2", c.Beta2}, {"Eps", c.Eps}, {"ClipNorm", c.ClipNorm}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return errors.Errorf("train: %s must be finite, got %g", f.name, f.v)
		}
	}
	switch {
	case c.Steps <= 0:
		return errors.Errorf("train: Steps must be positive, got %d", c.Steps)
	case c.BatchSize <= 0 || c.MaxLen < 2 || c.BucketQuantum <= 0:
		return errors.Errorf("train: BatchSize (%d), MaxLen (%d) and BucketQuantum (%d) must be positive (MaxLen ≥ 2)",
			c.BatchSize, c.MaxLen, c.BucketQuantum)
	case c.GradAccum <= 0:
		return errors.Errorf("train: GradAccum must be ≥ 1, got %d", c.GradAccum)
	case !validSchedule(c.Schedule):
		return errors.Errorf("train: unknown Schedule %q (%s)", c.Schedule, scheduleList())
	case c.LR <= 0 || c.MinLRRatio < 0 || c.MinLRRatio > 1:
		return errors.Errorf("train: LR must be > 0 and MinLRRatio in [0,1], got %g, %g", c.LR, c.MinLRRatio)
	case c.WarmupSteps < 0 || c.WarmupSteps > c.Steps:
		return errors.Errorf("train: WarmupSteps %d must be in [0, Steps=%d]", c.WarmupSteps, c.Steps)
	case c.WeightDecay < 0 || c.Beta1 < 0 || c.Beta1 >= 1 || c.Beta2 < 0 || c.Beta2 >= 1 || c.Eps <= 0:
		return errors.Errorf("train: invalid AdamW settings (weight decay %g, betas %g/%g, eps %g)", c.WeightDecay, c.Beta1, c.Beta2, c.Eps)
	case c.GroupSize < 0 || (c.GroupSize > 1 && c.Packing):
		return errors.Errorf("train: GroupSize must be ≥ 0 and cannot be combined with Packing, got %d", c.GroupSize)
	case c.CheckpointEvery < 0 || c.LogEvery <= 0 || c.KeepCheckpoints < 1:
		return errors.Errorf("train: CheckpointEvery must be ≥ 0, LogEvery > 0 and KeepCheckpoints ≥ 1, got %d, %d, %d",
			c.CheckpointEvery, c.LogEvery, c.KeepCheckpoints)
	}
	return nil
}

// JSON renders the configuration (recorded in checkpoints and results).
func (c Config) JSON() []byte {
	b, _ := json.MarshalIndent(c, "", "  ")
	return b
}

func validSchedule(s Schedule) bool {
	for _, x := range Schedules {
		if s == x {
			return true
		}
	}
	return false
}

func scheduleList() string {
	names := make([]string, len(Schedules))
	for i, s := range Schedules {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// ParseSchedule reads a schedule name (for flags).
func ParseSchedule(s string) (Schedule, error) {
	if !validSchedule(Schedule(s)) {
		return "", errors.Errorf("train: unknown schedule %q (%s)", s, scheduleList())
	}
	return Schedule(s), nil
}

// LearningRate is the schedule at a step: linear warm-up to LR over WarmupSteps, then the
// Schedule's curve from LR down to LR·MinLRRatio at Steps (cosine or linear) or LR (constant).
func (c *Config) LearningRate(step int) float64 {
	if step < c.WarmupSteps {
		return c.LR * float64(step+1) / float64(c.WarmupSteps)
	}
	span := max(c.Steps-c.WarmupSteps, 1)
	progress := math.Min(float64(step-c.WarmupSteps)/float64(span), 1)
	switch c.Schedule {
	case ScheduleConstant:
		return c.LR
	case ScheduleLinear:
		return c.LR * (c.MinLRRatio + (1-c.MinLRRatio)*(1-progress))
	}
	return c.LR * (c.MinLRRatio + (1-c.MinLRRatio)*0.5*(1+math.Cos(math.Pi*progress)))
}

// settings are the values of the fields that change a run's math (its data order, masks, updates),
// by field name; a resumed run must match them (see Trainer.Resume). Logging, checkpointing and
// output settings are not among them.
func (c *Config) settings() map[string]string {
	i := strconv.Itoa
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	return map[string]string{
		"Steps": i(c.Steps), "BatchSize": i(c.BatchSize), "GradAccum": i(c.GradAccum), "MaxLen": i(c.MaxLen),
		"BucketQuantum": i(c.BucketQuantum), "Packing": fmt.Sprint(c.Packing), "LR": f(c.LR),
		"Schedule": string(c.Schedule), "WarmupSteps": i(c.WarmupSteps), "MinLRRatio": f(c.MinLRRatio),
		"WeightDecay": f(c.WeightDecay), "Beta1": f(c.Beta1), "Beta2": f(c.Beta2), "Eps": f(c.Eps),
		"ClipNorm": f(c.ClipNorm), "Seed": strconv.FormatUint(c.Seed, 10),
	}
}
