package ablations

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/ablations/minibench"
	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
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

	train, val    []data.Example
	fisherPrompts [][]int
}

// NewRunner builds the benchmark, loads or pre-trains the reference model, and evaluates it.
func NewRunner(backend compute.Backend, preset, cacheDir string, log io.Writer) (*Runner, error) {
	p, err := PresetByName(preset)
	if err != nil {
		return nil, err
	}
	return NewRunnerFor(backend, p, cacheDir, log)
}

// NewRunnerFor is NewRunner for a preset value (the calibration's variants of a preset: another
// reference seed, a patched design). [adapt branch: split out of NewRunner]
func NewRunnerFor(backend compute.Backend, p Preset, cacheDir string, log io.Writer) (*Runner, error) {
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
	r := &Runner{Preset: p, CacheDir: cacheDir, Log: log, Backend: backend, Bench: bench, Tok: tok, Eval: ev}
	r.Ref, r.RefDir, r.RefInfo, err = Reference(backend, p, bench, cacheDir, log)
	if err != nil {
		return nil, err
	}
	tmpl := data.PlainTemplate{}
	enc := func(exs []minibench.Example) []data.Example {
		out := make([]data.Example, 0, len(exs))
		for i, e := range exs {
			prompt := tmpl.Prompt(tok, []data.Message{{Role: "user", Content: e.Prompt}})
			ids := append(prompt, tmpl.Response(tok, e.Response)...)
			if len(ids) > p.SFT.MaxLen {
				ids = ids[:p.SFT.MaxLen]
			}
			out = append(out, data.Example{IDs: ids, PromptLen: len(prompt), Source: fmt.Sprintf("minibench/%s[%d]", p.Target, i)})
		}
		return out
	}
	t := bench.Target(p.Target)
	r.train, r.val = enc(t.Train), enc(t.Val)
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
	Preset     string             `json:"preset"`
	Bench      string             `json:"bench"`     // minibench fingerprint
	Reference  string             `json:"reference"` // reference model directory name (content key)
	Target     string             `json:"target"`
	Method     string             `json:"method"`
	Seed       uint64             `json:"seed"`
	SFT        SFTSettings        `json:"sft"`
	Rho        float64            `json:"rho"`
	Valuation  *alphatoken.Config `json:"valuation,omitempty"`
	FisherSeed uint64             `json:"fisher_seed,omitempty"`
	Eval       EvalOptions        `json:"eval"`
}

// CurvePoint is one logged training step.
type CurvePoint struct {
	Step     int     `json:"step"`
	Loss     float64 `json:"loss"`      // the method's (masked) loss
	FullLoss float64 `json:"full_loss"` // the unmasked response loss of the batch
	ValLoss  float64 `json:"val_loss,omitempty"`
}

// RunResult is result.json of one run.
type RunResult struct {
	Config        RunConfig    `json:"config"`
	Scores        *Scores      `json:"scores"`
	StepSeconds   float64      `json:"step_seconds"` // training wall time / steps (validation-gradient refreshes included)
	TrainSeconds  float64      `json:"train_seconds"`
	EvalSeconds   float64      `json:"eval_seconds"`
	FisherSeconds float64      `json:"fisher_seconds,omitempty"`
	Curve         []CurvePoint `json:"curve,omitempty"`
	Commit        string       `json:"commit"`
	Date          string       `json:"date"`
	Dir           string       `json:"dir"`
}

// resolve builds the configuration of a row at a seed.
func (r *Runner) resolve(row Row, seed int) (RunConfig, error) {
	p := r.Preset
	c := RunConfig{Preset: p.Name, Bench: r.Bench.Fingerprint(), Reference: filepath.Base(r.RefDir), Target: p.Target,
		Method: row.Method, Seed: uint64(seed), SFT: p.SFT, Rho: p.Valuation.Rho, Eval: p.Eval}
	if row.Rho != nil {
		c.Rho = *row.Rho
	}
	switch row.Method {
	case "full":
		c.Rho = 1
		return c, nil
	case "random":
		return c, nil
	}
	v, err := alphatoken.Variant(row.Method, p.Valuation)
	if err != nil {
		return c, err
	}
	v.Rho = c.Rho
	set := func(dst *int, src *int) {
		if src != nil {
			*dst = *src
		}
	}
	if row.Lambda != nil {
		v.Lambda = *row.Lambda
	}
	set(&v.Window, row.Window)
	set(&v.Blocks, row.K)
	set(&v.ValExamples, row.ValExamples)
	set(&v.ValRefresh, row.ValRefresh)
	if row.Fisher != nil {
		v.Fisher = alphatoken.FisherKind(*row.Fisher)
	}
	if row.Normalize != nil {
		v.Normalize = alphatoken.Normalization(*row.Normalize)
	}
	if err := v.Validate(r.Ref.Config.Layers); err != nil {
		return c, errors.WithMessagef(err, "ablations: row %q", row.Label)
	}
	c.Valuation, c.FisherSeed = &v, 1
	return c, nil
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
	resultPath, configPath := filepath.Join(dir, "result.json"), filepath.Join(dir, "run.json")
	wantCfg, _ := json.Marshal(cfg)
	if raw, err := os.ReadFile(configPath); err == nil {
		var have RunConfig
		if err := json.Unmarshal(raw, &have); err != nil {
			return nil, errors.Wrapf(err, "ablations: reading %s", configPath)
		}
		if haveCfg, _ := json.Marshal(have); string(haveCfg) != string(wantCfg) {
			return nil, errors.Errorf("ablations: cached run %s has a different configuration than requested "+
				"(compare %s with the row %q; delete the directory to rerun)", dir, configPath, row.Label)
		}
	}
	if raw, err := os.ReadFile(resultPath); err == nil {
		var res RunResult
		if err := json.Unmarshal(raw, &res); err != nil {
			return nil, errors.Wrapf(err, "ablations: reading %s", resultPath)
		}
		return &res, nil
	}
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
	var method train.Method
	var selected *train.Selected
	switch cfg.Method {
	case "full":
		method = train.Full{}
	case "random":
		if selected, err = train.NewRandom(cfg.Rho); err != nil {
			return nil, err
		}
		method = selected
	default:
		v := *cfg.Valuation
		var fisher *alphatoken.Fisher
		if v.Stability && v.Fisher != alphatoken.FisherNone {
			if fisher, res.FisherSeconds, err = r.Fisher(v, cfg.FisherSeed); err != nil {
				return nil, err
			}
		}
		valuer, err := alphatoken.NewValuer(lm, r.Ref, fisher, r.val, v, cfg.SFT.Batch*cfg.SFT.MaxLen)
		if err != nil {
			return nil, err
		}
		if selected, err = train.NewSelected(cfg.Method, valuer); err != nil {
			return nil, err
		}
		method = selected
	}
	tc := train.Config{Steps: cfg.SFT.Steps, BatchSize: cfg.SFT.Batch, MaxLen: cfg.SFT.MaxLen, BucketQuantum: 16, LR: cfg.SFT.LR,
		Seed: cfg.Seed, CheckpointEvery: cfg.SFT.CheckpointEvery, KeepCheckpoints: 1, OutDir: dir, LogEvery: 10}
	tr, err := train.New(lm, r.Tok, tc, method)
	if err != nil {
		return nil, err
	}
	tr.Log = r.Log
	if selected != nil && selected.Valuer != nil {
		tr.Hooks = append(tr.Hooks, train.Hook{Name: "val_loss", Every: 10, Fn: func(_ int, rec *train.Record) error {
			rec.Metrics["val_loss"] = selected.LastValLoss
			return nil
		}})
	}
	if latest, err := train.LatestCheckpoint(dir); err == nil && latest != "" {
		if err := tr.Resume(latest); err != nil {
			return nil, err
		}
		fmt.Fprintf(r.Log, "resuming %s at step %d\n", filepath.Base(dir), tr.Step())
	}
	start, startStep := time.Now(), tr.Step()
	if err := tr.Run(r.train); err != nil {
		return nil, err
	}
	res.TrainSeconds = time.Since(start).Seconds()
	res.StepSeconds = res.TrainSeconds / float64(max(cfg.SFT.Steps-startStep, 1))
	for _, h := range tr.History {
		cp := CurvePoint{Step: h.Step, Loss: h.Loss, FullLoss: h.Metrics["full_loss"], ValLoss: h.Metrics["val_loss"]}
		if cfg.Method == "full" {
			cp.FullLoss = h.Loss
		}
		res.Curve = append(res.Curve, cp)
	}
	start = time.Now()
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
		Kind: v.Fisher, Blocks: v.Blocks, MaxNewTokens: v.FisherMaxNewTokens, Stop: []int{r.Tok.EOS()}, Seed: seed, BatchSize: 32})
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
	var m train.Method = train.Full{}
	switch method {
	case "full":
	case "random":
		if m, err = train.NewRandom(cfg.Rho); err != nil {
			return nil, err
		}
	default:
		v := *cfg.Valuation
		var f *alphatoken.Fisher
		if v.Stability && v.Fisher != alphatoken.FisherNone {
			if f, _, err = r.Fisher(v, 1); err != nil {
				return nil, err
			}
		}
		valuer, err := alphatoken.NewValuer(lm, r.Ref, f, r.val, v, 0)
		if err != nil {
			return nil, err
		}
		if m, err = train.NewSelected(method, valuer); err != nil {
			return nil, err
		}
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
