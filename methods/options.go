package methods

import (
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
)

// Schedule is how the keep ratio moves over training.
type Schedule string

const (
	ScheduleConstant Schedule = "constant" // ρ at every step (the default)
	ScheduleLinear   Schedule = "linear"   // ρ_start → ρ_end linearly
	ScheduleCosine   Schedule = "cosine"   // ρ_start → ρ_end along a half cosine (slow at both ends)
)

// Schedules lists the valid Schedule values, default first.
var Schedules = []Schedule{ScheduleConstant, ScheduleLinear, ScheduleCosine}

// Options are a run's selection settings: everything about a method except its inputs. It is
// plain data (recorded with results and in cache keys); ρ lives here and nowhere else.
type Options struct {
	// Rho is ρ, the share of response tokens kept (SPEC §6; AlphaToken's, and the budget of a
	// budget-matched baseline). Under a schedule it is ρ_end.
	Rho float64 `json:"rho"`
	// Schedule moves the keep ratio from RhoStart (default 1: every token) at step 0 to the
	// method's ratio at the last step ("" is constant).
	Schedule Schedule `json:"rho_schedule,omitempty"`
	RhoStart float64  `json:"rho_start,omitempty"`
	// BudgetMatched makes a baseline keep ρ (not its native ratio or threshold) with AlphaToken's
	// scope, one threshold over the batch (a fair comparison at equal token budget).
	BudgetMatched bool `json:"budget_matched,omitempty"`
	// Params sets method parameters by name (absent: the declared default).
	Params map[string]float64 `json:"params,omitempty"`
}

// DefaultOptions keeps SPEC's ρ at every step.
func DefaultOptions() Options { return Options{Rho: alphatoken.DefaultRho} }

// Env is what a method is built from: the model to train and every input a method may need. The
// caller fills what it has; Build checks the method's needs against it.
type Env struct {
	LM     *model.LM // θ, the model to be trained, at its start (π_0 for the baselines)
	Ref    *model.LM // θ_ref of the stability term (nil: a clone of LM at its start)
	Helper *model.LM // π_0 fine-tuned on a clean held-out slice (Token Cleaning's reference, Rho-1's RM)
	// Fisher of θ_ref for the stability term. FisherNone records an explicit "none" (the stability
	// term off); a method that needs a Fisher and gets neither is an error.
	Fisher     *alphatoken.Fisher
	FisherNone bool
	Val        []data.Example    // validation examples of the target task (B_val of them are used)
	Valuation  alphatoken.Config // AlphaToken's λ, W, K, B_val, normalisation … (its Fisher kind follows Fisher)
	Options    Options
	Steps      int    // the training run's total steps (schedules, chunks)
	BatchSize  int    // sequences per step (offline passes use it too)
	MaxLen     int    // the training context length
	Cache      string // directory for offline token scores ("" recomputes them)
	Log        io.Writer
	// Classes, when set, marks per position (like an offline TokenTable: Values[i][p] for the label
	// position p of training example i) the tokens of one class, 1, against 0 (e.g. MiniPy's
	// "decision" tokens). Methods with a hard mask then also report the metrics kept_class (kept
	// tokens of the class) and tokens_class (response tokens of the class) per step: a diagnostic,
	// with no effect on what is trained.
	Classes *TokenTable

	info *Info
}

// CheckOptions validates a run's options for method name (ρ, schedule, budget matching, the
// parameters' names), before any model is at hand: the ablation runner checks suites with it.
func CheckOptions(name string, o Options) error {
	in, err := Lookup(name)
	if err != nil {
		return err
	}
	return checkOptions(in, o)
}

// check validates the options and that every need of the method is met.
func (e *Env) check(in *Info) error {
	if e.LM == nil {
		return errors.New("methods: no model to train")
	}
	if err := checkOptions(in, e.Options); err != nil {
		return err
	}
	return e.checkInputs(in)
}

func checkOptions(in *Info, o Options) error {
	if !(o.Rho > 0 && o.Rho <= 1) {
		return errors.Errorf("methods: ρ (--rho) must be in (0, 1], got %g", o.Rho)
	}
	switch o.Schedule {
	case "", ScheduleConstant:
	case ScheduleLinear, ScheduleCosine:
		if !in.Selects {
			return errors.Errorf("methods: method %q keeps no ρ share, so --rho-schedule %s does not apply", in.Name, o.Schedule)
		}
		if in.Threshold && !o.BudgetMatched {
			return errors.Errorf("methods: method %q drops tokens by a fixed threshold, so --rho-schedule %s needs --budget-matched", in.Name, o.Schedule)
		}
		if o.RhoStart != 0 && !(o.RhoStart > 0 && o.RhoStart <= 1) {
			return errors.Errorf("methods: --rho-start must be in (0, 1], got %g", o.RhoStart)
		}
	default:
		return errors.Errorf("methods: unknown --rho-schedule %q (constant, linear, cosine)", o.Schedule)
	}
	if o.BudgetMatched && !in.Selects {
		return errors.Errorf("methods: method %q keeps no ρ share, so --budget-matched does not apply", in.Name)
	}
	var unknown []string
	for name := range o.Params {
		if in.Param(name) == nil {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		var have []string
		for _, p := range in.Params {
			have = append(have, "--"+p.Name)
		}
		if len(have) == 0 {
			have = []string{"none"}
		}
		return errors.Errorf("methods: method %q has no parameter %s (its parameters: %s)", in.Name,
			"--"+strings.Join(unknown, ", --"), strings.Join(have, ", "))
	}
	return nil
}

func (e *Env) checkInputs(in *Info) error {
	for _, n := range in.Needs {
		switch n {
		case NeedVal:
			if len(e.Val) == 0 {
				return needError(in, n)
			}
		case NeedHelper:
			if e.Helper == nil {
				return needError(in, n)
			}
			if !e.Helper.Config.Equal(e.LM.Config) {
				return errors.Errorf("methods: method %q: the helper model (%s) has a different config than the model being trained", in.Name, NeedHelper.Flag())
			}
		case NeedFisher:
			if e.Fisher == nil && !e.FisherNone {
				return needError(in, n)
			}
		}
	}
	return nil
}

func needError(in *Info, n Need) error {
	return errors.Errorf("methods: method %q needs %s: %s", in.Name, n.Flag(), n.what())
}

// Param is the value of a method parameter: the option if set, else its declared default.
func (e *Env) Param(name string) float64 {
	if v, ok := e.Options.Params[name]; ok {
		return v
	}
	if p := e.info.Param(name); p != nil {
		return p.Default
	}
	panic(errors.Errorf("methods: %s reads undeclared parameter %q", e.info.Name, name))
}

// KeepRatio is the ratio the method keeps at the end of training: ρ when budget matched or when
// the method has no native ratio, else its native ratio.
func (e *Env) KeepRatio() float64 {
	if e.info.Native > 0 && !e.Options.BudgetMatched {
		return e.info.Native
	}
	return e.Options.Rho
}

// rhoSchedule is a resolved keep-ratio schedule over a run of steps.
type rhoSchedule struct {
	kind       Schedule
	start, end float64
	steps      int
}

func (e *Env) schedule() rhoSchedule {
	s := rhoSchedule{kind: e.Options.Schedule, start: e.Options.RhoStart, end: e.KeepRatio(), steps: e.Steps}
	if s.kind == "" {
		s.kind = ScheduleConstant
	}
	if s.start == 0 {
		s.start = 1
	}
	return s
}

// at is the keep ratio at a step: constant end, or start → end over steps 0 … steps−1.
func (s rhoSchedule) at(step int) float64 {
	if s.kind == ScheduleConstant {
		return s.end
	}
	progress := math.Min(float64(step)/float64(max(s.steps-1, 1)), 1)
	switch s.kind {
	case ScheduleLinear:
		return s.start + (s.end-s.start)*progress
	case ScheduleCosine:
		return s.end + (s.start-s.end)*0.5*(1+math.Cos(math.Pi*progress))
	}
	panic("methods: unknown schedule " + string(s.kind))
}

func (e *Env) logf(format string, args ...any) {
	w := e.Log
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintf(w, format+"\n", args...)
}
