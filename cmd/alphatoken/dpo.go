package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/dpo"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/methods"
	"github.com/alphatoken/alphatoken/model"
)

func init() {
	register("train-dpo", "preference optimisation (DPO, IPO, hinge) on preference pairs with a token-selection method", runDPO)
}

// dpoFlags are the flags of a DPO method, shared by train-dpo and score on preference data: the
// selection flags, the DPO loss (β, type, thresholds, coefficient), the reference, SePO's oracle
// pair, and every parameter a DPO method declares.
type dpoFlags struct {
	selectionFlags
	beta                         *float64
	loss, threshold, coefficient *string
	ref, refLogps, cache         *string
	oracle, oracleRef            *string
	params                       map[string]*paramValue
}

func addDPOFlags(fs *flag.FlagSet, training bool) *dpoFlags {
	losses := make([]string, len(dpo.LossTypes))
	for i, l := range dpo.LossTypes {
		losses[i] = string(l)
	}
	return &dpoFlags{
		selectionFlags: addSelectionFlags(fs, training, selectionHelp{
			rho:    "ρ: share of each branch's response tokens kept (AlphaToken's; a budget-matched baseline's budget)",
			budget: "baselines keep ρ of each branch of the batch instead of their native ratio or threshold",
			valN:   "B_val: validation pairs behind J_tgt",
			val:    "validation preference pairs of the target task (B_val are used: AlphaToken's J_tgt)",
		}),
		beta:        fs.Float64("beta", dpo.DefaultBeta, "β of the DPO loss"),
		loss:        fs.String("loss", string(dpo.LossSigmoid), "pair loss (TRL's loss_type): "+strings.Join(losses, ", ")),
		threshold:   fs.String("dpo-threshold", string(dpo.Separate), "masks keep the top ρ of each branch (separate) or of the batch's tokens (shared)"),
		coefficient: fs.String("dpo-coefficient", string(dpo.Unmasked), "pair weight of the masked loss from the unmasked or the masked logit"),
		ref:         fs.String("ref", "", "DPO reference model π_ref, also θ_ref of the stability term (default: --model at its start)"),
		refLogps:    fs.String("ref-logps", string(methods.RefPrecompute), "reference log-probabilities: precompute (once, cached in --cache) or online (a reference forward every step)"),
		cache:       fs.String("cache", "", "directory for cached reference and oracle log-probabilities (default: OUT/cache; none when empty for score)"),
		oracle:      fs.String("oracle", "", "SePO: π^o, the oracle model (DPO-trained, same vocabulary)"),
		oracleRef:   fs.String("oracle-ref", "", "SePO: π^o_ref, the oracle's SFT reference"),
		params:      paramFlags(fs, methods.AllDPOParams()),
	}
}

func dpoUsage(fs *flag.FlagSet) {
	usage := fs.Usage
	fs.Usage = func() {
		usage()
		fmt.Fprintln(fs.Output(), "\nmethods (--method), with the inputs and parameters each takes:")
		methods.DPOUsage(fs.Output())
	}
}

// env assembles a DPO method's environment: the options, the reference (--ref or a copy of the
// policy), and each input the method needs.
func (f *dpoFlags) env(name string, rs runSpec, cacheDir string) (*methods.DPOEnv, error) {
	info, err := methods.LookupDPO(name)
	if err != nil {
		return nil, err
	}
	env := &methods.DPOEnv{
		Env: methods.Env{LM: rs.lm, Valuation: f.valuation(), Options: f.options(f.params), Steps: rs.steps, BatchSize: rs.batch, MaxLen: rs.maxLen,
			Cache: cacheDir, Log: os.Stderr},
		DPO: dpo.Config{Beta: *f.beta, Loss: dpo.LossType(*f.loss), Threshold: dpo.Threshold(*f.threshold),
			Coefficient: dpo.Coefficient(*f.coefficient)},
		RefLogps: methods.RefLogps(*f.refLogps),
		Stop:     rs.stop,
	}
	if err := env.DPO.Validate(); err != nil {
		return nil, err
	}
	if *f.ref != "" {
		ref, refTok, err := openModel(rs.backend, *f.ref, rs.dtype)
		if err != nil {
			return nil, fmt.Errorf("--ref: %w", err)
		}
		if refTok.VocabSize() != rs.tok.VocabSize() || ref.Config.VocabSize != rs.lm.Config.VocabSize {
			return nil, fmt.Errorf("--ref %s: its vocabulary (tokenizer %d ids, vocab_size %d) differs from --model's (tokenizer %d ids, vocab_size %d): DPO compares their log-probabilities token by token",
				*f.ref, refTok.VocabSize(), ref.Config.VocabSize, rs.tok.VocabSize(), rs.lm.Config.VocabSize)
		}
		env.Ref = ref
	} else if env.Ref, err = rs.lm.Clone(); err != nil {
		return nil, err
	}
	unused := unusedWarner(name)
	if info.NeedsInput(methods.NeedVal) && *f.val != "" {
		val, _, err := data.ReadPairs(*f.val, rs.tok, rs.opts)
		if err != nil {
			return nil, err
		}
		env.ValPairs = dpo.Examples(val)
	} else if !info.NeedsInput(methods.NeedVal) {
		unused("--val", *f.val)
	}
	if err := f.loadFisher(&env.Env, &info.Info, unused); err != nil {
		return nil, err
	}
	if info.NeedsInput(methods.NeedOracle) {
		for _, o := range []struct {
			flag, dir string
			dst       **model.LM
		}{{"--oracle", *f.oracle, &env.Oracle}, {"--oracle-ref", *f.oracleRef, &env.OracleRef}} {
			if o.dir == "" {
				continue
			}
			m, mTok, err := openModel(rs.backend, o.dir, rs.dtype)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", o.flag, err)
			}
			if mTok.VocabSize() != rs.tok.VocabSize() {
				return nil, fmt.Errorf("%s %s: its tokenizer has %d ids, --model's %d: the oracle must share the policy's vocabulary",
					o.flag, o.dir, mTok.VocabSize(), rs.tok.VocabSize())
			}
			*o.dst = m
		}
	} else {
		unused("--oracle", *f.oracle)
		unused("--oracle-ref", *f.oracleRef)
	}
	return env, nil
}

func runDPO(args []string) error {
	fs, backendSpec := newFlags("train-dpo", "--model DIR --data PAIRS.jsonl --out DIR [--method dpo] [flags]")
	modelDir := fs.String("model", "", "checkpoint to train: the policy's start (e.g. a uniform SFT warm-start from train-sft)")
	dataPath := fs.String("data", "", "preference pairs, JSONL or Parquet in a TRL preference format: {prompt,chosen,rejected} (text or messages), {chosen,rejected} (implicit prompt), {prompt_ids,chosen_ids,rejected_ids}")
	evalPath := fs.String("eval", "", "optional held-out pairs: eval_loss, eval_reward_accuracy and eval_reward_margin are logged")
	rf := addRunFlags(fs, "output directory: the final model at the top, checkpoint-N/ for resuming, metrics.jsonl, tb/ (TensorBoard), cache/ (reference log-probabilities)", false)
	method := fs.String("method", "dpo", "DPO method (listed below): "+strings.Join(methods.DPONames(), ", "))
	o := addOptFlags(fs, optHelp{batch: 8,
		steps:         "optimizer steps (default: --epochs over the pairs)",
		epochs:        "epochs, when --steps is not given",
		batchHelp:     "pairs per step (a step's batch holds 2× as many sequences: chosen, then rejected)",
		maxLen:        "context length; a pair longer than it is an error",
		warmup:        "warm-up steps (default steps/20)",
		seed:          "data-order, random-mask and anchor-sampling seed",
		template:      "chat template for text data: auto, jinja, plain, chatml, llama3, gemma",
		evalEveryHelp: "held-out pair metrics every N steps (with --eval)",
	})
	f := addDPOFlags(fs, true)
	dpoUsage(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := need(fs, "model", "data", "out"); err != nil {
		return err
	}
	if err := checkFlags(o.check(fs), f.check()); err != nil {
		return err
	}
	out := rf.out
	tc := o.config(*out)
	tc.GroupSize = 2
	if err := rf.apply(&tc); err != nil {
		return err
	}
	lm, tok, tmpl, err := openModelTemplate(*backendSpec, *modelDir, *o.dtype, *o.template)
	if err != nil {
		return err
	}
	opts := data.Options{MaxLen: *o.maxLen, Template: tmpl}
	pairs, _, err := data.ReadPairs(*dataPath, tok, opts)
	if err != nil {
		return err
	}
	examples := dpo.Examples(pairs)
	n := *o.steps
	if n == 0 {
		n = train.StepsForEpochs(*o.epochs, len(pairs), *o.batch**rf.gradAccum)
	}
	tc.Steps = n
	cacheDir := *f.cache
	if cacheDir == "" {
		cacheDir = filepath.Join(*out, "cache")
	}
	// --out is taken (and with --overwrite cleared) once the model and the data have loaded, before
	// the method builds: precomputed reference log-probabilities are cached in OUT/cache by default.
	if err := rf.prepare(); err != nil {
		return err
	}
	defer rf.release()
	rs := runSpec{lm: lm, tok: tok, opts: opts, backend: *backendSpec, dtype: *o.dtype, steps: n, batch: *o.batch, maxLen: *o.maxLen,
		stop: tmpl.Stop(tok)}
	env, err := f.env(*method, rs, cacheDir)
	if err != nil {
		return err
	}
	env.Seed = *o.seed
	m, err := methods.BuildDPO(*method, env)
	if err != nil {
		return err
	}
	tr, err := train.New(lm, tok, tc, m)
	if err != nil {
		return err
	}
	if *evalPath != "" {
		held, _, err := data.ReadPairs(*evalPath, tok, opts)
		if err != nil {
			return err
		}
		ev, err := methods.NewPairEval(env, dpo.Examples(held))
		if err != nil {
			return err
		}
		tr.Hooks = append(tr.Hooks, methods.PairEvalHook(ev, *o.evalEvery))
	}
	if err := rf.start(tr, fs); err != nil {
		return err
	}
	logf("train-dpo %s; %s β=%g, thresholds %s, coefficient %s, reference log-probs %s", train.Describe(lm, tr.Config, m, len(pairs)),
		env.DPO.Loss, env.DPO.Beta, env.DPO.Threshold, env.DPO.Coefficient, env.RefLogps)
	if err := tr.Run(examples); err != nil {
		return err
	}
	if err := saveFinal(lm, tok, *out); err != nil {
		return err
	}
	logf("saved %s", *out)
	return nil
}
