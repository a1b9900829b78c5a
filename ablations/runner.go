package ablations

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/ablations/minibench"
	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/methods"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// Runner runs the SFT experiments of a preset: one reference model, one benchmark build, and a
// cache of runs keyed by their full configuration, so suites share runs and an interrupted suite
// resumes where it stopped (a run interrupted mid-training resumes from its last checkpoint).
type Runner struct {
	Preset   Preset
	CacheDir string
	Log      io.Writer
	Backend  compute.Backend
	Bench    *minibench.Bench
	Tok      tokenizer.Tokenizer
	Eval     *Evaluator
	Ref      *model.LM
	RefDir   string
	RefInfo  *ReferenceInfo
	// Steps, when positive, replaces the preset's SFT steps of every run (quick smoke runs; part
	// of each run's configuration, so such runs are cached apart).
	Steps int
	// OneSeed allows a suite on a single seed: its tables show means only and say that they are a
	// demonstration (no interval). Without it RunSuite refuses fewer than 2 seeds.
	OneSeed bool
	// CacheOnly makes a run missing from the cache an error instead of training it (`alphatoken
	// report`: tables regenerated from cached runs only).
	CacheOnly bool

	train, val, clean []data.Example
	fisherPrompts     [][]int
	helper            *model.LM
}

// NewRunner builds the benchmark, loads or pre-trains the reference model, and evaluates it.
func NewRunner(backend compute.Backend, preset, cacheDir string, log io.Writer) (*Runner, error) {
	p, err := PresetByName(preset)
	if err != nil {
		return nil, err
	}
	return NewRunnerFor(backend, p, cacheDir, log)
}

// NewCachedRunner is NewRunner for reading cached runs only (CacheOnly): a reference model or run
// missing from the cache is an error instead of being trained.
func NewCachedRunner(backend compute.Backend, preset, cacheDir string, log io.Writer) (*Runner, error) {
	p, err := PresetByName(preset)
	if err != nil {
		return nil, err
	}
	return newRunner(backend, p, cacheDir, log, true)
}

// NewRunnerFor is NewRunner for a preset value (the calibration's variants of a preset: another
// reference seed, a patched design).
func NewRunnerFor(backend compute.Backend, p Preset, cacheDir string, log io.Writer) (*Runner, error) {
	return newRunner(backend, p, cacheDir, log, false)
}

func newRunner(backend compute.Backend, p Preset, cacheDir string, log io.Writer, cacheOnly bool) (*Runner, error) {
	if log == nil {
		log = os.Stderr
	}
	bench, err := minibench.Build(p.Bench)
	if err != nil {
		return nil, err
	}
	tok := tokenizer.NewByteLevel()
	ev, err := NewEvaluator(bench, p.Target, tok, p.Eval)
	if err != nil {
		return nil, err
	}
	ev.Log = log
	r := &Runner{Preset: p, CacheDir: cacheDir, Log: log, Backend: backend, Bench: bench, Tok: tok, Eval: ev, CacheOnly: cacheOnly}
	r.Ref, r.RefDir, r.RefInfo, err = reference(backend, p, bench, cacheDir, log, cacheOnly)
	if err != nil {
		return nil, err
	}
	tmpl := data.PlainTemplate{}
	enc := func(split string, exs []minibench.Example) []data.Example {
		out := make([]data.Example, 0, len(exs))
		for i, e := range exs {
			prompt := tmpl.Prompt(tok, []data.Message{{Role: "user", Content: e.Prompt}})
			ids := append(prompt, tmpl.Response(tok, e.Response)...)
			if len(ids) > p.SFT.MaxLen {
				ids = ids[:p.SFT.MaxLen]
			}
			out = append(out, data.Example{IDs: ids, PromptLen: len(prompt), Source: fmt.Sprintf("minibench/%s/%s[%d]", p.Target, split, i)})
		}
		return out
	}
	t := bench.Target(p.Target)
	r.train, r.val = enc("train", t.Train), enc("val", t.Val)
	if p.Helper.CleanSize > 0 {
		clean, err := t.Extra(p.Helper.CleanSize)
		if err != nil {
			return nil, err
		}
		r.clean = enc("clean", clean)
	}
	for _, fp := range t.FisherPrompts {
		r.fisherPrompts = append(r.fisherPrompts, tmpl.Prompt(tok, []data.Message{{Role: "user", Content: fp}}))
	}
	// The reference row must be scored exactly as the runs are: same benchmark, target and options.
	if r.RefInfo.Scores == nil || r.RefInfo.ScoresTarget != p.Target || r.RefInfo.ScoresBench != bench.Fingerprint() ||
		r.RefInfo.ScoresEval != p.Eval {
		start := time.Now()
		s, err := r.Eval.Evaluate(r.Ref)
		if err != nil {
			return nil, err
		}
		r.RefInfo.Scores, r.RefInfo.ScoresTarget, r.RefInfo.ScoresBench, r.RefInfo.ScoresEval = s, p.Target, bench.Fingerprint(), p.Eval
		if err := writeJSON(filepath.Join(r.RefDir, "reference.json"), r.RefInfo); err != nil {
			return nil, err
		}
		fmt.Fprintf(log, "reference model evaluated in %s: %s\n", time.Since(start).Round(time.Second), s)
	}
	return r, nil
}

// RunConfig is the resolved configuration of one run: everything its result depends on.
type RunConfig struct {
	Preset    string      `json:"preset"`
	Bench     string      `json:"bench"`     // minibench fingerprint
	Reference string      `json:"reference"` // reference model directory name (content key)
	Target    string      `json:"target"`
	Method    string      `json:"method"`
	Seed      uint64      `json:"seed"`
	SFT       SFTSettings `json:"sft"`
	// Options are the selection settings; ρ lives there (Options.Rho) and nowhere else.
	Options    methods.Options    `json:"options"`
	Valuation  *alphatoken.Config `json:"valuation,omitempty"` // methods that rank by AlphaToken values
	FisherSeed uint64             `json:"fisher_seed,omitempty"`
	Helper     string             `json:"helper,omitempty"` // helper model directory name (methods that need one)
	Eval       EvalOptions        `json:"eval"`
}

// CurvePoint is one logged training step.
type CurvePoint struct {
	Step     int     `json:"step"`
	Loss     float64 `json:"loss"`               // the method's (masked) loss
	FullLoss float64 `json:"full_loss"`          // the unmasked response loss of the batch
	ValLoss  float64 `json:"val_loss,omitempty"` // J_tgt as the method last computed it (AlphaToken: at its last refresh)
	// JTgt is J_tgt (mean NLL of the B_val validation examples) after this step, measured the same way
	// for every method every jTgtEvery steps, so that the curves compare.
	JTgt float64 `json:"j_tgt,omitempty"`
	Kept float64 `json:"kept,omitempty"` // share of the batch's response tokens kept (hard masks)
}

// RunResult is result.json of one run.
type RunResult struct {
	Config       RunConfig `json:"config"`
	Scores       *Scores   `json:"scores"`
	StepSeconds  float64   `json:"step_seconds"` // training wall time / steps (validation-gradient refreshes included, offline scoring not)
	TrainSeconds float64   `json:"train_seconds"`
	// OfflineSeconds is the method's scoring outside the step graph (offline passes over the
	// training examples before step 0, per-chunk scoring), included in TrainSeconds.
	OfflineSeconds float64      `json:"offline_seconds,omitempty"`
	EvalSeconds    float64      `json:"eval_seconds"`
	FisherSeconds  float64      `json:"fisher_seconds,omitempty"`
	Curve          []CurvePoint `json:"curve,omitempty"`
	Commit         string       `json:"commit"`
	Date           string       `json:"date"`
	Dir            string       `json:"dir"`
}

// resolve builds the configuration of a row at a seed.
func (r *Runner) resolve(row Row, seed int) (RunConfig, error) {
	p := r.Preset
	c := RunConfig{Preset: p.Name, Bench: r.Bench.Fingerprint(), Reference: filepath.Base(r.RefDir), Target: p.Target,
		Method: row.Method, Seed: uint64(seed), SFT: p.SFT, Options: row.options(p.Rho), Eval: p.Eval}
	if r.Steps > 0 {
		c.SFT.Steps = r.Steps
	}
	info, err := methods.Lookup(row.Method)
	if err != nil {
		return c, err
	}
	if !info.Selects {
		c.Options = methods.Options{Rho: 1, Params: row.Params} // keeps every token: no ρ
	}
	if err := methods.CheckOptions(row.Method, c.Options); err != nil {
		return c, errors.WithMessagef(err, "ablations: row %q", row.Label)
	}
	if info.NeedsInput(methods.NeedHelper) {
		c.Helper = filepath.Base(r.helperDir())
	}
	if !info.Valuation {
		return c, nil
	}
	v := row.Overrides.valuation(p.Valuation)
	if err := v.Validate(r.Ref.Config.Layers); err != nil {
		return c, errors.WithMessagef(err, "ablations: row %q", row.Label)
	}
	c.Valuation, c.FisherSeed = &v, 1
	return c, nil
}

// method builds a run's method for lm (a fresh copy of the reference) through the registry,
// supplying every input the method needs: the validation set, the Fisher (estimated once and
// cached; its estimation time is returned), θ_ref and the helper model.
func (r *Runner) method(cfg RunConfig, lm *model.LM, edits ...func(*methods.Env)) (train.Method, float64, error) {
	info, err := methods.Lookup(cfg.Method)
	if err != nil {
		return nil, 0, err
	}
	env := &methods.Env{LM: lm, Ref: r.Ref, Options: cfg.Options, Steps: cfg.SFT.Steps, BatchSize: cfg.SFT.Batch,
		MaxLen: cfg.SFT.MaxLen, Cache: filepath.Join(r.CacheDir, "offline"), Log: r.Log}
	var fisherSecs float64
	if cfg.Valuation != nil {
		v := *cfg.Valuation
		env.Valuation, env.Val = v, r.val
		if v.Stability && v.Fisher != alphatoken.FisherNone {
			if env.Fisher, fisherSecs, err = r.Fisher(v, cfg.FisherSeed); err != nil {
				return nil, 0, err
			}
		} else {
			env.FisherNone = true
		}
	}
	if info.NeedsInput(methods.NeedHelper) {
		if env.Helper, err = r.Helper(); err != nil {
			return nil, 0, err
		}
	}
	for _, edit := range edits {
		edit(env)
	}
	m, err := methods.Build(cfg.Method, env)
	return m, fisherSecs, err
}

// RunRow runs (or loads from the cache) one row at one seed.
func (r *Runner) RunRow(row Row, seed int) (*RunResult, error) {
	if row.Method == "reference" {
		return &RunResult{Config: RunConfig{Preset: r.Preset.Name, Method: "reference", Target: r.Preset.Target},
			Scores: r.RefInfo.Scores, Dir: r.RefDir, Commit: Commit(), Date: r.RefInfo.CreatedAt}, nil
	}
	cfg, err := r.resolve(row, seed)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(r.CacheDir, "runs", fmt.Sprintf("%s-%s", cfg.Method, hashJSON(cfg)))
	configPath := filepath.Join(dir, "run.json")
	if res, err := cachedRun[RunConfig, RunResult](dir, "cached run", row.Label, cfg); res != nil || err != nil {
		return res, err
	}
	if r.CacheOnly {
		return nil, errors.Errorf("ablations: row %q seed %d (method %s) is not in the cache: %s has no result; "+
			"train it with `alphatoken ablate` (or `report --train`)", row.Label, seed, cfg.Method, dir)
	}
	lock, res, err := claimRun[RunConfig, RunResult](dir, "cached run", row.Label, cfg, r.Log)
	if lock == nil || err != nil {
		return res, err
	}
	defer lock.Release()
	if err := writeJSON(configPath, cfg); err != nil {
		return nil, err
	}
	return r.execute(cfg, dir)
}

// execute trains and evaluates one run into dir.
func (r *Runner) execute(cfg RunConfig, dir string) (*RunResult, error) {
	res := &RunResult{Config: cfg, Dir: dir, Commit: Commit()}
	lm, err := r.Ref.Clone()
	if err != nil {
		return nil, err
	}
	method, fisherSecs, err := r.method(cfg, lm)
	if err != nil {
		return nil, err
	}
	res.FisherSeconds = fisherSecs
	tc := train.Config{Steps: cfg.SFT.Steps, BatchSize: cfg.SFT.Batch, MaxLen: cfg.SFT.MaxLen, BucketQuantum: 16, LR: cfg.SFT.LR,
		Seed: cfg.Seed, CheckpointEvery: cfg.SFT.CheckpointEvery, KeepCheckpoints: 1, OutDir: dir, LogEvery: 10}
	tr, err := train.New(lm, r.Tok, tc, method)
	if err != nil {
		return nil, err
	}
	tr.Log = r.Log
	tr.Hooks = append(tr.Hooks, train.EvalHook(lm, r.jTgtExamples(), jTgtEvery, 32))
	t, err := runTimed(tr, method, r.train, cfg.SFT.Steps, dir, r.Log)
	if err != nil {
		return nil, err
	}
	res.TrainSeconds, res.OfflineSeconds, res.StepSeconds = t.train, t.offline, t.step
	for _, h := range tr.History {
		cp := CurvePoint{Step: h.Step, Loss: h.Loss, FullLoss: h.Metrics["full_loss"], ValLoss: h.Metrics["val_loss"], JTgt: h.Metrics["eval_loss"]}
		if _, ok := h.Metrics["full_loss"]; !ok {
			cp.FullLoss = h.Loss // full fine-tuning: the loss is the unmasked loss
		}
		if n := h.Metrics["tokens"]; n > 0 {
			if k, ok := h.Metrics["kept"]; ok {
				cp.Kept = k / n
			}
		}
		res.Curve = append(res.Curve, cp)
	}
	start := time.Now()
	if res.Scores, err = r.Eval.Evaluate(lm); err != nil {
		return nil, err
	}
	res.EvalSeconds = time.Since(start).Seconds()
	res.Date = time.Now().UTC().Format(time.RFC3339)
	if err := lm.Save(dir, model.SaveOptions{}); err != nil {
		return nil, err
	}
	if err := r.Tok.Save(dir); err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(dir, "result.json"), res); err != nil {
		return nil, err
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "checkpoint-") {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	fmt.Fprintf(r.Log, "%s (seed %d): %s | %.2f s/step\n", cfg.Method, cfg.Seed, res.Scores, res.StepSeconds)
	return res, nil
}

// fisherInfo is the sidecar of a cached Fisher file.
type fisherInfo struct {
	Key     any     `json:"key"`
	Seconds float64 `json:"seconds"`
}

// Fisher returns the reference model's Fisher for a valuation config, estimated once and cached
// (with the time it took).
func (r *Runner) Fisher(v alphatoken.Config, seed uint64) (*alphatoken.Fisher, float64, error) {
	key := map[string]any{"reference": filepath.Base(r.RefDir), "target": r.Preset.Target, "kind": v.Fisher, "k": v.Blocks,
		"prompts": min(v.FisherPrompts, len(r.fisherPrompts)), "max_new": v.FisherMaxNewTokens, "seed": seed}
	base := filepath.Join(r.CacheDir, "fisher", fmt.Sprintf("%s-%s", v.Fisher, hashJSON(key)))
	if raw, err := os.ReadFile(base + ".json"); err == nil {
		var info fisherInfo
		if json.Unmarshal(raw, &info) == nil {
			f, err := alphatoken.LoadFisher(base + ".safetensors")
			return f, info.Seconds, err
		}
	}
	fmt.Fprintf(r.Log, "estimating the %s Fisher of the reference model (%d prompts, %d sampled tokens each)\n",
		v.Fisher, key["prompts"], v.FisherMaxNewTokens)
	start := time.Now()
	f, err := alphatoken.EstimateFisher(r.Ref, r.fisherPrompts[:key["prompts"].(int)], alphatoken.FisherOptions{
		Kind: v.Fisher, Blocks: v.Blocks, MaxNewTokens: v.FisherMaxNewTokens, Stop: []int{r.Tok.EOS()}, Seed: seed, BatchSize: 32,
		Progress: alphatoken.FisherProgress(r.Log)})
	if err != nil {
		return nil, 0, err
	}
	secs := time.Since(start).Seconds()
	if err := f.Save(base + ".safetensors"); err != nil {
		return nil, 0, err
	}
	return f, secs, writeJSON(base+".json", fisherInfo{Key: key, Seconds: secs})
}

// Commit is the source commit ("<hash>", or "<hash>-dirty" when tracked files other than the
// results under ablations/results differ from it), or "unknown" outside a git checkout.
func Commit() string {
	if bi, ok := debug.ReadBuildInfo(); ok { // a binary built with VCS information knows its commit
		rev, dirty := "", false
		for _, st := range bi.Settings {
			switch st.Key {
			case "vcs.revision":
				rev = st.Value
			case "vcs.modified":
				dirty = st.Value == "true"
			}
		}
		if rev != "" {
			rev = rev[:min(12, len(rev))]
			if dirty {
				rev += "-dirty"
			}
			return rev
		}
	}
	// Otherwise (go test, go run, GOFLAGS=-buildvcs=false): the checkout of the current directory.
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)ablations/results").Output(); err == nil && len(st) > 0 {
		c += "-dirty"
	}
	return c
}

// cachedRun checks a run directory of the cache: its run.json must hold cfg (an error otherwise, never
// a silent reuse of another configuration's run), and its result.json, when present, is returned;
// (nil, nil) means the run still has to be trained. kind names the run in errors.
func cachedRun[C, R any, P runResult[R]](dir, kind, label string, cfg C) (P, error) {
	resultPath, configPath := filepath.Join(dir, "result.json"), filepath.Join(dir, "run.json")
	wantCfg, _ := json.Marshal(cfg)
	if raw, err := os.ReadFile(configPath); err == nil {
		var have C
		if err := json.Unmarshal(raw, &have); err != nil {
			return nil, errors.Wrapf(err, "ablations: reading %s", configPath)
		}
		if haveCfg, _ := json.Marshal(have); string(haveCfg) != string(wantCfg) {
			return nil, errors.Errorf("ablations: %s %s has a different configuration than requested "+
				"(compare %s with the row %q; delete the directory to rerun)", kind, dir, configPath, label)
		}
	}
	raw, err := os.ReadFile(resultPath)
	if err != nil {
		return nil, nil
	}
	res := P(new(R))
	if err := json.Unmarshal(raw, res); err != nil {
		return nil, errors.Wrapf(err, "ablations: reading %s", resultPath)
	}
	res.setDir(dir) // where the run is now: the cache may have moved, or be named by another path
	return res, nil
}

// runResult is a cached run's result (RunResult, DPORunResult), which records its directory.
type runResult[R any] interface {
	*R
	setDir(dir string)
}

func (r *RunResult) setDir(dir string)    { r.Dir = dir }
func (r *DPORunResult) setDir(dir string) { r.Dir = dir }

// lockWait is how long claimRun waits between tries for a run another process is training.
var lockWait = 15 * time.Second

// claimRun takes the lock of run directory dir, so that one process trains a run at a time (two
// suites sharing a cache): while another process holds it, it waits; once it has the lock, a
// result written meanwhile is returned (with a nil lock) instead of training the run again.
// Release the lock once the run's result is written.
func claimRun[C, R any, P runResult[R]](dir, kind, label string, cfg C, log io.Writer) (*train.Lock, P, error) {
	for waited := false; ; waited = true {
		lock, err := train.PrepareOutDir(dir, true, false)
		var locked *train.LockedError
		if errors.As(err, &locked) {
			if !waited {
				fmt.Fprintf(log, "%s: another process is training this run (%s); waiting for it\n", dir, locked.Holder)
			}
			time.Sleep(lockWait)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if lock.Stale != nil {
			fmt.Fprintf(log, "%s: taking over from a run that ended without finishing (%s)\n", dir, lock.Stale)
		}
		res, err := cachedRun[C, R, P](dir, kind, label, cfg)
		if res != nil || err != nil {
			lock.Release()
			return nil, res, err
		}
		return lock, nil, nil
	}
}

// jTgtEvery is how often every run measures J_tgt (CurvePoint.JTgt).
const jTgtEvery = 25

// jTgtExamples is B_val: the first ValExamples validation examples, AlphaToken's J_tgt set.
func (r *Runner) jTgtExamples() []data.Example {
	n := r.Preset.Valuation.ValExamples
	if n <= 0 || n > len(r.val) {
		n = len(r.val)
	}
	return r.val[:n]
}

// TrainExamples, ValExamples and FisherPromptIDs expose the preset's encoded target data.
func (r *Runner) TrainExamples() []data.Example { return r.train }
func (r *Runner) ValExamples() []data.Example   { return r.val }
func (r *Runner) FisherPromptIDs() [][]int      { return r.fisherPrompts }

// FineTune trains a fresh copy of the reference model with a method for a given number of steps
// (the preset's other SFT settings), without caching: for notebooks and diagnostics that need a
// model drifted from the reference quickly. The Fisher, if the method needs one, comes from the cache.
func (r *Runner) FineTune(method string, steps int, seed uint64) (*model.LM, error) {
	cfg, err := r.resolve(Row{Label: method, Method: method}, int(seed))
	if err != nil {
		return nil, err
	}
	lm, err := r.Ref.Clone()
	if err != nil {
		return nil, err
	}
	cfg.SFT.Steps = steps
	m, _, err := r.method(cfg, lm)
	if err != nil {
		return nil, err
	}
	tc := train.Config{Steps: steps, BatchSize: cfg.SFT.Batch, MaxLen: cfg.SFT.MaxLen, BucketQuantum: 16, LR: cfg.SFT.LR,
		Seed: seed, LogEvery: max(steps/5, 1)}
	tr, err := train.New(lm, r.Tok, tc, m)
	if err != nil {
		return nil, err
	}
	tr.Log = r.Log
	return lm, tr.Run(r.train)
}

// helperKey identifies the helper model: the reference it starts from, the clean slice it is
// fine-tuned on (benchmark, target, size) and how.
type helperKey struct {
	Reference string         `json:"reference"`
	Bench     string         `json:"bench"`
	Target    string         `json:"target"`
	Helper    HelperSettings `json:"helper"`
	Seed      uint64         `json:"seed"`
}

func (r *Runner) helperKey() helperKey {
	return helperKey{Reference: filepath.Base(r.RefDir), Bench: r.Bench.Fingerprint(), Target: r.Preset.Target,
		Helper: r.Preset.Helper, Seed: 1}
}

func (r *Runner) helperDir() string {
	return filepath.Join(r.CacheDir, "helper", fmt.Sprintf("%s-%s", r.Preset.Name, hashJSON(r.helperKey())))
}

// helperInfo is helper.json, written last: its presence marks a complete helper model.
type helperInfo struct {
	Key       helperKey `json:"key"`
	Seconds   float64   `json:"seconds"`
	FinalLoss float64   `json:"final_loss"`
	CreatedAt string    `json:"created_at"`
}

// Helper returns the helper model of the baselines that need one (Token Cleaning's reference,
// Rho-1's reference model): the reference fine-tuned with full FT on the target's clean slice
// (Preset.Helper; minibench Target.Extra, disjoint from the SFT training and validation data).
// It does not depend on a run's seed: it is trained once per preset, cached (resuming an
// interrupted training) and shared by every run.
func (r *Runner) Helper() (*model.LM, error) {
	if r.helper != nil {
		return r.helper, nil
	}
	hs := r.Preset.Helper
	if hs.CleanSize <= 0 || len(r.clean) == 0 {
		return nil, errors.Errorf("ablations: preset %q has no clean slice for a helper model (helper.clean_size)", r.Preset.Name)
	}
	dir, key := r.helperDir(), r.helperKey()
	infoPath := filepath.Join(dir, "helper.json")
	if raw, err := os.ReadFile(infoPath); err == nil {
		var info helperInfo
		if err := json.Unmarshal(raw, &info); err != nil {
			return nil, errors.Wrapf(err, "ablations: reading %s", infoPath)
		}
		if hashJSON(info.Key) != hashJSON(key) {
			return nil, errors.Errorf("ablations: cached helper %s was trained with a different configuration (delete it to retrain)", dir)
		}
		lm, err := model.Load(r.Backend, dir, r.Ref.DType)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(r.Log, "helper model: reusing %s\n", dir)
		r.helper = lm
		return lm, nil
	}
	fmt.Fprintf(r.Log, "helper model: fine-tuning the reference on the %d-example clean slice (%d steps) into %s\n", len(r.clean), hs.SFT.Steps, dir)
	start := time.Now()
	lm, err := r.Ref.Clone()
	if err != nil {
		return nil, err
	}
	tc := train.Config{Steps: hs.SFT.Steps, BatchSize: hs.SFT.Batch, MaxLen: hs.SFT.MaxLen, BucketQuantum: 16, LR: hs.SFT.LR,
		Seed: key.Seed, CheckpointEvery: hs.SFT.CheckpointEvery, KeepCheckpoints: 1, OutDir: dir, LogEvery: 25}
	tr, err := train.New(lm, r.Tok, tc, train.Full{})
	if err != nil {
		return nil, err
	}
	tr.Log = r.Log
	if resumed, err := tr.ResumeLatest(dir); err != nil {
		return nil, err
	} else if resumed {
		fmt.Fprintf(r.Log, "helper model: resuming at step %d\n", tr.Step())
	}
	if err := tr.Run(r.clean); err != nil {
		return nil, err
	}
	if err := lm.Save(dir, model.SaveOptions{}); err != nil {
		return nil, err
	}
	if err := r.Tok.Save(dir); err != nil {
		return nil, err
	}
	info := helperInfo{Key: key, Seconds: time.Since(start).Seconds(), CreatedAt: time.Now().UTC().Format(time.RFC3339)}
	if h := tr.History; len(h) > 0 {
		info.FinalLoss = h[len(h)-1].Loss
	}
	if err := writeJSON(infoPath, info); err != nil {
		return nil, err
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "checkpoint-") {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	r.helper = lm
	return lm, nil
}

// CleanExamples exposes the preset's encoded clean slice (the helper model's training data).
func (r *Runner) CleanExamples() []data.Example { return r.clean }

// timing is how long a run took: training (offline passes included), the method's offline passes
// (token scoring before step 0) and the mean step without them.
type timing struct{ train, offline, step float64 }

// runTimed trains tr (method m) on examples up to steps, after adding the val_loss metric of a
// method that reports one and resuming from the newest checkpoint in dir, and times it.
func runTimed(tr *train.Trainer, m train.Method, examples []data.Example, steps int, dir string, log io.Writer) (timing, error) {
	if vl, ok := m.(interface{ LastValLoss() (float64, bool) }); ok {
		if _, has := vl.LastValLoss(); has {
			tr.Hooks = append(tr.Hooks, train.Hook{Name: "val_loss", Every: 10, Fn: func(_ int, rec *train.Record) error {
				rec.Metrics["val_loss"], _ = vl.LastValLoss()
				return nil
			}})
		}
	}
	if resumed, err := tr.ResumeLatest(dir); err != nil {
		return timing{}, err
	} else if resumed {
		fmt.Fprintf(log, "resuming %s at step %d\n", filepath.Base(dir), tr.Step())
	}
	start, startStep := time.Now(), tr.Step()
	if err := tr.Run(examples); err != nil {
		return timing{}, err
	}
	t := timing{train: time.Since(start).Seconds()}
	if o, ok := m.(interface{ OfflineSeconds() float64 }); ok {
		t.offline = o.OfflineSeconds()
	}
	t.step = (t.train - t.offline) / float64(max(steps-startStep, 1))
	return t, nil
}
