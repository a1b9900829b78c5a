package ablations

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/ablations/minibench"
	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/dpo"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/methods"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// DPORunner runs the preference-optimisation experiments of a preset on the preference MiniBench:
// the SFT runner's benchmark, reference model and evaluator; the preference pairs; the uniform SFT
// warm-start (the preset's Full FT run at DPOPreset.WarmStartSeed, cached in the SFT run cache),
// which is π_ref of every DPO run and θ_ref of AlphaToken's stability term; and a cache of DPO runs
// keyed by their full configuration, so suites share runs and an interrupted suite resumes (a run
// interrupted mid-training resumes from its last checkpoint).
//
// Evaluation of a DPO run (ablations/minibench/README.md, "Preference MiniBench"):
//
//	pair accuracy   % of held-out test pairs whose implicit reward margin
//	                β[(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))] is > 0 (a tie counts ½:
//	                at the warm-start, π = π_ref and every margin is 0, so it scores 50)
//	target          pass@1 of the programs the policy generates for the test prompts (the SFT target score)
//	preference      mean(pair accuracy, target): the paper's preference average of two benchmarks
//	retention       the SFT retention probes' mean
//	Overall         mean(preference, retention)
type DPORunner struct {
	*Runner
	DPO   DPOPreset
	Prefs *minibench.Prefs
	// Warm is the SFT warm-start (π_ref), WarmRun its SFT run.
	Warm    *model.LM
	WarmRun *RunResult
	// DPOSteps, when positive, replaces the DPO steps of every run (smoke runs; cached apart).
	DPOSteps int

	train, val, test, oracle []data.Example // flattened pairs: chosen, rejected, chosen, …
	testKinds                []string
	refTest                  *pairLogLiks // π_ref's log-likelihoods of the test pairs
	oracleLM                 *model.LM
}

// NewDPORunner builds the benchmark and the preference pairs, loads or pre-trains the reference
// model, and loads or trains the SFT warm-start.
func NewDPORunner(backend compute.Backend, preset, cacheDir string, log io.Writer) (*DPORunner, error) {
	dp, err := DPOPresetByName(preset)
	if err != nil {
		return nil, err
	}
	r, err := NewRunner(backend, preset, cacheDir, log)
	if err != nil {
		return nil, err
	}
	return newDPORunner(r, dp)
}

func newDPORunner(r *Runner, dp DPOPreset) (*DPORunner, error) {
	prefs, err := minibench.BuildPrefs(r.Bench, dp.Pairs)
	if err != nil {
		return nil, err
	}
	d := &DPORunner{Runner: r, DPO: dp, Prefs: prefs}
	for _, s := range prefs.Splits() {
		exs, err := d.encodePairs(s.Name, s.Pairs)
		if err != nil {
			return nil, err
		}
		switch s.Name {
		case "train":
			d.train = exs
		case "val":
			d.val = exs
		case "test":
			d.test = exs
		case "oracle":
			d.oracle = exs
		}
	}
	for _, q := range prefs.Test {
		d.testKinds = append(d.testKinds, q.Kind)
	}
	fmt.Fprintf(r.Log, "preference MiniBench %s: %d train, %d val, %d test, %d oracle pairs\n", prefs.Fingerprint(),
		len(prefs.Train), len(prefs.Val), len(prefs.Test), len(prefs.Oracle))
	d.WarmRun, err = r.RunRow(Row{Label: "SFT warm-start", Method: "full"}, dp.WarmStartSeed)
	if err != nil {
		return nil, errors.WithMessage(err, "ablations: the SFT warm-start")
	}
	if d.Warm, err = model.Load(r.Backend, d.WarmRun.Dir, dtypes.Float32); err != nil {
		return nil, errors.WithMessage(err, "ablations: loading the SFT warm-start")
	}
	fmt.Fprintf(r.Log, "SFT warm-start (π_ref): %s\n", d.WarmRun.Dir)
	return d, nil
}

// encodePairs encodes a split's pairs with the runner's tokenizer and DPO context.
func (d *DPORunner) encodePairs(split string, pairs []minibench.PrefPair) ([]data.Example, error) {
	return EncodePrefPairs(d.Tok, "minibench/prefs/"+split, pairs, d.DPO.Train.MaxLen)
}

// EncodePrefPairs encodes preference pairs as the runner's SFT examples are encoded (the plain
// template: <bos> prompt | response <eos>), flattened chosen, rejected, chosen, … (dpo.Examples'
// layout). A pair longer than maxLen is an error naming it.
func EncodePrefPairs(tok tokenizer.Tokenizer, source string, pairs []minibench.PrefPair, maxLen int) ([]data.Example, error) {
	tmpl := data.PlainTemplate{}
	out := make([]data.Example, 0, 2*len(pairs))
	for i, q := range pairs {
		prompt := tmpl.Prompt(tok, []data.Message{{Role: "user", Content: q.Prompt}})
		for _, b := range []struct{ name, text string }{{"chosen", q.Chosen}, {"rejected", q.Rejected}} {
			ids := append(append([]int(nil), prompt...), tmpl.Response(tok, b.text)...)
			if len(ids) > maxLen {
				return nil, errors.Errorf("ablations: preference pair %s[%d] (%s, %s): %d tokens, more than the DPO context %d",
					source, i, q.ID, b.name, len(ids), maxLen)
			}
			out = append(out, data.Example{IDs: ids, PromptLen: len(prompt), Source: fmt.Sprintf("%s[%d] (%s)", source, i, b.name)})
		}
	}
	return out, nil
}

// DPORunConfig is the resolved configuration of one DPO run: everything its result depends on.
type DPORunConfig struct {
	Preset    string           `json:"preset"`
	Design    string           `json:"design"`
	Bench     string           `json:"bench"`
	Prefs     string           `json:"prefs"`
	WarmStart string           `json:"warm_start"` // the warm-start's SFT run directory (content key)
	Method    string           `json:"method"`
	Seed      uint64           `json:"seed"`
	Train     DPOTrainSettings `json:"train"`
	DPO       dpo.Config       `json:"dpo"`
	// Options are the selection settings (ρ in Options.Rho).
	Options   methods.Options    `json:"options"`
	Valuation *alphatoken.Config `json:"valuation,omitempty"`
	Fisher    string             `json:"fisher,omitempty"` // the warm-start Fisher's cache name
	Oracle    string             `json:"oracle,omitempty"` // SePO's oracle directory name
	Eval      EvalOptions        `json:"eval"`
}

// PairScores are a model's results on the held-out test pairs, in percent.
type PairScores struct {
	Accuracy float64 `json:"accuracy"` // implicit reward margin > 0 (ties ½)
	Margin   float64 `json:"margin"`   // mean implicit reward margin (nats × β)
	// LikelihoodAccuracy: log π(y_w) > log π(y_l) (ties ½), the policy's own preference.
	LikelihoodAccuracy float64            `json:"likelihood_accuracy"`
	ByKind             map[string]float64 `json:"accuracy_by_kind"` // Accuracy per perturbation kind
}

// DPOCurvePoint is one logged DPO training step.
type DPOCurvePoint struct {
	Step           int     `json:"step"`
	Loss           float64 `json:"loss"` // the batch's (unmasked) DPO loss
	RewardAccuracy float64 `json:"reward_accuracy"`
	RewardMargin   float64 `json:"reward_margin"`
	KeptChosen     float64 `json:"kept_chosen,omitempty"` // share of the batch's chosen tokens kept
	KeptRejected   float64 `json:"kept_rejected,omitempty"`
	EvalLoss       float64 `json:"eval_loss,omitempty"` // held-out pairs (methods.PairEvalHook)
	EvalAccuracy   float64 `json:"eval_reward_accuracy,omitempty"`
	EvalMargin     float64 `json:"eval_reward_margin,omitempty"`
	ValLoss        float64 `json:"val_loss,omitempty"` // J_tgt at the last validation refresh (AlphaToken)
}

// DPORunResult is result.json of one DPO run.
type DPORunResult struct {
	Config     DPORunConfig       `json:"config"`
	Target     float64            `json:"target"` // pass@1 on the test prompts (%)
	Probes     map[string]float64 `json:"probes"`
	Retention  float64            `json:"retention"`
	Pairs      PairScores         `json:"pairs"`
	Preference float64            `json:"preference"` // mean(Pairs.Accuracy, Target)
	Overall    float64            `json:"overall"`    // mean(Preference, Retention)
	// StepSeconds is the training wall time per step (offline passes excluded).
	StepSeconds    float64         `json:"step_seconds"`
	TrainSeconds   float64         `json:"train_seconds"`
	OfflineSeconds float64         `json:"offline_seconds,omitempty"`
	EvalSeconds    float64         `json:"eval_seconds"`
	FisherSeconds  float64         `json:"fisher_seconds,omitempty"`
	Curve          []DPOCurvePoint `json:"curve,omitempty"`
	Commit         string          `json:"commit"`
	Date           string          `json:"date"`
	Dir            string          `json:"dir"`
}

// finish fills Preference and Overall.
func (res *DPORunResult) finish() {
	res.Preference = (res.Pairs.Accuracy + res.Target) / 2
	res.Overall = (res.Preference + res.Retention) / 2
}

// resolve builds the configuration of a row at a seed.
func (d *DPORunner) resolve(row DPORow, seed int) (DPORunConfig, error) {
	p, dp := d.Preset, d.DPO
	c := DPORunConfig{Preset: p.Name, Design: dp.Design, Bench: d.Bench.Fingerprint(), Prefs: d.Prefs.Fingerprint(),
		WarmStart: filepath.Base(d.WarmRun.Dir), Method: row.Method, Seed: uint64(seed), Train: dp.Train, Eval: p.Eval,
		DPO:     dpo.Config{Beta: dp.Beta, Loss: dp.Loss, Threshold: dpo.Separate, Coefficient: dpo.Unmasked},
		Options: Row{Overrides: row.Overrides}.options(p.Rho)}
	if row.Steps != nil {
		c.Train.Steps = *row.Steps
	}
	if row.LR != nil {
		c.Train.LR = *row.LR
	}
	if row.Beta != nil {
		c.DPO.Beta = *row.Beta
	}
	if d.DPOSteps > 0 {
		c.Train.Steps = d.DPOSteps
	}
	if row.Threshold != "" {
		c.DPO.Threshold = row.Threshold
	}
	if row.Coefficient != "" {
		c.DPO.Coefficient = row.Coefficient
	}
	if err := c.DPO.Validate(); err != nil {
		return c, errors.WithMessagef(err, "ablations: row %q", row.Label)
	}
	info, err := methods.LookupDPO(row.Method)
	if err != nil {
		return c, err
	}
	if !info.Selects {
		c.Options = methods.Options{Rho: 1, Params: row.Params} // keeps every token: no ρ
	}
	if err := methods.CheckDPOOptions(row.Method, c.Options); err != nil {
		return c, errors.WithMessagef(err, "ablations: row %q", row.Label)
	}
	if info.NeedsInput(methods.NeedOracle) {
		c.Oracle = filepath.Base(d.oracleDir())
	}
	if !info.Valuation {
		return c, nil
	}
	if row.Precondition != nil && *row.Precondition != "none" {
		return c, errors.Errorf("ablations: row %q: precondition %q is not implemented for DPO (SFT only)", row.Label, *row.Precondition)
	}
	v := row.Overrides.valuation(p.Valuation)
	if err := v.Validate(d.Warm.Config.Layers); err != nil {
		return c, errors.WithMessagef(err, "ablations: row %q", row.Label)
	}
	c.Valuation = &v
	if info.NeedsInput(methods.NeedFisher) && v.Fisher != alphatoken.FisherNone {
		c.Fisher = d.fisherName(v)
	}
	return c, nil
}

// RunDPORow runs (or loads from the cache) one row at one seed.
func (d *DPORunner) RunDPORow(row DPORow, seed int) (*DPORunResult, error) {
	if row.Method == WarmStartMethod {
		return d.warmResult()
	}
	cfg, err := d.resolve(row, seed)
	if err != nil {
		return nil, err
	}
	dir := d.runDir(cfg)
	configPath := filepath.Join(dir, "run.json")
	if res, err := cachedRun[DPORunConfig, DPORunResult](dir, "cached DPO run", row.Label, cfg); res != nil || err != nil {
		return res, err
	}
	// One process trains a run directory at a time: the lock is held from here to result.json.
	lock, res, err := claimRun[DPORunConfig, DPORunResult](dir, "cached DPO run", row.Label, cfg, d.Log)
	if lock == nil || err != nil {
		return res, err
	}
	defer lock.Release()
	if err := writeJSON(configPath, cfg); err != nil {
		return nil, err
	}
	return d.execute(cfg, dir)
}

// runDir is the cache directory of a DPO run: its method and the hash of its configuration.
func (d *DPORunner) runDir(cfg DPORunConfig) string {
	return filepath.Join(d.CacheDir, "dpo-runs", fmt.Sprintf("%s-%s", cfg.Method, hashJSON(cfg)))
}

// warmResult scores the warm-start as a row (no DPO: its pair accuracy is 50 by definition).
func (d *DPORunner) warmResult() (*DPORunResult, error) {
	ref, err := d.refLogLiks()
	if err != nil {
		return nil, err
	}
	sc := d.WarmRun.Scores
	res := &DPORunResult{Config: DPORunConfig{Preset: d.Preset.Name, Design: d.DPO.Design, Method: WarmStartMethod,
		WarmStart: filepath.Base(d.WarmRun.Dir), Seed: uint64(d.DPO.WarmStartSeed), Eval: d.Preset.Eval},
		Target: sc.Target, Probes: sc.Probes, Retention: sc.Retention, Pairs: d.pairScores(ref, ref, d.DPO.Beta),
		Dir: d.WarmRun.Dir, Commit: d.WarmRun.Commit, Date: d.WarmRun.Date}
	res.finish()
	return res, nil
}

// method builds a run's DPO method for lm (a fresh copy of the warm-start) through the registry,
// with every input it needs; it returns the environment too (for the held-out pair evaluation).
func (d *DPORunner) method(cfg DPORunConfig, lm *model.LM) (train.Method, *methods.DPOEnv, float64, error) {
	info, err := methods.LookupDPO(cfg.Method)
	if err != nil {
		return nil, nil, 0, err
	}
	env := &methods.DPOEnv{
		Env: methods.Env{LM: lm, Ref: d.Warm, Options: cfg.Options, Steps: cfg.Train.Steps, BatchSize: cfg.Train.Batch,
			MaxLen: cfg.Train.MaxLen, Cache: filepath.Join(d.CacheDir, "dpo-offline"), Log: d.Log},
		DPO: cfg.DPO, RefLogps: methods.RefPrecompute, Seed: cfg.Seed, Stop: data.PlainTemplate{}.Stop(d.Tok),
	}
	var fisherSecs float64
	if cfg.Valuation != nil {
		env.Valuation, env.ValPairs = *cfg.Valuation, d.val
		if cfg.Fisher != "" {
			if env.Fisher, fisherSecs, err = d.Fisher(*cfg.Valuation); err != nil {
				return nil, nil, 0, err
			}
		} else {
			env.FisherNone = true
		}
	}
	if info.NeedsInput(methods.NeedOracle) {
		if env.Oracle, err = d.Oracle(); err != nil {
			return nil, nil, 0, err
		}
		env.OracleRef = d.Warm
	}
	m, err := methods.BuildDPO(cfg.Method, env)
	return m, env, fisherSecs, err
}

// trainConfig is the trainer's configuration of a DPO run into dir.
func trainConfig(s DPOTrainSettings, seed uint64, dir string) train.Config {
	return train.Config{Steps: s.Steps, BatchSize: s.Batch, GroupSize: 2, MaxLen: s.MaxLen, BucketQuantum: 16, LR: s.LR,
		Seed: seed, CheckpointEvery: s.CheckpointEvery, KeepCheckpoints: 1, OutDir: dir, LogEvery: 10}
}

// newDPOTrainer is the trainer of a DPO run into dir; its checkpoints record the run's
// configuration hash, so a resume with another configuration is refused.
func newDPOTrainer(d *DPORunner, lm *model.LM, m train.Method, cfg DPORunConfig, dir string) (*train.Trainer, error) {
	tr, err := train.New(lm, d.Tok, trainConfig(cfg.Train, cfg.Seed, dir), m)
	if err != nil {
		return nil, err
	}
	tr.Log = d.Log
	tr.RunSettings = map[string]string{"ablations_dpo_run": hashJSON(cfg)}
	return tr, nil
}

// execute trains and evaluates one DPO run into dir.
func (d *DPORunner) execute(cfg DPORunConfig, dir string) (*DPORunResult, error) {
	res := &DPORunResult{Config: cfg, Dir: dir, Commit: Commit()}
	lm, err := d.Warm.Clone()
	if err != nil {
		return nil, err
	}
	m, env, fisherSecs, err := d.method(cfg, lm)
	if err != nil {
		return nil, err
	}
	res.FisherSeconds = fisherSecs
	tr, err := newDPOTrainer(d, lm, m, cfg, dir)
	if err != nil {
		return nil, err
	}
	if cfg.Train.EvalEvery > 0 {
		ev, err := methods.NewPairEval(env, d.test)
		if err != nil {
			return nil, err
		}
		tr.Hooks = append(tr.Hooks, methods.PairEvalHook(ev, cfg.Train.EvalEvery))
	}
	t, err := runTimed(tr, m, d.train, cfg.Train.Steps, dir, d.Log)
	if err != nil {
		return nil, err
	}
	res.TrainSeconds, res.OfflineSeconds, res.StepSeconds = t.train, t.offline, t.step
	for _, h := range tr.History {
		mt := h.Metrics
		cp := DPOCurvePoint{Step: h.Step, Loss: h.Loss, RewardAccuracy: mt["reward_accuracy"], RewardMargin: mt["reward_margin"],
			EvalLoss: mt["eval_loss"], EvalAccuracy: mt["eval_reward_accuracy"], EvalMargin: mt["eval_reward_margin"], ValLoss: mt["val_loss"]}
		if n := mt["tokens_chosen"]; n > 0 {
			cp.KeptChosen = mt["kept_chosen"] / n
		}
		if n := mt["tokens_rejected"]; n > 0 {
			cp.KeptRejected = mt["kept_rejected"] / n
		}
		res.Curve = append(res.Curve, cp)
	}
	start := time.Now()
	sc, err := d.Eval.Evaluate(lm)
	if err != nil {
		return nil, err
	}
	res.Target, res.Probes, res.Retention = sc.Target, sc.Probes, sc.Retention
	ref, err := d.refLogLiks()
	if err != nil {
		return nil, err
	}
	pol, err := d.logLiks(lm)
	if err != nil {
		return nil, err
	}
	res.Pairs = d.pairScores(pol, ref, cfg.DPO.Beta)
	res.finish()
	res.EvalSeconds = time.Since(start).Seconds()
	res.Date = time.Now().UTC().Format(time.RFC3339)
	if err := lm.Save(dir, model.SaveOptions{}); err != nil {
		return nil, err
	}
	if err := d.Tok.Save(dir); err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(dir, "result.json"), res); err != nil {
		return nil, err
	}
	removeCheckpoints(dir)
	fmt.Fprintf(d.Log, "%s (seed %d): pair acc %.1f | target %.1f | retention %.1f | overall %.1f | %.2f s/step\n", cfg.Method, cfg.Seed,
		res.Pairs.Accuracy, res.Target, res.Retention, res.Overall, res.StepSeconds)
	return res, nil
}

func removeCheckpoints(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "checkpoint-") {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// pairLogLiks are log π(y_w | x) and log π(y_l | x) of the test pairs (summed over the response
// tokens and <eos>).
type pairLogLiks struct{ chosen, rejected []float64 }

func (d *DPORunner) logLiks(lm *model.LM) (*pairLogLiks, error) {
	sc, err := model.NewScorer(lm)
	if err != nil {
		return nil, err
	}
	seqs, starts := make([][]int, len(d.test)), make([]int, len(d.test))
	for i, e := range d.test {
		seqs[i], starts[i] = e.IDs, e.PromptLen
	}
	ll, _, err := sc.LogLikelihoods(seqs, starts, 2*d.DPO.Train.Batch)
	if err != nil {
		return nil, errors.WithMessage(err, "ablations: scoring the test pairs")
	}
	out := &pairLogLiks{}
	for i := 0; i < len(ll); i += 2 {
		out.chosen, out.rejected = append(out.chosen, ll[i]), append(out.rejected, ll[i+1])
	}
	return out, nil
}

func (d *DPORunner) refLogLiks() (*pairLogLiks, error) {
	if d.refTest == nil {
		ref, err := d.logLiks(d.Warm)
		if err != nil {
			return nil, err
		}
		d.refTest = ref
	}
	return d.refTest, nil
}

// pairScores compares the policy's log-likelihoods of the test pairs with π_ref's.
func (d *DPORunner) pairScores(pol, ref *pairLogLiks, beta float64) PairScores {
	s := PairScores{ByKind: map[string]float64{}}
	n := float64(len(pol.chosen))
	kindN := map[string]float64{}
	win := func(x float64) float64 {
		switch {
		case x > 0:
			return 1
		case x == 0:
			return 0.5
		}
		return 0
	}
	var wins, likeWins, margin float64
	for i := range pol.chosen {
		m := beta * ((pol.chosen[i] - ref.chosen[i]) - (pol.rejected[i] - ref.rejected[i]))
		wins += win(m)
		margin += m
		likeWins += win(pol.chosen[i] - pol.rejected[i])
		k := d.testKinds[i]
		s.ByKind[k] += win(m)
		kindN[k]++
	}
	s.Accuracy, s.Margin, s.LikelihoodAccuracy = 100*wins/n, margin/n, 100*likeWins/n
	for k, c := range kindN {
		s.ByKind[k] = 100 * s.ByKind[k] / c
	}
	return s
}

// fisherName is the cache name of the warm-start's Fisher for a valuation config.
func (d *DPORunner) fisherName(v alphatoken.Config) string {
	return fmt.Sprintf("%s-%s", v.Fisher, hashJSON(d.fisherKey(v)))
}

func (d *DPORunner) fisherKey(v alphatoken.Config) map[string]any {
	return map[string]any{"warm_start": filepath.Base(d.WarmRun.Dir), "target": d.Preset.Target, "kind": v.Fisher, "k": v.Blocks,
		"prompts": min(v.FisherPrompts, len(d.fisherPrompts)), "max_new": v.FisherMaxNewTokens, "seed": 1}
}

// Fisher returns the warm-start's Fisher (θ_ref of the DPO stability term) for a valuation config,
// estimated once on the target's Fisher prompts and cached (with the time it took).
func (d *DPORunner) Fisher(v alphatoken.Config) (*alphatoken.Fisher, float64, error) {
	base := filepath.Join(d.CacheDir, "fisher", d.fisherName(v))
	if raw, err := os.ReadFile(base + ".json"); err == nil {
		var info fisherInfo
		if json.Unmarshal(raw, &info) == nil {
			f, err := alphatoken.LoadFisher(base + ".safetensors")
			return f, info.Seconds, err
		}
	}
	key := d.fisherKey(v)
	n := key["prompts"].(int)
	fmt.Fprintf(d.Log, "estimating the %s Fisher of the SFT warm-start (%d prompts, %d sampled tokens each)\n", v.Fisher, n, v.FisherMaxNewTokens)
	start := time.Now()
	f, err := alphatoken.EstimateFisher(d.Warm, d.fisherPrompts[:n], alphatoken.FisherOptions{Kind: v.Fisher, Blocks: v.Blocks,
		MaxNewTokens: v.FisherMaxNewTokens, Stop: []int{d.Tok.EOS()}, Seed: 1, BatchSize: 32, Progress: alphatoken.FisherProgress(d.Log)})
	if err != nil {
		return nil, 0, err
	}
	secs := time.Since(start).Seconds()
	if err := f.Save(base + ".safetensors"); err != nil {
		return nil, 0, err
	}
	return f, secs, writeJSON(base+".json", fisherInfo{Key: key, Seconds: secs})
}

// oracleKey identifies SePO's oracle π^o: the warm-start it starts from, the oracle pairs and how
// it is trained.
type oracleKey struct {
	WarmStart string           `json:"warm_start"`
	Prefs     string           `json:"prefs"`
	Train     DPOTrainSettings `json:"train"`
	DPO       dpo.Config       `json:"dpo"`
	Seed      uint64           `json:"seed"`
}

func (d *DPORunner) oracleKey() oracleKey {
	return oracleKey{WarmStart: filepath.Base(d.WarmRun.Dir), Prefs: d.Prefs.Fingerprint(), Train: d.DPO.Oracle,
		DPO: dpo.Config{Beta: d.DPO.Beta, Loss: d.DPO.Loss, Threshold: dpo.Separate, Coefficient: dpo.Unmasked}, Seed: 1}
}

func (d *DPORunner) oracleDir() string {
	return filepath.Join(d.CacheDir, "dpo-oracle", fmt.Sprintf("%s-%s", d.Preset.Name, hashJSON(d.oracleKey())))
}

// oracleInfo is oracle.json, written last: its presence marks a complete oracle.
type oracleInfo struct {
	Key       oracleKey  `json:"key"`
	Seconds   float64    `json:"seconds"`
	Pairs     PairScores `json:"pairs"` // the oracle's held-out pair scores
	CreatedAt string     `json:"created_at"`
}

// Oracle returns SePO's oracle π^o (BASELINES.md): the warm-start (π^o_ref) trained with plain DPO
// on the oracle pairs, a split disjoint from the training pairs. It does not depend on a run's seed:
// it is trained once, cached (resuming an interrupted training) and shared by every SePO run.
func (d *DPORunner) Oracle() (*model.LM, error) {
	if d.oracleLM != nil {
		return d.oracleLM, nil
	}
	dir, key := d.oracleDir(), d.oracleKey()
	infoPath := filepath.Join(dir, "oracle.json")
	if raw, err := os.ReadFile(infoPath); err == nil {
		var info oracleInfo
		if err := json.Unmarshal(raw, &info); err != nil {
			return nil, errors.Wrapf(err, "ablations: reading %s", infoPath)
		}
		if hashJSON(info.Key) != hashJSON(key) {
			return nil, errors.Errorf("ablations: cached oracle %s was trained with a different configuration (delete it to retrain)", dir)
		}
		lm, err := model.Load(d.Backend, dir, dtypes.Float32)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(d.Log, "SePO oracle: reusing %s\n", dir)
		d.oracleLM = lm
		return lm, nil
	}
	lock, err := train.PrepareOutDir(dir, true, false)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	fmt.Fprintf(d.Log, "SePO oracle: plain DPO of the warm-start on the %d oracle pairs (%d steps) into %s\n", len(d.oracle)/2, key.Train.Steps, dir)
	start := time.Now()
	lm, err := d.Warm.Clone()
	if err != nil {
		return nil, err
	}
	env := &methods.DPOEnv{Env: methods.Env{LM: lm, Ref: d.Warm, Options: methods.Options{Rho: 1}, Steps: key.Train.Steps,
		BatchSize: key.Train.Batch, MaxLen: key.Train.MaxLen, Cache: filepath.Join(d.CacheDir, "dpo-offline"), Log: d.Log},
		DPO: key.DPO, RefLogps: methods.RefPrecompute, Seed: key.Seed}
	m, err := methods.BuildDPO("dpo", env)
	if err != nil {
		return nil, err
	}
	tr, err := train.New(lm, d.Tok, trainConfig(key.Train, key.Seed, dir), m)
	if err != nil {
		return nil, err
	}
	tr.Log = d.Log
	tr.RunSettings = map[string]string{"ablations_dpo_oracle": hashJSON(key)}
	if resumed, err := tr.ResumeLatest(dir); err != nil {
		return nil, err
	} else if resumed {
		fmt.Fprintf(d.Log, "SePO oracle: resuming at step %d\n", tr.Step())
	}
	if err := tr.Run(d.oracle); err != nil {
		return nil, err
	}
	if err := lm.Save(dir, model.SaveOptions{}); err != nil {
		return nil, err
	}
	if err := d.Tok.Save(dir); err != nil {
		return nil, err
	}
	info := oracleInfo{Key: key, Seconds: time.Since(start).Seconds(), CreatedAt: time.Now().UTC().Format(time.RFC3339)}
	ref, err := d.refLogLiks()
	if err != nil {
		return nil, err
	}
	pol, err := d.logLiks(lm)
	if err != nil {
		return nil, err
	}
	info.Pairs = d.pairScores(pol, ref, key.DPO.Beta)
	if err := writeJSON(infoPath, info); err != nil {
		return nil, err
	}
	removeCheckpoints(dir)
	fmt.Fprintf(d.Log, "SePO oracle: held-out pair accuracy %.1f%% (%s)\n", info.Pairs.Accuracy, time.Since(start).Round(time.Second))
	d.oracleLM = lm
	return lm, nil
}

// TrainPairs, ValPairs, TestPairs and OraclePairs expose the encoded pairs (flattened: chosen,
// rejected, …).
func (d *DPORunner) TrainPairs() []data.Example  { return d.train }
func (d *DPORunner) ValPairs() []data.Example    { return d.val }
func (d *DPORunner) TestPairs() []data.Example   { return d.test }
func (d *DPORunner) OraclePairs() []data.Example { return d.oracle }
