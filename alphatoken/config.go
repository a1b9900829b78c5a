package alphatoken

import (
	"encoding/json"
	"math"

	"github.com/pkg/errors"
)

// FisherKind selects the curvature of the stability proxy (SPEC §3).
type FisherKind string

const (
	FisherDiag FisherKind = "diag" // P = F ⊙ (W − W_ref)
	FisherKFAC FisherKind = "kfac" // P = S (W − W_ref) A
	FisherNone FisherKind = "none" // P = 0 (ablation)
)

// Normalization of the two objective terms before combining them (SPEC §4).
type Normalization string

const (
	NormNone   Normalization = "none"   // the paper's raw sum (default)
	NormZScore Normalization = "zscore" // standardise over the batch's response tokens
	NormRank   Normalization = "rank"   // centred rank over the batch's response tokens
)

// Normalizations lists the valid Normalization values, default first.
var Normalizations = []Normalization{NormNone, NormZScore, NormRank}

// Selection picks which ρ fraction of tokens keep their loss (SPEC §6).
type Selection string

const (
	SelectTop    Selection = "top"    // highest values (AlphaToken)
	SelectBottom Selection = "bottom" // lowest values (ranking test)
	SelectRandom Selection = "random" // uniformly random, same count
)

// GhostMode chooses how target terms contract with G (SPEC §5).
type GhostMode string

const (
	GhostAuto   GhostMode = "auto"   // the cheaper form per layer
	GhostAlways GhostMode = "ghost"  // Σ_s (e·e')(a·a') for every layer
	GhostNever  GhostMode = "matrix" // materialise G for every layer
)

// Config holds the valuation settings; DefaultConfig gives SPEC §4's defaults. The share ρ of
// tokens a mask keeps is not part of the valuation: it belongs to the selection (package methods,
// or ScoreOptions.Rho).
type Config struct {
	Lambda             float64       // λ, weight of the stability term
	Window             int           // W, causal window (≥ 1)
	Blocks             int           // K, number of last decoder blocks scored
	ValExamples        int           // B_val, validation examples behind G
	ValRefresh         int           // G is recomputed every ValRefresh steps
	Fisher             FisherKind    // diag, kfac or none
	FisherPrompts      int           // prompts for the Monte-Carlo Fisher
	FisherMaxNewTokens int           // length of the sampled responses
	Normalize          Normalization // none (the paper's raw sum), zscore or rank
	// Component switches: the ablations are configurations of one formula.
	Adaptation bool // the target terms Φ_tgt
	Stability  bool // the proxy terms Φ_prx
	Direct     bool // the direct path
	Causal     bool // the causal path
	Ghost      GhostMode
	// Precondition adam makes the values predict the trainer's AdamW step (SPEC §4, an extension;
	// "" and none: the SGD values). Empty by default, so configurations without it keep their JSON.
	Precondition Precondition `json:",omitempty"`
}

// DefaultRho is SPEC §4's default share of response tokens kept per batch.
const DefaultRho = 0.5

// DefaultConfig returns SPEC §4's defaults: λ 1.5, W 32, K 3, B_val 32, refresh every step,
// diagonal Fisher from 1000 prompts with 64 sampled tokens, no normalisation (the paper's raw sum;
// until 2026-11-30 the default was zscore), all four components.
func DefaultConfig() Config {
	return Config{Lambda: 1.5, Window: 32, Blocks: 3, ValExamples: 32, ValRefresh: 1,
		Fisher: FisherDiag, FisherPrompts: 1000, FisherMaxNewTokens: 64, Normalize: NormNone,
		Adaptation: true, Stability: true, Direct: true, Causal: true, Ghost: GhostAuto}
}

// Variant returns DefaultConfig changed for a named ablation: "alphatoken" (all four components),
// "adaptation-only", "stability-only", "direct-only", "causal-only".
func Variant(name string, base Config) (Config, error) {
	c := base
	c.Adaptation, c.Stability, c.Direct, c.Causal = true, true, true, true
	switch name {
	case "alphatoken", "bottom":
	case "adaptation-only":
		c.Stability = false
	case "stability-only":
		c.Adaptation = false
	case "direct-only":
		c.Causal = false
	case "causal-only":
		c.Direct = false
	default:
		return c, errors.Errorf("alphatoken: unknown variant %q", name)
	}
	return c, nil
}

// Validate checks the settings against a model of the given number of blocks.
func (c *Config) Validate(numBlocks int) error {
	switch {
	case !(c.Lambda >= 0) || math.IsInf(c.Lambda, 0):
		return errors.Errorf("alphatoken: λ must be a finite number ≥ 0 (--lambda), got %g", c.Lambda)
	case c.Window < 1:
		return errors.Errorf("alphatoken: the causal window W must be ≥ 1, got %d", c.Window)
	case c.Blocks < 1 || c.Blocks > numBlocks:
		return BlocksError(c.Blocks, numBlocks)
	case c.ValExamples < 1:
		return errors.Errorf("alphatoken: B_val must be ≥ 1, got %d", c.ValExamples)
	case c.ValRefresh < 1:
		return errors.Errorf("alphatoken: ValRefresh must be ≥ 1, got %d", c.ValRefresh)
	case !c.Adaptation && !c.Stability:
		return errors.New("alphatoken: at least one of the adaptation and stability terms must be on")
	case !c.Direct && !c.Causal:
		return errors.New("alphatoken: at least one of the direct and causal paths must be on")
	}
	switch c.Fisher {
	case FisherDiag, FisherKFAC, FisherNone:
	default:
		return errors.Errorf("alphatoken: unknown Fisher kind %q (diag, kfac, none)", c.Fisher)
	}
	switch c.Normalize {
	case NormNone, NormZScore, NormRank:
	default:
		return errors.Errorf("alphatoken: unknown normalisation %q (none, zscore, rank)", c.Normalize)
	}
	switch c.Ghost {
	case GhostAuto, GhostAlways, GhostNever, "":
	default:
		return errors.Errorf("alphatoken: unknown ghost mode %q (auto, ghost, matrix)", c.Ghost)
	}
	switch c.Precondition {
	case "", PrecondNone:
	case PrecondAdam:
		if c.Ghost == GhostAlways {
			return errors.New("alphatoken: precondition adam needs the materialised form (the ghost form does not factorise through G ⊘ (√v̂+ε)): use ghost auto or matrix")
		}
	default:
		return errors.Errorf("alphatoken: unknown precondition %q (none, adam)", c.Precondition)
	}
	return nil
}

// BlocksError is the error for a number of scored blocks K outside 1..n on a model of n blocks.
func BlocksError(k, n int) error {
	if k < 1 {
		return errors.Errorf("alphatoken: K = %d (--k) must be at least 1: use K in 1..%d, the model's %d blocks", k, n, n)
	}
	return errors.Errorf("alphatoken: K = %d (--k) exceeds the model's %d blocks: use K in 1..%d", k, n, n)
}

// JSON renders the configuration for results and checkpoints.
func (c Config) JSON() []byte {
	b, _ := json.MarshalIndent(c, "", "  ")
	return b
}
