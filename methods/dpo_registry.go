package methods

import (
	"io"

	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/dpo"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
)

// Preference-optimisation methods (`train-dpo --method`) live in a registry of their own, beside
// the SFT one: the same Info (needs, parameters, ρ, budget matching, one file per method), built
// from a DPOEnv. A DPO method is a train.Method over pair batches (package dpo's layout: chosen
// rows, then rejected rows; the trainer's GroupSize 2).

// NeedOracle is SePO's oracle pair: π^o (--oracle, a DPO-trained model) and its SFT reference
// π^o_ref (--oracle-ref), both with the policy's vocabulary.
const NeedOracle Need = "oracle"

// RefLogps is how the reference model's log-probabilities reach the loss.
type RefLogps string

const (
	RefPrecompute RefLogps = "precompute" // one pass over the training pairs before step 0, cached (TRL's precompute_ref_log_probs)
	RefOnline     RefLogps = "online"     // a reference forward pass in every step
)

// DPOInfo describes a registered DPO method; Build replaces Info.Build.
type DPOInfo struct {
	Info
	Build func(env *DPOEnv) (train.Method, error)
}

// DPOEnv is what a DPO method is built from. Env.LM is the policy at its start, Env.Ref the DPO
// reference (also θ_ref of AlphaToken's stability term), Env.BatchSize counts pairs, Env.Val is
// unused (ValPairs holds the validation pairs).
type DPOEnv struct {
	Env
	DPO      dpo.Config
	ValPairs []data.Example // validation pairs, flattened chosen, rejected, … (AlphaToken's J_tgt)
	RefLogps RefLogps
	// Oracle and OracleRef are SePO's π^o and π^o_ref.
	Oracle, OracleRef *model.LM
	Seed              uint64 // TI-DPO's anchor sampling (with the step)
	Stop              []int  // token ids that end a sampled anchor (the template's stop tokens)

	dinfo *DPOInfo
}

var dpoRegistry = newCatalog("DPO ", func(in *DPOInfo) *Info { return &in.Info })

// RegisterDPO adds a DPO method (from init); a second registration of a name panics.
func RegisterDPO(in DPOInfo) { dpoRegistry.add(in, in.Build != nil) }

// DPONames lists the registered DPO methods, sorted.
func DPONames() []string { return dpoRegistry.names() }

// LookupDPO returns a registered DPO method; an unknown name lists the registered ones.
func LookupDPO(name string) (*DPOInfo, error) { return dpoRegistry.lookup(name) }

// CheckDPOOptions validates a run's options for DPO method name before any model is at hand.
func CheckDPOOptions(name string, o Options) error {
	in, err := LookupDPO(name)
	if err != nil {
		return err
	}
	return checkOptions(&in.Info, o)
}

// BuildDPO checks the environment against the method's needs and options, then constructs it.
func BuildDPO(name string, env *DPOEnv) (train.Method, error) {
	in, err := LookupDPO(name)
	if err != nil {
		return nil, err
	}
	if err := env.check(in); err != nil {
		return nil, err
	}
	e := *env
	e.info, e.dinfo = &in.Info, in
	return in.Build(&e)
}

// DPOUsage writes one line per registered DPO method (for train-dpo -h).
func DPOUsage(w io.Writer) {
	dpoRegistry.usage(w, func(n Need) string {
		if n == NeedOracle {
			return "--oracle --oracle-ref"
		}
		return n.Flag()
	})
}

// AllDPOParams lists every parameter a DPO method declares, by name.
func AllDPOParams() []Param { return dpoRegistry.params() }

// check validates the DPO settings, the options and every need of the method.
func (e *DPOEnv) check(in *DPOInfo) error {
	if e.LM == nil {
		return errors.New("methods: no model to train")
	}
	if e.Ref == nil {
		return errors.New("methods: DPO needs a reference model (--ref; by default the starting --model)")
	}
	if e.Ref.Config.VocabSize != e.LM.Config.VocabSize {
		return errors.Errorf("methods: --ref: the reference model's vocabulary has %d tokens, the policy's (--model) %d: DPO compares their log-probabilities token by token",
			e.Ref.Config.VocabSize, e.LM.Config.VocabSize)
	}
	if err := e.DPO.Validate(); err != nil {
		return err
	}
	switch e.RefLogps {
	case RefPrecompute, RefOnline:
	default:
		return errors.Errorf("methods: unknown --ref-logps %q (precompute, online)", e.RefLogps)
	}
	if err := checkOptions(&in.Info, e.Options); err != nil {
		return err
	}
	for _, n := range in.Needs {
		switch n {
		case NeedVal:
			if len(e.ValPairs) == 0 {
				return errors.Errorf("methods: method %q needs --val: validation preference pairs of the target task (JSONL or Parquet, a TRL preference format)", in.Name)
			}
		case NeedFisher:
			if e.Fisher == nil && !e.FisherNone {
				return needError(&in.Info, n)
			}
		case NeedOracle:
			if e.Oracle == nil || e.OracleRef == nil {
				return errors.Errorf("methods: method %q needs its oracle pair: --oracle (π^o, a DPO-trained model) and --oracle-ref (π^o_ref, its SFT reference)", in.Name)
			}
			for flag, m := range map[string]*model.LM{"--oracle": e.Oracle, "--oracle-ref": e.OracleRef} {
				if m.Config.VocabSize != e.LM.Config.VocabSize {
					return errors.Errorf("methods: %s: the oracle's vocabulary has %d tokens, the policy's %d: SePO scores the policy's tokens with it",
						flag, m.Config.VocabSize, e.LM.Config.VocabSize)
				}
			}
		}
	}
	return nil
}
