package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/methods"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// methodFlags are the flags of a token-selection method, shared by train-sft and score: ρ and its
// schedule, the inputs a method may need (--val, --fisher, --ref, --helper), AlphaToken's
// valuation settings (SPEC §4 defaults) and every parameter a registered method declares.
type methodFlags struct {
	rho, rhoStart, lambda    *float64
	schedule                 *string
	budget                   *bool
	window, k, valN, refresh *int
	normalize, ghost         *string
	precondition             *string
	fisher, ref, val, helper *string
	cache                    *string
	params                   map[string]*paramValue
}

// paramValue is a method parameter's flag: it remembers whether it was set, so that only the
// parameters given reach the method (the others keep the method's own default).
type paramValue struct {
	v   float64
	set bool
}

func (p *paramValue) String() string { return strconv.FormatFloat(p.v, 'g', -1, 64) }
func (p *paramValue) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("not a finite number: %q", s)
	}
	p.v, p.set = v, true
	return nil
}

func addMethodFlags(fs *flag.FlagSet, withRefresh bool) *methodFlags {
	d := alphatoken.DefaultConfig()
	norms := make([]string, len(alphatoken.Normalizations))
	for i, n := range alphatoken.Normalizations {
		norms[i] = string(n)
	}
	mf := &methodFlags{
		rho:       fs.Float64("rho", alphatoken.DefaultRho, "ρ: share of response tokens kept (AlphaToken's; a budget-matched baseline's budget)"),
		schedule:  fs.String("rho-schedule", string(methods.ScheduleConstant), "keep ratio over training: constant, linear or cosine from --rho-start to the method's ratio"),
		rhoStart:  fs.Float64("rho-start", 1, "keep ratio at step 0 under --rho-schedule linear|cosine, in (0, 1]"),
		budget:    fs.Bool("budget-matched", false, "baselines keep ρ with AlphaToken's scope (one threshold per batch) instead of their native ratio or threshold"),
		lambda:    fs.Float64("lambda", d.Lambda, "λ: weight of the stability (Fisher-proxy) term"),
		window:    fs.Int("window", d.Window, "W: causal window"),
		k:         fs.Int("k", d.Blocks, "K: number of last blocks scored"),
		valN:      fs.Int("val-examples", d.ValExamples, "B_val: validation examples behind G"),
		normalize: fs.String("normalize", string(d.Normalize), "AlphaToken's combination of its two objectives: "+strings.Join(norms, ", ")+" (none: the paper's raw sum)"),
		ghost:     fs.String("ghost", string(d.Ghost), "contraction with G: auto, ghost or matrix"),
		precondition: fs.String("precondition", string(alphatoken.PrecondNone), "values predict: none, an SGD step (the paper's); adam, the trainer's AdamW step "+
			"(G and P divided by √v̂+ε, v̂ the optimizer's bias-corrected second moment; score reads it from --model's trainer_state; SPEC §4)"),
		fisher: fs.String("fisher", "", "Fisher file of θ_ref (alphatoken fisher), or none: the stability term off (AlphaToken methods)"),
		ref:    fs.String("ref", "", "reference checkpoint θ_ref of the stability term (default: --model at its start, so with score, which does not train, Φ_prx is 0 without --ref)"),
		val:    fs.String("val", "", "validation JSONL of the target task (B_val examples are used)"),
		helper: fs.String("helper", "", "helper checkpoint: the model fine-tuned on a clean held-out slice of the target data (token-cleaning, rho1)"),
		cache:  fs.String("offline-cache", "", "directory to cache offline token scores in (default: recompute them)"),
		params: map[string]*paramValue{},
	}
	refresh := 1
	mf.refresh = &refresh
	if withRefresh {
		mf.refresh = fs.Int("val-refresh", d.ValRefresh, "recompute the validation gradient every N steps")
	}
	for _, p := range methods.AllParams() {
		pv := &paramValue{v: p.Default}
		mf.params[p.Name] = pv
		fs.Var(pv, p.Name, p.Usage)
	}
	return mf
}

// check validates the method flags that do not depend on the model: each error names its flag
// and the allowed range.
func (mf *methodFlags) check() error {
	schedules := make([]string, len(methods.Schedules))
	for i, s := range methods.Schedules {
		schedules[i] = string(s)
	}
	norms := make([]string, len(alphatoken.Normalizations))
	for i, n := range alphatoken.Normalizations {
		norms[i] = string(n)
	}
	return checkFlags(inUnit("rho", *mf.rho), oneOf("rho-schedule", *mf.schedule, schedules...), inUnit("rho-start", *mf.rhoStart),
		nonNegativeFloat("lambda", *mf.lambda), atLeast("window", *mf.window, 1), atLeast("k", *mf.k, 1),
		atLeast("val-examples", *mf.valN, 1), atLeast("val-refresh", *mf.refresh, 1), oneOf("normalize", *mf.normalize, norms...),
		oneOf("ghost", *mf.ghost, string(alphatoken.GhostAuto), string(alphatoken.GhostAlways), string(alphatoken.GhostNever)),
		oneOf("precondition", *mf.precondition, string(alphatoken.PrecondNone), string(alphatoken.PrecondAdam)))
}

// checkModel validates the method flags against the model: --k for a method that values tokens.
func (mf *methodFlags) checkModel(lm *model.LM, method string) error {
	if info, err := methods.Lookup(method); err == nil && info.Valuation {
		return blocksFlag(*mf.k, lm.Config.Layers)
	}
	return nil
}

// methodUsage extends a command's -h with the registered methods.
func methodUsage(fs *flag.FlagSet) {
	usage := fs.Usage
	fs.Usage = func() {
		usage()
		fmt.Fprintln(fs.Output(), "\nmethods (--method), with the inputs and parameters each takes:")
		methods.Usage(fs.Output())
	}
}

// runSpec is what an env needs to know of the run and of where the model came from.
type runSpec struct {
	lm             *model.LM
	tok            tokenizer.Tokenizer
	opts           data.Options
	backend, dtype string
	steps, batch   int
	maxLen         int
	stop           []int // the template's stop tokens (sampling)
}

// env assembles the environment of method name: the options, and each input the method needs
// (read only then; a missing one is reported by methods.Build, naming its flag).
func (mf *methodFlags) env(name string, rs runSpec) (*methods.Env, error) {
	info, err := methods.Lookup(name)
	if err != nil {
		return nil, err
	}
	o := methods.Options{Rho: *mf.rho, Schedule: methods.Schedule(*mf.schedule), BudgetMatched: *mf.budget}
	if o.Schedule != methods.ScheduleConstant {
		o.RhoStart = *mf.rhoStart
	}
	for n, pv := range mf.params {
		if pv.set {
			if o.Params == nil {
				o.Params = map[string]float64{}
			}
			o.Params[n] = pv.v
		}
	}
	v := alphatoken.DefaultConfig()
	v.Lambda, v.Window, v.Blocks = *mf.lambda, *mf.window, *mf.k
	v.ValExamples, v.ValRefresh = *mf.valN, *mf.refresh
	v.Normalize, v.Ghost = alphatoken.Normalization(*mf.normalize), alphatoken.GhostMode(*mf.ghost)
	if *mf.precondition == string(alphatoken.PrecondAdam) {
		v.Precondition = alphatoken.PrecondAdam // none stays "" (the configuration's JSON without the extension)
	}
	env := &methods.Env{LM: rs.lm, Valuation: v, Options: o, Steps: rs.steps, BatchSize: rs.batch, MaxLen: rs.maxLen,
		Cache: *mf.cache, Log: os.Stderr}
	unused := func(flagName, value string) {
		if value != "" {
			logf("warning: %s is not used by method %s", flagName, name)
		}
	}
	if info.NeedsInput(methods.NeedVal) && *mf.val != "" {
		if env.Val, _, err = data.ReadExamples(*mf.val, rs.tok, rs.opts); err != nil {
			return nil, err
		}
	} else if !info.NeedsInput(methods.NeedVal) {
		unused("--val", *mf.val)
	}
	if info.NeedsInput(methods.NeedFisher) {
		switch *mf.fisher {
		case "":
		case "none":
			env.FisherNone = true
		default:
			if env.Fisher, err = alphatoken.LoadFisher(*mf.fisher); err != nil {
				return nil, err
			}
		}
	} else {
		unused("--fisher", *mf.fisher)
	}
	if info.NeedsInput(methods.NeedRef) && *mf.ref != "" && env.Fisher != nil {
		// θ_ref is kept in the accumulation dtype (float32 unless float64) whatever --dtype: a
		// bfloat16 copy would round the drift W − W_ref away.
		if env.Ref, _, err = openModel(rs.backend, *mf.ref, model.DTypeName(model.AccumDType(rs.lm.DType))); err != nil {
			return nil, err
		}
	} else if *mf.ref != "" {
		logf("warning: --ref is not used: it anchors the stability term, which method %s computes only with a --fisher file", name)
	}
	if info.NeedsInput(methods.NeedHelper) && *mf.helper != "" {
		if env.Helper, _, err = openModel(rs.backend, *mf.helper, rs.dtype); err != nil {
			return nil, err
		}
	} else if !info.NeedsInput(methods.NeedHelper) {
		unused("--helper", *mf.helper)
	}
	return env, nil
}

// build constructs a training method by name through the registry.
func (mf *methodFlags) build(name string, rs runSpec) (train.Method, error) {
	env, err := mf.env(name, rs)
	if err != nil {
		return nil, err
	}
	return methods.Build(name, env)
}

// methodNames is the registry's list, for flag help.
func methodNames() string { return strings.Join(methods.Names(), ", ") }
