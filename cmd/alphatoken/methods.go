package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// valuationFlags are the AlphaToken settings shared by train-sft and score (SPEC §4 defaults).
type valuationFlags struct {
	rho, lambda              *float64
	window, k, valN, refresh *int
	normalize, ghost         *string
	fisher, ref, val         *string
}

func addValuationFlags(fs *flag.FlagSet, withRefresh bool) *valuationFlags {
	d := alphatoken.DefaultConfig()
	vf := &valuationFlags{
		rho:       fs.Float64("rho", d.Rho, "ρ: share of response tokens kept per batch"),
		lambda:    fs.Float64("lambda", d.Lambda, "λ: weight of the stability (Fisher-proxy) term"),
		window:    fs.Int("window", d.Window, "W: causal window"),
		k:         fs.Int("k", d.Blocks, "K: number of last blocks scored"),
		valN:      fs.Int("val-examples", d.ValExamples, "B_val: validation examples behind G"),
		normalize: fs.String("normalize", string(d.Normalize), "zscore or none"),
		ghost:     fs.String("ghost", string(d.Ghost), "contraction with G: auto, ghost or matrix"),
		fisher:    fs.String("fisher", "", "Fisher file (alphatoken fisher); without it the stability terms are 0"),
		ref:       fs.String("ref", "", "reference checkpoint θ_ref (default: the model being trained, at its start)"),
		val:       fs.String("val", "", "validation JSONL of the target task (B_val examples are used)"),
	}
	refresh := 1
	vf.refresh = &refresh
	if withRefresh {
		vf.refresh = fs.Int("val-refresh", d.ValRefresh, "recompute the validation gradient every N steps")
	}
	return vf
}

// config assembles an alphatoken.Config for the variant name.
func (vf *valuationFlags) config(name string, fisher *alphatoken.Fisher) (alphatoken.Config, error) {
	c := alphatoken.DefaultConfig()
	c.Rho, c.Lambda, c.Window, c.Blocks = *vf.rho, *vf.lambda, *vf.window, *vf.k
	c.ValExamples, c.ValRefresh = *vf.valN, *vf.refresh
	c.Normalize, c.Ghost = alphatoken.Normalization(*vf.normalize), alphatoken.GhostMode(*vf.ghost)
	c.Fisher = alphatoken.FisherNone
	if fisher != nil {
		c.Fisher = fisher.Kind
	}
	return alphatoken.Variant(name, c)
}

// valuer builds the Valuer for lm from the flags.
func (vf *valuationFlags) valuer(name string, lm *model.LM, tok tokenizer.Tokenizer, opts data.Options, backend string, batchTokens int) (*alphatoken.Valuer, error) {
	if *vf.val == "" {
		return nil, fmt.Errorf("--val (validation JSONL of the target task) is required for method %q", name)
	}
	val, _, err := data.ReadExamples(*vf.val, tok, opts)
	if err != nil {
		return nil, err
	}
	var fisher *alphatoken.Fisher
	if *vf.fisher != "" {
		if fisher, err = alphatoken.LoadFisher(*vf.fisher); err != nil {
			return nil, err
		}
	}
	cfg, err := vf.config(name, fisher)
	if err != nil {
		return nil, err
	}
	if cfg.Stability && fisher == nil && name == "stability-only" {
		return nil, fmt.Errorf("method stability-only needs --fisher")
	}
	var ref *model.LM
	if cfg.Stability && fisher != nil {
		if *vf.ref != "" {
			if ref, _, err = openModel(backend, *vf.ref, model.DTypeName(model.AccumDType(lm.DType))); err != nil {
				return nil, err
			}
		} else if ref, err = lm.Clone(); err != nil {
			return nil, err
		}
	}
	return alphatoken.NewValuer(lm, ref, fisher, val, cfg, batchTokens)
}

var methodList = train.MethodNames

func methodNames() string { return strings.Join(methodList, ", ") }

// buildMethod constructs a training method by name.
func buildMethod(name string, vf *valuationFlags, lm *model.LM, tok tokenizer.Tokenizer, opts data.Options, backend string, batchTokens int) (train.Method, error) {
	switch name {
	case "full":
		return train.Full{}, nil
	case "random":
		return train.NewRandom(*vf.rho)
	case "alphatoken", "adaptation-only", "stability-only", "direct-only", "causal-only", "bottom":
		v, err := vf.valuer(name, lm, tok, opts, backend, batchTokens)
		if err != nil {
			return nil, err
		}
		return train.NewSelected(name, v)
	}
	return nil, fmt.Errorf("unknown --method %q (known: %s)", name, methodNames())
}
