package train

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	gm "github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/initializer"
	"github.com/gomlx/gomlx/ml/train/optimizer"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/internal/tfevents"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// FrozenScope holds variables that are inputs of training, not state (e.g. θ_ref and the Fisher):
// they are neither trained nor saved with the optimizer state.
const FrozenScope = "/frozen"

// accumScope holds the gradient accumulators of GradAccum > 1: zero between steps, never saved.
const accumScope = "/grad_accum"

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

// NaNError reports a step whose loss, gradient norm, token values or updated state (weights and
// optimizer moments) is not finite. Nothing of that step reaches disk; the in-memory model holds
// the failed update (reload LastCheckpoint to continue).
type NaNError struct {
	Step  int     // 0-based index of the failed step: it started from the state after Step steps
	Steps int     // the run's steps
	What  string  // what was not finite
	Value float64 // its value (NaN or ±Inf; for the state, the count of non-finite values)
	// LastCheckpoint is the newest checkpoint on disk ("" if none). A checkpoint is published only
	// once the step after it has run finite, so its next step does not diverge (with the same
	// settings, the run would diverge again at Step).
	LastCheckpoint string
}

func (e *NaNError) Error() string {
	where := "no checkpoint was written"
	if e.LastCheckpoint != "" {
		where = "the last checkpoint, " + e.LastCheckpoint + ", is finite (resume from it with changed settings: --resume --resume-override)"
	}
	return fmt.Sprintf("train: step %d of %d diverged: %s; training stopped and nothing of this step was saved; %s",
		e.Step+1, e.Steps, e.What, where)
}

// AdamState says where the trainer's AdamW keeps its state in the model's store (GoMLX's
// optimizer.Adam layout: /Scope/<parameter path>_1st_moment and _2nd_moment, the step count at
// /Scope/step) and with which settings, in DType.
type AdamState struct {
	Scope             string
	Beta1, Beta2, Eps float64
	DType             dtypes.DType
}

// OptimizerAware is implemented by methods whose loss reads the optimizer's state (AlphaToken with
// precondition adam reads the second moments after the previous step): New tells them where it is,
// before any step graph is built.
type OptimizerAware interface {
	UseAdam(AdamState) error
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
	// RunSettings holds the caller's settings that change the run's math besides Config and the method's
	// name, e.g. the method's options and a hash of the data file. It is recorded in every
	// checkpoint, and Resume compares it (key by key) with the checkpoint's.
	RunSettings map[string]string
	// ResumeOverride lets Resume continue from a checkpoint whose settings differ from this run's:
	// each difference is logged instead of failing.
	ResumeOverride bool

	opt                  optimizer.Interface
	exec                 *gm.Exec // one fused step (GradAccum = 1)
	accumExec, applyExec *gm.Exec // micro-batch steps (GradAccum > 1)
	lrVar                *gm.Variable
	step                 int
	// planned is the example set the method's Plan last saw (a Planner plans once per set).
	planned []data.Example
	// checked names the state variables whose non-finite counts the step graph returns, in order.
	checked []string
	// pending is a checkpoint written but not yet published (its temporary directory), waiting for
	// the step after it to run finite; pendingFinal is its final name.
	pending, pendingFinal string
	tb                    *tfevents.Writer
}

func (tr *Trainer) plannedOn(examples []data.Example) bool {
	return len(tr.planned) == len(examples) && len(examples) > 0 && &tr.planned[0] == &examples[0]
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
	if cfg.Packing {
		if p, ok := method.(PackingSupport); !ok || !p.SupportsPacking() {
			return nil, errors.Errorf("train: method %s does not support packing (its forward passes do not keep attention "+
				"inside each example of a packed row); train it without packing", method.Name())
		}
	}
	tr := &Trainer{LM: lm, Tokenizer: tok, Config: cfg, Method: method, Log: os.Stderr}
	tr.opt = optimizer.Adam().LearningRate(cfg.LR).Betas(cfg.Beta1, cfg.Beta2).Epsilon(cfg.Eps).
		WeightDecay(cfg.WeightDecay).Done()
	// The optimizer works in the loss's dtype: float64 for a float64 model, else float32.
	lrDType := dtypes.Float32
	if lm.DType == dtypes.Float64 {
		lrDType = dtypes.Float64
	}
	tr.lrVar = optimizer.LearningRateVar(lm.Store.RootScope(), lrDType, cfg.LR)
	if oa, ok := method.(OptimizerAware); ok {
		st := AdamState{Scope: optimizer.AdamDefaultScope, Beta1: cfg.Beta1, Beta2: cfg.Beta2, Eps: cfg.Eps, DType: lrDType}
		if err := oa.UseAdam(st); err != nil {
			return nil, err
		}
	}
	var err error
	if cfg.GradAccum == 1 {
		if tr.exec, err = model.NewStoreExec(lm.Backend, lm.Store, "train_step", tr.stepGraph); err != nil {
			return nil, err
		}
		tr.exec.SetMaxCache(32)
	} else {
		if tr.accumExec, err = model.NewStoreExec(lm.Backend, lm.Store, "accumulate_step", tr.microGraph(false)); err != nil {
			return nil, err
		}
		if tr.applyExec, err = model.NewStoreExec(lm.Backend, lm.Store, "apply_step", tr.microGraph(true)); err != nil {
			return nil, err
		}
		tr.accumExec.SetMaxCache(32)
		tr.applyExec.SetMaxCache(32)
	}
	return tr, nil
}

// Step is the number of optimizer steps taken so far.
func (tr *Trainer) Step() int { return tr.step }

// batchNodes splits a step graph's inputs: tokens, targets, weights, noise, [scale (micro-batch
// graphs)], [segments (Packing)], then the method's extra inputs.
func (tr *Trainer) batchNodes(in []*Node, withScale bool) (BatchNodes, *Node) {
	b := BatchNodes{Tokens: in[0], Targets: in[1], Weights: in[2], Noise: in[3]}
	i := 4
	var scale *Node
	if withScale {
		scale, i = in[i], i+1
	}
	if tr.Config.Packing {
		b.Segments, i = in[i], i+1
	}
	b.Extra = in[i:]
	return b, scale
}

// stepGraph builds one optimizer step: loss, gradients, global-norm clipping and AdamW.
// Outputs: loss, gradient norm (before clipping), the state check, then the method's metrics.
func (tr *Trainer) stepGraph(scope *gm.Scope, g *Graph, in []*Node) []*Node {
	b, _ := tr.batchNodes(in, false)
	loss, metrics := tr.Method.Loss(scope, tr.LM, b)
	grads := scope.BuildTrainableVariablesGradientsGraph(loss)
	norm := tr.update(scope, grads, loss.DType())
	return append([]*Node{loss, norm, tr.stateCheck(g)}, metrics...)
}

// microGraph builds the step of one micro-batch under gradient accumulation: the gradient of
// scale·loss (scale = the micro-batch's share of the step's response tokens) is added to the
// accumulators. With apply (the step's last micro-batch), the accumulated gradient is then clipped
// and applied, and the accumulators reset. Outputs: loss, then (apply) the gradient norm and the
// state check, then the method's metrics.
func (tr *Trainer) microGraph(apply bool) model.GraphFn {
	return func(scope *gm.Scope, g *Graph, in []*Node) []*Node {
		b, scale := tr.batchNodes(in, true)
		loss, metrics := tr.Method.Loss(scope, tr.LM, b)
		var vars []*gm.Variable
		for v := range scope.IterVariables() {
			if v.Trainable && v.InUseByGraph(g) {
				vars = append(vars, v)
			}
		}
		values := make([]*Node, len(vars))
		for i, v := range vars {
			values[i] = v.NodeValue(g)
		}
		grads := Gradient(Mul(loss, ConvertDType(scale, loss.DType())), values...)
		for i, v := range vars {
			// Accumulated in model.AccumDType: float32 for bfloat16 weights (--dtype bfloat16-pure).
			accDType := model.AccumDType(v.Shape().DType)
			acc := scope.Store().Scope(path.Join(accumScope, v.Scope())).WithInitializer(initializer.Zero).
				VariableWithShape(v.Name(), shapes.Make(accDType, v.Shape().Dimensions...)).SetTrainable(false)
			sum := Add(acc.NodeValue(g), ConvertDType(grads[i], accDType)) // [shape of v]
			if apply {
				grads[i] = sum
				acc.SetNodeValue(ZerosLike(sum))
			} else {
				acc.SetNodeValue(sum)
			}
		}
		if !apply {
			return append([]*Node{loss}, metrics...)
		}
		norm := tr.update(scope, grads, loss.DType())
		return append([]*Node{loss, norm, tr.stateCheck(g)}, metrics...)
	}
}

// update clips the gradients to the global norm ClipNorm (when positive) and applies AdamW; it
// returns the norm before clipping.
func (tr *Trainer) update(scope *gm.Scope, grads []*Node, dtype dtypes.DType) *Node {
	var sq *Node
	for _, g := range grads {
		s := ReduceAllSum(Square(ConvertDType(g, dtype)))
		if sq == nil {
			sq = s
		} else {
			sq = Add(sq, s)
		}
	}
	norm := Sqrt(sq)
	if tr.Config.ClipNorm > 0 {
		scale := MinScalar(Div(Scalar(norm.Graph(), dtype, tr.Config.ClipNorm), AddScalar(norm, 1e-6)), 1)
		for i, g := range grads {
			grads[i] = Mul(g, ConvertDType(scale, g.DType()))
		}
	}
	tr.opt.(interface {
		UpdateGraphWithGradients(*gm.Scope, []*Node, dtypes.DType)
	}).UpdateGraphWithGradients(scope, grads, dtype)
	return norm
}

// stateCheck counts the non-finite values of every floating-point variable the step writes or reads
// (weights after the update, optimizer moments, method state), frozen inputs and accumulators
// aside: [n] float32, in the order of tr.checked.
func (tr *Trainer) stateCheck(g *Graph) *Node {
	var counts []*Node
	var paths []string
	for v := range tr.LM.Store.IterVariables() {
		p := v.Path()
		if !v.InUseByGraph(g) || !v.Shape().DType.IsFloat() ||
			strings.HasPrefix(p, FrozenScope+"/") || strings.HasPrefix(p, accumScope+"/") {
			continue
		}
		bad := LogicalNot(IsFinite(v.NodeValue(g)))
		counts = append(counts, ReduceAllSum(ConvertDType(bad, dtypes.Float32)))
		paths = append(paths, p)
	}
	tr.checked = paths
	return Stack(counts, 0)
}

// noise returns the uniform [b, t] inputs of a step's micro-batches, a pure function of (seed,
// step): micro-batch m gets the m-th draw (so with GradAccum = 1, the step's only one).
func (tr *Trainer) noise(micro []data.Batch) [][][]float32 {
	rng := rand.New(rand.NewPCG(tr.Config.Seed^0x9e3779b97f4a7c15, uint64(tr.step)))
	all := make([][][]float32, len(micro))
	for m := range micro {
		out := make([][]float32, len(micro[m].Tokens))
		for i := range out {
			out[i] = make([]float32, micro[m].T())
			for j := range out[i] {
				out[i][j] = rng.Float32()
			}
		}
		all[m] = out
	}
	return all
}

// units is what the sampler draws: single examples, groups of Config.GroupSize consecutive
// examples (a DPO pair), or packed rows of examples.
type units struct {
	lengths []int   // tokens per unit (a group: its longest member)
	group   int     // examples per unit (1 unless Config.GroupSize > 1)
	rows    [][]int // with Packing: the examples of each row
}

// examples lists the examples of units ids (a group's members in groupRows order).
func (u *units) examples(ids []int) []int {
	switch {
	case u.rows != nil:
		var out []int
		for _, r := range ids {
			out = append(out, u.rows[r]...)
		}
		return out
	case u.group > 1:
		return groupRows(ids, u.group, len(ids))
	}
	return ids
}

// groupRows lays out a batch of sampled groups as example rows: member j of the r-th group
// (example item·group + j) in row j·batchSize + r, and -1 (a padding row) where the batch has fewer
// than batchSize groups (Config.GroupSize; TRL's DPO layout: the chosen half, then the rejected half).
func groupRows(items []int, group, batchSize int) []int {
	if group == 1 {
		return items
	}
	rows := make([]int, group*batchSize)
	for j := range group {
		for r := range batchSize {
			rows[j*batchSize+r] = -1
			if r < len(items) {
				rows[j*batchSize+r] = items[r]*group + j
			}
		}
	}
	return rows
}

// batch lays out the units ids as one micro-batch.
func (tr *Trainer) batch(examples []data.Example, u *units, ids []int, pad int) data.Batch {
	cfg := tr.Config
	longest := 0
	for _, i := range ids {
		longest = max(longest, u.lengths[i])
	}
	t := data.BucketLen(longest, cfg.BucketQuantum, cfg.MaxLen)
	if u.group > 1 {
		return data.MakeBatch(examples, groupRows(ids, u.group, cfg.BatchSize), cfg.BatchSize*u.group, t, pad)
	}
	if u.rows == nil {
		return data.MakeBatch(examples, ids, cfg.BatchSize, t, pad)
	}
	rows := make([][]int, len(ids))
	for i, r := range ids {
		rows[i] = u.rows[r]
	}
	return data.MakePackedBatch(examples, rows, cfg.BatchSize, t, pad)
}

// RowsPerEpoch is the number of rows an epoch over examples has under cfg: the examples, or with
// Packing the packed rows of MaxLen tokens (for turning epochs into steps).
func RowsPerEpoch(examples []data.Example, cfg Config) int {
	if !cfg.Packing {
		return len(examples)
	}
	lengths := make([]int, len(examples))
	for i := range examples {
		lengths[i] = len(examples[i].IDs)
	}
	return len(data.Pack(lengths, cfg.MaxLen))
}

// Run trains on examples until Config.Steps (continuing from Step() after Resume).
func (tr *Trainer) Run(examples []data.Example) error { return tr.RunUntil(examples, tr.Config.Steps) }

// RunUntil trains until step stop (≤ Config.Steps), e.g. to interrupt a run and resume it later;
// the schedule is always that of Config.Steps. With an OutDir it holds the directory's lock
// (PrepareOutDir) while it runs.
func (tr *Trainer) RunUntil(examples []data.Example, stop int) (err error) {
	cfg := tr.Config
	stop = min(stop, cfg.Steps)
	if len(examples) == 0 {
		return errors.New("train: no training examples")
	}
	group := max(cfg.GroupSize, 1)
	if len(examples)%group != 0 {
		return errors.Errorf("train: %d examples do not split into groups of %d", len(examples), group)
	}
	u := &units{lengths: make([]int, len(examples)/group), group: group}
	for i := range examples {
		if len(examples[i].IDs) > cfg.MaxLen {
			return errors.Errorf("train: example %s has %d tokens > MaxLen %d (read the data with data.Options.MaxLen to truncate)",
				examples[i].Source, len(examples[i].IDs), cfg.MaxLen)
		}
		u.lengths[i/group] = max(u.lengths[i/group], len(examples[i].IDs))
	}
	if cfg.Packing {
		u.rows = data.Pack(u.lengths, cfg.MaxLen)
		u.lengths = data.RowLengths(u.rows, u.lengths)
	}
	if cfg.OutDir != "" {
		lk, err := lockOutDir(cfg.OutDir)
		if err != nil {
			return err
		}
		defer lk.Release()
	}
	if err := tr.openLogs(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tr.dropPending()
		} else {
			err = tr.publishPending()
		}
		if cerr := tr.closeLogs(); err == nil {
			err = cerr
		}
	}()
	sampler := data.Sampler{Lengths: u.lengths, BatchSize: cfg.BatchSize, Seed: cfg.Seed}
	perEpoch := sampler.BatchesPerEpoch()
	var epochBatches [][]int
	epochLoaded := -1
	// microAt returns the units of the k-th micro-batch of the run (k = step·GradAccum + m).
	microAt := func(k int) (epoch int, ids []int) {
		if e := k / perEpoch; e != epochLoaded {
			epochBatches, epochLoaded = sampler.Epoch(e), e
		}
		return epochLoaded, epochBatches[k%perEpoch]
	}
	if p, ok := tr.Method.(Planner); ok && !tr.plannedOn(examples) {
		planSampler := sampler
		var planned [][]int
		plannedEpoch := -1
		batchAt := func(step int) []int {
			var out []int
			for m := range cfg.GradAccum {
				k := step*cfg.GradAccum + m
				if e := k / perEpoch; e != plannedEpoch {
					planned, plannedEpoch = planSampler.Epoch(e), e
				}
				out = append(out, u.examples(planned[k%perEpoch])...)
			}
			return out
		}
		if err := p.Plan(examples, batchAt, cfg.Steps); err != nil {
			return errors.WithMessagef(err, "train: %s", tr.Method.Name())
		}
		tr.planned = examples
	}
	pad := 0
	if tr.Tokenizer != nil && tr.Tokenizer.PAD() >= 0 {
		pad = tr.Tokenizer.PAD()
	}
	start := time.Now()
	var emaStep float64
	var tokensSince int
	lastLog := time.Now()
	names := tr.Method.MetricNames()
	for tr.step < stop {
		micro := make([]data.Batch, cfg.GradAccum)
		epoch := 0
		realTokens, responseTokens := 0, 0
		for m := range micro {
			e, ids := microAt(tr.step*cfg.GradAccum + m)
			if m == 0 {
				epoch = e
			}
			micro[m] = tr.batch(examples, u, ids, pad)
			if micro[m].NumTokens == 0 {
				return errors.Errorf("train: step %d: the batch has no response tokens (examples %v)", tr.step+1, u.examples(ids))
			}
			responseTokens += micro[m].NumTokens
			for _, i := range u.examples(ids) {
				realTokens += len(examples[i].IDs)
			}
		}
		lr := cfg.LearningRate(tr.step)
		lrValue := tensors.FromScalar(float32(lr))
		if tr.lrVar.Shape().DType == dtypes.Float64 {
			lrValue = tensors.FromScalar(lr)
		}
		if err := tr.lrVar.SetValue(lrValue); err != nil {
			return err
		}
		noise := tr.noise(micro)
		t0 := time.Now()
		var loss, norm float64
		var check []float64
		metrics := make([]float64, len(names))
		for m := range micro {
			b := &micro[m]
			extra, err := tr.Method.Prepare(tr.step, b)
			if err != nil {
				return errors.WithMessagef(err, "train: step %d: %s", tr.step+1, tr.Method.Name())
			}
			args := []any{b.Tokens, b.Targets, b.Weights, noise[m]}
			exec := tr.exec
			if cfg.GradAccum > 1 {
				share := float64(b.NumTokens) / float64(responseTokens)
				if tr.lrVar.Shape().DType == dtypes.Float64 {
					args = append(args, share)
				} else {
					args = append(args, float32(share))
				}
				exec = tr.accumExec
				if m == len(micro)-1 {
					exec = tr.applyExec
				}
			}
			if cfg.Packing {
				args = append(args, b.Segments)
			}
			outs, err := exec.Call(append(args, extra...)...)
			if err != nil {
				return model.ExplainOOM(errors.WithMessagef(err, "train: step %d (%d × %d tokens)", tr.step+1, len(b.Tokens), b.T()))
			}
			vals := make([]float64, len(outs))
			for i, o := range outs {
				if i == 2 && len(outs) == 3+len(names) {
					check, _ = model.TensorFloat64(o)
				} else {
					vals[i] = scalar(o)
				}
				o.FinalizeAll()
			}
			if !isFinite(vals[0]) {
				return tr.nanError(fmt.Sprintf("the loss is %v", vals[0]), vals[0])
			}
			share := 1.0
			if cfg.GradAccum > 1 {
				share = float64(b.NumTokens) / float64(responseTokens)
			}
			loss += share * vals[0]
			first := 1
			if len(outs) == 3+len(names) {
				norm, first = vals[1], 3
			}
			for i, name := range names {
				v := vals[first+i]
				if name == "nonfinite" && v > 0 {
					return tr.nanError(fmt.Sprintf("%g token values are not finite", v), math.NaN())
				}
				metrics[i] += v / float64(len(micro))
			}
		}
		dt := time.Since(t0).Seconds()
		if !isFinite(norm) {
			return tr.nanError(fmt.Sprintf("the gradient norm is %v", norm), norm)
		}
		if err := tr.checkState(check); err != nil {
			return err
		}
		tr.step++
		if err := tr.publishPending(); err != nil {
			return err
		}
		tokensSince += realTokens
		if emaStep == 0 {
			emaStep = dt
		} else {
			emaStep = 0.9*emaStep + 0.1*dt
		}
		last := tr.step == cfg.Steps
		if tr.step%cfg.LogEvery == 0 || last || tr.dueHook() {
			rec := Record{Step: tr.step, Epoch: epoch, LR: lr, Loss: loss, GradNorm: norm, StepSeconds: dt,
				Elapsed: time.Since(start).Seconds(), Metrics: map[string]float64{}}
			rec.TokensPerSec = float64(tokensSince) / time.Since(lastLog).Seconds()
			tokensSince, lastLog = 0, time.Now()
			for i, name := range names {
				rec.Metrics[name] = metrics[i]
			}
			for _, h := range tr.Hooks {
				if h.Every > 0 && (tr.step%h.Every == 0 || last) {
					if err := h.Fn(tr.step, &rec); err != nil {
						return errors.WithMessagef(err, "train: hook %s at step %d", h.Name, tr.step)
					}
				}
			}
			tr.History = append(tr.History, rec)
			if err := tr.logRecord(rec); err != nil {
				return err
			}
			tr.progress(rec, emaStep)
		}
		if cfg.OutDir != "" && (last || (cfg.CheckpointEvery > 0 && tr.step%cfg.CheckpointEvery == 0)) {
			if err := tr.writePending(); err != nil {
				return err
			}
			if last {
				if err := tr.publishPending(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// checkState turns the step graph's non-finite counts into a NaNError naming the first variable.
func (tr *Trainer) checkState(counts []float64) error {
	var bad []string
	total := 0.0
	for i, c := range counts {
		if c != 0 || math.IsNaN(c) {
			total += c
			if i < len(tr.checked) {
				bad = append(bad, tr.checked[i])
			}
		}
	}
	if len(bad) == 0 {
		return nil
	}
	what := fmt.Sprintf("the updated state holds %g non-finite values, in %s", total, bad[0])
	if len(bad) > 1 {
		what += fmt.Sprintf(" and %d other tensors", len(bad)-1)
	}
	return tr.nanError(what, total)
}

func (tr *Trainer) nanError(what string, v float64) error {
	e := &NaNError{Step: tr.step, Steps: tr.Config.Steps, What: what, Value: v}
	if tr.Config.OutDir != "" {
		e.LastCheckpoint, _ = LatestCheckpoint(tr.Config.OutDir)
	}
	return e
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
