// Package train runs language-model training: causal-LM pre-training on a corpus and supervised
// fine-tuning (SFT) with a per-token loss mask or weights chosen by a Method. It is a generic
// trainer: the token-selection methods (AlphaToken, its ablations, the baselines) live in package
// methods and reach the trainer only through the Method and Planner interfaces.
//
// One optimizer step is one compiled GoMLX graph: forward, the method's loss (for AlphaToken the
// valuation and mask run inside the same graph), gradients of every model weight, global-norm
// clipping and the AdamW update (GoMLX's optimizer.Adam with decoupled weight decay). The learning
// rate follows linear warm-up then cosine decay. Every CheckpointEvery steps the trainer writes a
// Hugging Face checkpoint plus the optimizer state into a temporary directory and renames it, so a
// checkpoint is complete or absent; Resume continues from one bit-for-bit on CPU (the data order
// and the random masks are pure functions of the seed and the step).
package train

import (
	"encoding/json"

	"github.com/pkg/errors"
)

// Config holds the run-level settings of a training run. Zero values take the defaults of
// DefaultConfig where noted.
type Config struct {
	Steps           int     // optimizer steps (required)
	BatchSize       int     // sequences per step (default 8)
	MaxLen          int     // context length for training; longer examples are truncated (default 256)
	BucketQuantum   int     // batches are padded to a multiple of this length (default 32)
	LR              float64 // peak learning rate (default 3e-4)
	WarmupSteps     int     // linear warm-up steps (default Steps/20)
	MinLRRatio      float64 // cosine decay ends at LR·MinLRRatio (default 0.1)
	WeightDecay     float64 // AdamW decoupled weight decay (default 0; applied to every weight)
	Beta1           float64 // default 0.9
	Beta2           float64 // default 0.95
	Eps             float64 // default 1e-8
	ClipNorm        float64 // clip the global gradient norm to this (default 1; negative disables)
	Seed            uint64  // data order and random masks
	LogEvery        int     // a metrics line (and progress) every N steps (default 10)
	CheckpointEvery int     // a resumable checkpoint every N steps (0: only at the end)
	KeepCheckpoints int     // most recent checkpoints kept (default 2)
	OutDir          string  // where checkpoints and metrics.jsonl go ("" keeps nothing on disk)
	Quiet           bool    // no progress lines on stderr
	// GroupSize > 1: the examples come in groups of GroupSize consecutive ones that always share a
	// batch (a DPO pair: chosen, then rejected). The sampler shuffles groups; a batch holds
	// BatchSize groups in BatchSize·GroupSize rows, member j of every group in rows
	// [j·BatchSize, (j+1)·BatchSize) (TRL's DPO layout: the chosen half, then the rejected half),
	// with padding rows where a batch has fewer groups. 0 or 1: one example per row.
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

// Validate checks the settings (after defaults).
func (c *Config) Validate() error {
	switch {
	case c.Steps <= 0:
		return errors.Errorf("train: Steps must be positive, got %d", c.Steps)
	case c.BatchSize <= 0 || c.MaxLen < 2 || c.BucketQuantum <= 0:
		return errors.Errorf("train: BatchSize (%d), MaxLen (%d) and BucketQuantum (%d) must be positive (MaxLen ≥ 2)",
			c.BatchSize, c.MaxLen, c.BucketQuantum)
	case c.LR <= 0 || c.MinLRRatio < 0 || c.MinLRRatio > 1:
		return errors.Errorf("train: LR must be > 0 and MinLRRatio in [0,1], got %g, %g", c.LR, c.MinLRRatio)
	case c.WarmupSteps < 0 || c.WarmupSteps > c.Steps:
		return errors.Errorf("train: WarmupSteps %d must be in [0, Steps=%d]", c.WarmupSteps, c.Steps)
	case c.WeightDecay < 0 || c.Beta1 < 0 || c.Beta1 >= 1 || c.Beta2 < 0 || c.Beta2 >= 1 || c.Eps <= 0:
		return errors.Errorf("train: invalid AdamW settings (weight decay %g, betas %g/%g, eps %g)", c.WeightDecay, c.Beta1, c.Beta2, c.Eps)
	case c.GroupSize < 0:
		return errors.Errorf("train: GroupSize must be ≥ 0, got %d", c.GroupSize)
	case c.CheckpointEvery < 0 || c.LogEvery <= 0:
		return errors.Errorf("train: CheckpointEvery must be ≥ 0 and LogEvery > 0")
	}
	return nil
}

// JSON renders the configuration (recorded in checkpoints and results).
func (c Config) JSON() []byte {
	b, _ := json.MarshalIndent(c, "", "  ")
	return b
}
