package train

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	gm "github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train/optimizer"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/internal/atomicfile"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// FrozenScope holds variables that are inputs of training, not state (e.g. θ_ref and the Fisher):
// they are neither trained nor saved with the optimizer state.
const FrozenScope = "/frozen"

// Record is one logged step.
type Record struct {
	Step         int                `json:"step"`
	Epoch        int                `json:"epoch"`
	LR           float64            `json:"lr"`
	Loss         float64            `json:"loss"`
	GradNorm     float64            `json:"grad_norm"`
	TokensPerSec float64            `json:"tokens_per_sec"`
	StepSeconds  float64            `json:"step_seconds"`
	Elapsed      float64            `json:"elapsed_seconds"`
	Metrics      map[string]float64 `json:"metrics,omitempty"`
}

// Hook runs every Every steps (and after the last step) after the step's metrics are known; it may
// add entries to rec.Metrics (e.g. an evaluation) before the record is written.
type Hook struct {
	Name  string
	Every int
	Fn    func(step int, rec *Record) error
}

// NaNError reports a non-finite loss or gradient; the step's update is not checkpointed.
type NaNError struct {
	Step  int
	What  string
	Value float64
}

func (e *NaNError) Error() string {
	return fmt.Sprintf("train: step %d: %s is %v (training stopped; the last checkpoint is intact)", e.Step, e.What, e.Value)
}

// Trainer runs a Method over examples with AdamW, checkpoints and progress.
type Trainer struct {
	LM        *model.LM
	Tokenizer tokenizer.Tokenizer // saved with checkpoints (may be nil)
	Config    Config
	Method    Method
	Hooks     []Hook
	Log       io.Writer // progress lines; default os.Stderr
	History   []Record

	opt   optimizer.Interface
	exec  *gm.Exec
	lrVar *gm.Variable
	step  int
}

// New prepares a trainer; the step graph is compiled on the first step of each batch shape.
func New(lm *model.LM, tok tokenizer.Tokenizer, cfg Config, method Method) (*Trainer, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxLen > lm.Config.MaxPositions {
		return nil, errors.Errorf("train: MaxLen %d exceeds the model's max_position_embeddings %d", cfg.MaxLen, lm.Config.MaxPositions)
	}
	tr := &Trainer{LM: lm, Tokenizer: tok, Config: cfg, Method: method, Log: os.Stderr}
	tr.opt = optimizer.Adam().LearningRate(cfg.LR).Betas(cfg.Beta1, cfg.Beta2).Epsilon(cfg.Eps).
		WeightDecay(cfg.WeightDecay).Done()
	tr.lrVar = optimizer.LearningRateVar(lm.Store.RootScope(), dtypes.Float32, cfg.LR)
	exec, err := model.NewStoreExec(lm.Backend, lm.Store, "train_step", tr.stepGraph)
	if err != nil {
		return nil, err
	}
	tr.exec = exec
	tr.exec.SetMaxCache(32)
	return tr, nil
}

// Step is the number of optimizer steps taken so far.
func (tr *Trainer) Step() int { return tr.step }

// LearningRate is the schedule: linear warm-up to LR, then cosine decay to LR·MinLRRatio at Steps.
func (c *Config) LearningRate(step int) float64 {
	if step < c.WarmupSteps {
		return c.LR * float64(step+1) / float64(c.WarmupSteps)
	}
	span := max(c.Steps-c.WarmupSteps, 1)
	progress := math.Min(float64(step-c.WarmupSteps)/float64(span), 1)
	return c.LR * (c.MinLRRatio + (1-c.MinLRRatio)*0.5*(1+math.Cos(math.Pi*progress)))
}

// stepGraph builds one optimizer step: loss, gradients, global-norm clipping and AdamW.
// Outputs: loss, gradient norm (before clipping), then the method's metrics.
func (tr *Trainer) stepGraph(scope *gm.Scope, _ *Graph, in []*Node) []*Node {
	b := BatchNodes{Tokens: in[0], Targets: in[1], Weights: in[2], Noise: in[3]}
	loss, metrics := tr.Method.Loss(scope, tr.LM, b)
	grads := scope.BuildTrainableVariablesGradientsGraph(loss)
	var sq *Node
	for _, g := range grads {
		s := ReduceAllSum(Square(ConvertDType(g, loss.DType())))
		if sq == nil {
			sq = s
		} else {
			sq = Add(sq, s)
		}
	}
	norm := Sqrt(sq)
	if tr.Config.ClipNorm > 0 {
		scale := MinScalar(Div(Scalar(loss.Graph(), loss.DType(), tr.Config.ClipNorm), AddScalar(norm, 1e-6)), 1)
		for i, g := range grads {
			grads[i] = Mul(g, ConvertDType(scale, g.DType()))
		}
	}
	tr.opt.(interface {
		UpdateGraphWithGradients(*gm.Scope, []*Node, dtypes.DType)
	}).UpdateGraphWithGradients(scope, grads, loss.DType())
	return append([]*Node{loss, norm}, metrics...)
}

// noise is the uniform [b, t] input of a step, a pure function of (seed, step).
func (tr *Trainer) noise(b, t int) [][]float32 {
	rng := rand.New(rand.NewPCG(tr.Config.Seed^0x9e3779b97f4a7c15, uint64(tr.step)))
	out := make([][]float32, b)
	for i := range out {
		out[i] = make([]float32, t)
		for j := range out[i] {
			out[i][j] = rng.Float32()
		}
	}
	return out
}

// Run trains on examples until Config.Steps (continuing from Step() after Resume).
func (tr *Trainer) Run(examples []data.Example) error { return tr.RunUntil(examples, tr.Config.Steps) }

// RunUntil trains until step stop (≤ Config.Steps), e.g. to interrupt a run and resume it later;
// the schedule is always that of Config.Steps.
func (tr *Trainer) RunUntil(examples []data.Example, stop int) error {
	cfg := tr.Config
	stop = min(stop, cfg.Steps)
	if len(examples) == 0 {
		return errors.New("train: no training examples")
	}
	lengths := make([]int, len(examples))
	for i := range examples {
		if len(examples[i].IDs) > cfg.MaxLen {
			return errors.Errorf("train: example %s has %d tokens > MaxLen %d (read the data with data.Options.MaxLen to truncate)",
				examples[i].Source, len(examples[i].IDs), cfg.MaxLen)
		}
		lengths[i] = len(examples[i].IDs)
	}
	sampler := data.Sampler{Lengths: lengths, BatchSize: cfg.BatchSize, Seed: cfg.Seed}
	perEpoch := sampler.BatchesPerEpoch()
	pad := 0
	if tr.Tokenizer != nil && tr.Tokenizer.PAD() >= 0 {
		pad = tr.Tokenizer.PAD()
	}
	var epochBatches [][]int
	epochLoaded := -1
	start := time.Now()
	var emaStep float64
	var tokensSince int
	lastLog := time.Now()
	for tr.step < stop {
		epoch, idx := tr.step/perEpoch, tr.step%perEpoch
		if epoch != epochLoaded {
			epochBatches, epochLoaded = sampler.Epoch(epoch), epoch
		}
		ids := epochBatches[idx]
		longest := 0
		for _, i := range ids {
			longest = max(longest, len(examples[i].IDs))
		}
		batch := data.MakeBatch(examples, ids, cfg.BatchSize, data.BucketLen(longest, cfg.BucketQuantum, cfg.MaxLen), pad)
		if batch.NumTokens == 0 {
			return errors.Errorf("train: step %d: the batch has no response tokens (examples %v)", tr.step, ids)
		}
		if err := tr.Method.Prepare(tr.step); err != nil {
			return errors.WithMessagef(err, "train: step %d: %s", tr.step, tr.Method.Name())
		}
		lr := cfg.LearningRate(tr.step)
		if err := tr.lrVar.SetValue(tensors.FromScalar(float32(lr))); err != nil {
			return err
		}
		t0 := time.Now()
		outs, err := tr.exec.Call(batch.Tokens, batch.Targets, batch.Weights, tr.noise(cfg.BatchSize, batch.T()))
		if err != nil {
			return model.ExplainOOM(errors.WithMessagef(err, "train: step %d (batch %d × %d tokens)", tr.step, cfg.BatchSize, batch.T()))
		}
		vals := make([]float64, len(outs))
		for i, o := range outs {
			vals[i] = scalar(o)
			o.FinalizeAll()
		}
		dt := time.Since(t0).Seconds()
		if math.IsNaN(vals[0]) || math.IsInf(vals[0], 0) {
			return &NaNError{Step: tr.step, What: "loss", Value: vals[0]}
		}
		if math.IsNaN(vals[1]) || math.IsInf(vals[1], 0) {
			return &NaNError{Step: tr.step, What: "gradient norm", Value: vals[1]}
		}
		for i, name := range tr.Method.MetricNames() {
			if name == "nonfinite" && vals[2+i] > 0 {
				return &NaNError{Step: tr.step, What: "token values", Value: math.NaN()}
			}
		}
		tr.step++
		realTokens := 0
		for _, i := range ids {
			realTokens += len(examples[i].IDs)
		}
		tokensSince += realTokens
		if emaStep == 0 {
			emaStep = dt
		} else {
			emaStep = 0.9*emaStep + 0.1*dt
		}
		last := tr.step == cfg.Steps
		if tr.step%cfg.LogEvery == 0 || last || tr.dueHook() {
			rec := Record{Step: tr.step, Epoch: epoch, LR: lr, Loss: vals[0], GradNorm: vals[1], StepSeconds: dt,
				Elapsed: time.Since(start).Seconds(), Metrics: map[string]float64{}}
			rec.TokensPerSec = float64(tokensSince) / time.Since(lastLog).Seconds()
			tokensSince, lastLog = 0, time.Now()
			for i, name := range tr.Method.MetricNames() {
				rec.Metrics[name] = vals[2+i]
			}
			for _, h := range tr.Hooks {
				if h.Every > 0 && (tr.step%h.Every == 0 || last) {
					if err := h.Fn(tr.step, &rec); err != nil {
						return errors.WithMessagef(err, "train: hook %s at step %d", h.Name, tr.step)
					}
				}
			}
			tr.History = append(tr.History, rec)
			if err := tr.appendMetrics(rec); err != nil {
				return err
			}
			tr.progress(rec, emaStep)
		}
		if cfg.OutDir != "" && (last || (cfg.CheckpointEvery > 0 && tr.step%cfg.CheckpointEvery == 0)) {
			if err := tr.Checkpoint(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (tr *Trainer) dueHook() bool {
	for _, h := range tr.Hooks {
		if h.Every > 0 && tr.step%h.Every == 0 {
			return true
		}
	}
	return false
}

func scalar(t *tensors.Tensor) float64 {
	v, err := model.TensorFloat64(t)
	if err != nil || len(v) == 0 {
		if x, ok := t.Value().(int64); ok {
			return float64(x)
		}
		return math.NaN()
	}
	return v[0]
}

func (tr *Trainer) progress(rec Record, stepSeconds float64) {
	if tr.Config.Quiet || tr.Log == nil {
		return
	}
	eta := time.Duration(float64(tr.Config.Steps-rec.Step) * stepSeconds * float64(time.Second)).Round(time.Second)
	var extra strings.Builder
	names := make([]string, 0, len(rec.Metrics))
	for k := range rec.Metrics {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&extra, " | %s %.4g", k, rec.Metrics[k])
	}
	fmt.Fprintf(tr.Log, "[%s] step %d/%d | loss %.4f | lr %.2e | %.0f tok/s | %.2f s/step | ETA %s%s\n",
		tr.Method.Name(), rec.Step, tr.Config.Steps, rec.Loss, rec.LR, rec.TokensPerSec, stepSeconds, eta, extra.String())
}

// appendMetrics appends one JSON line to OutDir/metrics.jsonl.
func (tr *Trainer) appendMetrics(rec Record) error {
	if tr.Config.OutDir == "" {
		return nil
	}
	if err := os.MkdirAll(tr.Config.OutDir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(tr.Config.OutDir, "metrics.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return errors.Wrap(err, "train: opening metrics.jsonl")
	}
	defer f.Close()
	line, _ := json.Marshal(rec)
	_, err = f.Write(append(line, '\n'))
	return err
}

// --- checkpoints ---------------------------------------------------------------------------------

// trainerState is trainer_state.json.
type trainerState struct {
	Step   int             `json:"step"`
	Method string          `json:"method"`
	Config json.RawMessage `json:"config"`
}

// isStateVar reports whether a store variable is optimizer/method state (saved for resume):
// everything but the model weights and the frozen inputs.
func isStateVar(path string) bool {
	return !strings.HasPrefix(path, "/model/") && !strings.HasPrefix(path, "/lm_head/") &&
		!strings.HasPrefix(path, FrozenScope+"/")
}

// Checkpoint writes OutDir/checkpoint-<step>: an HF checkpoint (config.json, model.safetensors,
// tokenizer files) plus trainer_state.safetensors (AdamW moments, counters, method state) and
// trainer_state.json. It is written into a temporary directory and renamed, so it is complete or
// absent; older checkpoints beyond KeepCheckpoints are removed afterwards.
func (tr *Trainer) Checkpoint() error {
	final := filepath.Join(tr.Config.OutDir, fmt.Sprintf("checkpoint-%d", tr.step))
	tmp := final + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := tr.SaveTo(tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	_ = os.RemoveAll(final)
	if err := os.Rename(tmp, final); err != nil {
		return errors.Wrapf(err, "train: publishing %s", final)
	}
	steps, _ := checkpointSteps(tr.Config.OutDir)
	for i := 0; i+tr.Config.KeepCheckpoints < len(steps); i++ {
		_ = os.RemoveAll(filepath.Join(tr.Config.OutDir, fmt.Sprintf("checkpoint-%d", steps[i])))
	}
	return nil
}

// SaveTo writes the model, tokenizer and trainer state into dir.
func (tr *Trainer) SaveTo(dir string) error {
	if err := tr.LM.Save(dir, model.SaveOptions{}); err != nil {
		return err
	}
	if tr.Tokenizer != nil {
		if err := tr.Tokenizer.Save(dir); err != nil {
			return err
		}
	}
	var named []model.NamedTensor
	for v := range tr.LM.Store.IterVariables() {
		if !isStateVar(v.Path()) {
			continue
		}
		t, err := v.Value()
		if err != nil {
			return errors.WithMessagef(err, "train: reading state %s", v.Path())
		}
		named = append(named, model.NamedTensor{Name: v.Path(), Tensor: t})
	}
	sort.Slice(named, func(i, j int) bool { return named[i].Name < named[j].Name })
	if err := model.WriteSafetensors(filepath.Join(dir, "trainer_state.safetensors"), named, nil); err != nil {
		return err
	}
	st, _ := json.MarshalIndent(trainerState{Step: tr.step, Method: tr.Method.Name(), Config: tr.Config.JSON()}, "", "  ")
	return atomicfile.WriteBytes(filepath.Join(dir, "trainer_state.json"), st)
}

// checkpointSteps lists the complete checkpoint-<step> directories of outDir, ascending.
func checkpointSteps(outDir string) ([]int, error) {
	entries, err := os.ReadDir(outDir)
	if err != nil {
		return nil, err
	}
	var steps []int
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "checkpoint-") || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "checkpoint-")); err == nil {
			steps = append(steps, n)
		}
	}
	sort.Ints(steps)
	return steps, nil
}

// LatestCheckpoint returns the newest complete checkpoint directory under outDir ("" if none).
func LatestCheckpoint(outDir string) (string, error) {
	steps, err := checkpointSteps(outDir)
	if err != nil || len(steps) == 0 {
		if os.IsNotExist(err) {
			err = nil
		}
		return "", err
	}
	return filepath.Join(outDir, fmt.Sprintf("checkpoint-%d", steps[len(steps)-1])), nil
}

// Resume restores weights and trainer state from a checkpoint written by Checkpoint, and truncates
// metrics.jsonl to the steps before it, so Run continues exactly where that run was.
func (tr *Trainer) Resume(dir string) error {
	raw, err := os.ReadFile(filepath.Join(dir, "trainer_state.json"))
	if err != nil {
		return errors.Wrapf(err, "train: %s is not a resumable checkpoint", dir)
	}
	var st trainerState
	if err := json.Unmarshal(raw, &st); err != nil {
		return errors.Wrapf(err, "train: parsing %s/trainer_state.json", dir)
	}
	if st.Method != tr.Method.Name() {
		return errors.Errorf("train: checkpoint %s was trained with method %q, resuming with %q", dir, st.Method, tr.Method.Name())
	}
	saved, err := model.Load(tr.LM.Backend, dir, tr.LM.DType)
	if err != nil {
		return err
	}
	if !saved.Config.Equal(tr.LM.Config) {
		return errors.Errorf("train: checkpoint %s has a different model config", dir)
	}
	named, err := saved.ParamTensors()
	if err != nil {
		return err
	}
	for _, nt := range named {
		if err := tr.LM.Param(nt.Name).SetValue(nt.Tensor); err != nil {
			return err
		}
	}
	state, _, err := model.ReadSafetensors(filepath.Join(dir, "trainer_state.safetensors"))
	if err != nil {
		return err
	}
	for path, t := range state {
		if err := model.SetFrozen(tr.LM.Store, path, t); err != nil {
			return errors.WithMessage(err, "train: restoring the trainer state")
		}
	}
	tr.step = st.Step
	if r, ok := tr.Method.(interface{ Resumed(step int) }); ok {
		r.Resumed(st.Step)
	}
	if tr.Config.OutDir != "" {
		if err := truncateMetrics(filepath.Join(tr.Config.OutDir, "metrics.jsonl"), st.Step); err != nil {
			return err
		}
	}
	return nil
}

func truncateMetrics(path string, step int) error {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var keep []byte
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r Record
		if json.Unmarshal([]byte(line), &r) == nil && r.Step <= step {
			keep = append(keep, line+"\n"...)
		}
	}
	return atomicfile.WriteBytes(path, keep)
}
