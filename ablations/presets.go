package ablations

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/ablations/minibench"
	"github.com/alphatoken/alphatoken/alphatoken"
)

// PretrainSettings are the reference model's pre-training settings.
type PretrainSettings struct {
	Steps int     `json:"steps"`
	Batch int     `json:"batch"`
	Seq   int     `json:"seq"`
	LR    float64 `json:"lr"`
}

// SFTSettings are the fine-tuning settings shared by every method of a suite: the token budget
// per step differs between methods only through the mask.
type SFTSettings struct {
	Steps           int     `json:"steps"`
	Batch           int     `json:"batch"`
	MaxLen          int     `json:"max_len"`
	LR              float64 `json:"lr"`
	CheckpointEvery int     `json:"checkpoint_every"`
}

// HelperSettings make the helper model of the baselines that need one (Token Cleaning's reference,
// Rho-1's reference model): the reference fine-tuned with full FT on the target's clean slice,
// CleanSize examples disjoint from the SFT training and validation data (minibench Target.Extra).
type HelperSettings struct {
	CleanSize int         `json:"clean_size"`
	SFT       SFTSettings `json:"sft"`
}

// Preset fixes one MiniBench scale: the benchmark build, the reference model and its
// pre-training, the SFT settings, ρ, the valuation defaults, the helper model and the evaluation
// size. The design was fixed before any method was compared (ablations/README.md); it is not
// tuned per method.
type Preset struct {
	Name      string            `json:"name"`
	Model     string            `json:"model"` // model.Presets entry
	Bench     minibench.Config  `json:"bench"`
	Pretrain  PretrainSettings  `json:"pretrain"`
	SFT       SFTSettings       `json:"sft"`
	Rho       float64           `json:"rho"` // ρ of every selecting method (a suite row may override it)
	Valuation alphatoken.Config `json:"valuation"`
	Helper    HelperSettings    `json:"helper"`
	Eval      EvalOptions       `json:"eval"`
	Target    string            `json:"target"`
	// Regime is "adapt" when the reference model already has part of the target skill (its corpus
	// carries instruction → program pairs, minibench/adapt.go); empty for the from-scratch regime.
	Regime string `json:"regime,omitempty"`
	// Design versions a calibrated design (ablations/minibench/README.md): TestPresetsFrozen pins
	// each preset's content, and a change must bump it.
	Design string `json:"design,omitempty"`
	// Instruct, when set, adds the instruction stage to the reference model (adapt regime).
	Instruct *InstructStage `json:"instruct,omitempty"`
	// RefSeed seeds the reference model's pre-training (0 means 1). Only the calibration varies it
	// (alphatoken calibrate --ref-seeds); every suite uses the preset's one reference model.
	RefSeed uint64 `json:"ref_seed,omitempty"`
}

// UnmarshalJSON reads a preset, including those of results written before ρ left the valuation
// settings (then at "valuation.rho").
func (p *Preset) UnmarshalJSON(b []byte) error {
	type plain Preset
	var legacy struct {
		Valuation struct {
			Rho float64 `json:"Rho"`
		} `json:"valuation"`
	}
	if err := json.Unmarshal(b, (*plain)(p)); err != nil {
		return err
	}
	if p.Rho == 0 && json.Unmarshal(b, &legacy) == nil {
		p.Rho = legacy.Valuation.Rho
	}
	return nil
}

// Presets: "mini" runs the README's demo on a 2-core CPU in minutes; "small" is the fuller suite;
// "mini-adapt" is the adapt regime at the mini scale (its design and calibration:
// ablations/minibench/README.md, "Calibration of the adapt regime").
var Presets = map[string]Preset{
	"mini":       miniPreset(),
	"mini-adapt": miniAdaptPreset(),
	"small": func() Preset {
		b := minibench.DefaultConfig()
		b.CorpusDocs = 48000
		v := alphatoken.DefaultConfig()
		v.FisherPrompts, v.FisherMaxNewTokens = 256, 64
		return Preset{Name: "small", Model: "small", Bench: b,
			Pretrain: PretrainSettings{Steps: 2500, Batch: 16, Seq: 128, LR: 1e-3},
			SFT:      SFTSettings{Steps: 400, Batch: 16, MaxLen: 192, LR: 1e-3, CheckpointEvery: 50},
			Rho:      alphatoken.DefaultRho, Valuation: v,
			Helper: HelperSettings{CleanSize: 600, SFT: SFTSettings{Steps: 400, Batch: 16, MaxLen: 192, LR: 1e-3, CheckpointEvery: 50}},
			Eval:   EvalOptions{BatchSize: 50}, Target: minibench.TargetCode}
	}(),
}

// PresetNames lists the presets, sorted.
func PresetNames() []string {
	var names []string
	for n := range Presets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// PresetByName returns a preset (a copy).
func PresetByName(name string) (Preset, error) {
	p, ok := Presets[name]
	if !ok {
		return Preset{}, errors.Errorf("ablations: unknown preset %q (%s)", name, strings.Join(PresetNames(), ", "))
	}
	return p, nil
}

// miniPreset is the from-scratch regime at the mini scale.
func miniPreset() Preset {
	v := alphatoken.DefaultConfig()
	// The demo's time budget (15 minutes on 2 cores from a fresh clone) sets three departures from
	// SPEC's defaults, all varied by the sensitivity suite: the validation gradient is refreshed
	// every 4 steps (SPEC: 1), K = 2 of the model's 4 blocks are scored (SPEC: 3 — of 28–42 blocks
	// in the paper, about 10%; here K/L already is 50%), and the Fisher uses 128 prompts.
	v.ValRefresh, v.Blocks = 4, 2
	v.FisherPrompts, v.FisherMaxNewTokens = 128, 64
	// Normalize follows SPEC's default (none, the paper's raw sum, since 2026-11-30); the tables in
	// ablations/results/mini made before then used zscore, which their preset JSON records.
	return Preset{Name: "mini", Model: "mini", Bench: minibench.DefaultConfig(),
		Pretrain: PretrainSettings{Steps: 400, Batch: 16, Seq: 128, LR: 2e-3},
		SFT:      SFTSettings{Steps: 300, Batch: 8, MaxLen: 192, LR: 1e-3, CheckpointEvery: 50},
		Rho:      alphatoken.DefaultRho, Valuation: v,
		// The clean slice is 20% of the training set, the share of Token Cleaning's warm-up subset.
		Helper: HelperSettings{CleanSize: 600, SFT: SFTSettings{Steps: 300, Batch: 8, MaxLen: 192, LR: 1e-3, CheckpointEvery: 50}},
		Eval:   EvalOptions{MaxProbeItems: 80, MaxTargetItems: 80, BatchSize: 40}, Target: minibench.TargetCode}
}

// miniAdaptPreset is the adapt regime at the mini scale: the mini preset's model, SFT batch and
// steps, valuation and evaluation, with the adapt corpus (minibench.AdaptConfig), a longer
// pre-training and a lower SFT learning rate.
func miniAdaptPreset() Preset {
	p := miniPreset()
	p.Name, p.Regime, p.Design = "mini-adapt", "adapt", "adapt/1"
	p.Bench = minibench.AdaptConfig()
	p.Pretrain.Steps = 1500
	p.Instruct = &InstructStage{Pairs: 2000, Replay: 1, Steps: 250, Batch: 16, LR: 5e-4}
	p.SFT.LR = 3e-4
	p.Helper.SFT.LR = 3e-4 // the helper model (Token Cleaning, Rho-1, ...) is a Full FT at the SFT settings
	return p
}
