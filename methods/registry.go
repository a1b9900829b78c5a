package methods

import (
	"io"

	"github.com/alphatoken/alphatoken/alphatoken/train"
)

// Need is an input a method requires besides the model being trained. Each need has one
// command-line flag, which errors name.
type Need string

const (
	NeedVal    Need = "val"    // validation examples of the target task
	NeedFisher Need = "fisher" // a Fisher of θ_ref, or an explicit "none" (the stability term off)
	NeedRef    Need = "ref"    // θ_ref, the stability term's anchor (default: the model at its start)
	NeedHelper Need = "helper" // π_0 fine-tuned on a clean held-out slice of the target data
)

// Flag is the command-line flag that supplies the need.
func (n Need) Flag() string { return "--" + string(n) }

// what says what the need is, for error messages.
func (n Need) what() string {
	switch n {
	case NeedVal:
		return "validation examples of the target task (JSONL)"
	case NeedFisher:
		return "a Fisher file of θ_ref from `alphatoken fisher`, or `none` to turn the stability term off"
	case NeedRef:
		return "the reference checkpoint θ_ref"
	case NeedHelper:
		return "a checkpoint of the model fine-tuned on a clean held-out slice of the target data " +
			"(train one with `alphatoken train-sft --method full` on that slice)"
	}
	return string(n)
}

// Param is a numeric setting of a method (a threshold, a temperature, a share), declared with its
// default so that the CLI and the ablation runner can offer and check it.
type Param struct {
	Name    string // as a flag: --name; as a suite field: "params": {"name": …}
	Default float64
	Usage   string
}

// Info describes a registered method.
type Info struct {
	Name    string
	Summary string // one line, for -h
	Needs   []Need
	Params  []Param
	// Selects: the method keeps a share of each batch's response tokens, so ρ, --rho-schedule and
	// --budget-matched apply to it.
	Selects bool
	// Native is the method's own keep ratio (its paper's default), used unless the run is budget
	// matched; 0 means it keeps ρ.
	Native float64
	// Threshold: the native mask is a fixed threshold with a data-dependent keep ratio (STM, XTF);
	// only a budget-matched run has a k for a ρ schedule to move.
	Threshold bool
	// Valuation: the method ranks by AlphaToken values (`alphatoken score` can score a file with it).
	Valuation bool
	// Build constructs the method for a run; Lookup's caller checks the needs and the options first.
	Build func(env *Env) (train.Method, error)
}

// NeedsInput reports whether the method needs n.
func (in *Info) NeedsInput(n Need) bool {
	for _, x := range in.Needs {
		if x == n {
			return true
		}
	}
	return false
}

// Param returns the declared parameter called name (nil if the method has none by that name).
func (in *Info) Param(name string) *Param {
	for i := range in.Params {
		if in.Params[i].Name == name {
			return &in.Params[i]
		}
	}
	return nil
}

var registry = newCatalog("", func(in *Info) *Info { return in })

// Register adds a method; every method file calls it from init. A second registration of a name
// is a programming error and panics.
func Register(in Info) { registry.add(in, in.Build != nil) }

// Names lists the registered methods, sorted.
func Names() []string { return registry.names() }

// Lookup returns a registered method; an unknown name is an error that lists the registered ones.
func Lookup(name string) (*Info, error) { return registry.lookup(name) }

// Build checks the environment against the method's needs and options, then constructs it.
func Build(name string, env *Env) (train.Method, error) {
	in, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	if err := env.check(in); err != nil {
		return nil, err
	}
	e := *env
	e.info = in
	m, err := in.Build(&e)
	if err == nil && env.Classes != nil {
		if sel, ok := m.(*selective); ok {
			sel.classes = env.Classes
		}
	}
	return m, err
}

// Usage writes one line per registered method: name, what it needs, and its summary (for -h).
func Usage(w io.Writer) { registry.usage(w, Need.Flag) }

// AllParams lists every parameter any method declares, by name (the first declaration's default
// and usage; methods that share a name share its meaning).
func AllParams() []Param { return registry.params() }
