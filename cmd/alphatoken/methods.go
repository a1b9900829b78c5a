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

// selectionFlags are the flags every token-selection method shares, for SFT and DPO: ρ and its
// schedule, budget matching, AlphaToken's valuation settings (SPEC §4 defaults) and its inputs
// --val and --fisher.
type selectionFlags struct {
	rho, rhoStart, lambda    *float64
	schedule                 *string
	budget                   *bool
	window, k, valN, refresh *int
	normalize, ghost         *string
	fisher, val              *string
}

// selectionHelp holds the help of the flags whose meaning SFT and DPO word differently.
type selectionHelp struct{ rho, budget, valN, val string }

// addSelectionFlags declares the shared flags; --val-refresh only where the values are refreshed
// (training), otherwise it is 1.
func addSelectionFlags(fs *flag.FlagSet, withRefresh bool, h selectionHelp) selectionFlags {
	d := alphatoken.DefaultConfig()
	norms := make([]string, len(alphatoken.Normalizations))
	for i, n := range alphatoken.Normalizations {
		norms[i] = string(n)
	}
	s := selectionFlags{
		rho:       fs.Float64("rho", alphatoken.DefaultRho, h.rho),
		schedule:  fs.String("rho-schedule", string(methods.ScheduleConstant), "keep ratio over training: constant, linear or cosine from --rho-start to the method's ratio"),
		rhoStart:  fs.Float64("rho-start", 1, "keep ratio at step 0 under --rho-schedule linear|cosine, in (0, 1]"),
		budget:    fs.Bool("budget-matched", false, h.budget),
		lambda:    fs.Float64("lambda", d.Lambda, "λ: weight of the stability (Fisher-proxy) term"),
		window:    fs.Int("window", d.Window, "W: causal window"),
		k:         fs.Int("k", d.Blocks, "K: number of last blocks scored"),
		valN:      fs.Int("val-examples", d.ValExamples, h.valN),
		normalize: fs.String("normalize", string(d.Normalize), "AlphaToken's combination of its two objectives: "+strings.Join(norms, ", ")+" (none: the paper's raw sum)"),
		ghost:     fs.String("ghost", string(d.Ghost), "contraction with G: auto, ghost or matrix"),
		fisher:    fs.String("fisher", "", "Fisher file of θ_ref (alphatoken fisher), or none: the stability term off (AlphaToken methods)"),
		val:       fs.String("val", "", h.val),
	}
	refresh := 1
	s.refresh = &refresh
	if withRefresh {
		s.refresh = fs.Int("val-refresh", d.ValRefresh, "recompute the validation gradient every N steps")
	}
	return s
}

// check validates the shared flags that do not depend on the model: each error names its flag
// and the allowed range.
func (s *selectionFlags) check() error {
	schedules := make([]string, len(methods.Schedules))
	for i, x := range methods.Schedules {
		schedules[i] = string(x)
	}
	norms := make([]string, len(alphatoken.Normalizations))
	for i, n := range alphatoken.Normalizations {
		norms[i] = string(n)
	}
	return checkFlags(inUnit("rho", *s.rho), oneOf("rho-schedule", *s.schedule, schedules...), inUnit("rho-start", *s.rhoStart),
		nonNegativeFloat("lambda", *s.lambda), atLeast("window", *s.window, 1), atLeast("k", *s.k, 1),
		atLeast("val-examples", *s.valN, 1), atLeast("val-refresh", *s.refresh, 1), oneOf("normalize", *s.normalize, norms...),
		oneOf("ghost", *s.ghost, string(alphatoken.GhostAuto), string(alphatoken.GhostAlways), string(alphatoken.GhostNever)))
}

// options are the method options of the flags, with the parameters given on the command line
// (the others keep the method's own default).
func (s *selectionFlags) options(params map[string]*paramValue) methods.Options {
	o := methods.Options{Rho: *s.rho, Schedule: methods.Schedule(*s.schedule), BudgetMatched: *s.budget}
	if o.Schedule != methods.ScheduleConstant {
		o.RhoStart = *s.rhoStart
	}
	for n, pv := range params {
		if pv.set {
			if o.Params == nil {
				o.Params = map[string]float64{}
			}
			o.Params[n] = pv.v
		}
	}
	return o
}

// valuation is AlphaToken's configuration of the flags.
func (s *selectionFlags) valuation() alphatoken.Config {
	v := alphatoken.DefaultConfig()
	v.Lambda, v.Window, v.Blocks = *s.lambda, *s.window, *s.k
	v.ValExamples, v.ValRefresh = *s.valN, *s.refresh
	v.Normalize, v.Ghost = alphatoken.Normalization(*s.normalize), alphatoken.GhostMode(*s.ghost)
	return v
}

// loadFisher reads --fisher into env for a method that needs it (none: the stability term off);
// for one that does not, a given --fisher is reported as unused.
func (s *selectionFlags) loadFisher(env *methods.Env, info *methods.Info, unused func(flag, value string)) error {
	if !info.NeedsInput(methods.NeedFisher) {
		unused("--fisher", *s.fisher)
		return nil
	}
	switch *s.fisher {
	case "":
	case "none":
		env.FisherNone = true
	default:
		f, err := alphatoken.LoadFisher(*s.fisher)
		if err != nil {
			return err
		}
		env.Fisher = f
	}
	return nil
}

// paramFlags declares one flag per method parameter.
func paramFlags(fs *flag.FlagSet, ps []methods.Param) map[string]*paramValue {
	m := map[string]*paramValue{}
	for _, p := range ps {
		pv := &paramValue{v: p.Default}
		m[p.Name] = pv
		fs.Var(pv, p.Name, p.Usage)
	}
	return m
}

// unusedWarner warns about a flag given for a method that does not use it.
func unusedWarner(method string) func(flag, value string) {
	return func(flag, value string) {
		if value != "" {
			logf("warning: %s is not used by method %s", flag, method)
		}
	}
}

// methodFlags are the flags of an SFT token-selection method, shared by train-sft and score: the
// selection flags, --precondition, the inputs --ref and --helper, and every parameter a
// registered method declares.
type methodFlags struct {
	selectionFlags
	precondition *string
	ref, helper  *string
	cache        *string
	params       map[string]*paramValue
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
	return &methodFlags{
		selectionFlags: addSelectionFlags(fs, withRefresh, selectionHelp{
			rho:    "ρ: share of response tokens kept (AlphaToken's; a budget-matched baseline's budget)",
			budget: "baselines keep ρ with AlphaToken's scope (one threshold per batch) instead of their native ratio or threshold",
			valN:   "B_val: validation examples behind G",
			val:    "validation JSONL of the target task (B_val examples are used)",
		}),
		precondition: fs.String("precondition", string(alphatoken.PrecondNone), "values predict: none, an SGD step (the paper's); adam, the trainer's AdamW step "+
			"(G and P divided by √v̂+ε, v̂ the optimizer's bias-corrected second moment; score reads it from --model's trainer_state; SPEC §4)"),
		ref:    fs.String("ref", "", "reference checkpoint θ_ref of the stability term (default: --model at its start, so with score, which does not train, Φ_prx is 0 without --ref)"),
		helper: fs.String("helper", "", "helper checkpoint: the model fine-tuned on a clean held-out slice of the target data (token-cleaning, rho1)"),
		cache:  fs.String("offline-cache", "", "directory to cache offline token scores in (default: recompute them)"),
		params: paramFlags(fs, methods.AllParams()),
	}
}

// check validates the method flags that do not depend on the model.
func (mf *methodFlags) check() error {
	return checkFlags(mf.selectionFlags.check(),
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
	v := mf.valuation()
	if *mf.precondition == string(alphatoken.PrecondAdam) {
		v.Precondition = alphatoken.PrecondAdam // none stays "" (the configuration's JSON without the extension)
	}
	env := &methods.Env{LM: rs.lm, Valuation: v, Options: mf.options(mf.params), Steps: rs.steps, BatchSize: rs.batch, MaxLen: rs.maxLen,
		Cache: *mf.cache, Log: os.Stderr}
	unused := unusedWarner(name)
	if info.NeedsInput(methods.NeedVal) && *mf.val != "" {
		if env.Val, _, err = data.ReadExamples(*mf.val, rs.tok, rs.opts); err != nil {
			return nil, err
		}
	} else if !info.NeedsInput(methods.NeedVal) {
		unused("--val", *mf.val)
	}
	if err := mf.loadFisher(env, info, unused); err != nil {
		return nil, err
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
