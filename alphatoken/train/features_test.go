package train

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/internal/tfevents"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// tinyLM64 is tinyLM in float64, for identities that must hold to rounding.
func tinyLM64(t testing.TB, seed uint64) *model.LM {
	cfg := *tinyLM(t, seed).Config
	cfg.DType = "float64"
	lm, err := model.New(testBackend(t), &cfg, dtypes.Float64, seed)
	if err != nil {
		t.Fatal(err)
	}
	return lm
}

// variedTask is copyTask with responses of different lengths, so micro-batches carry different
// numbers of response tokens.
func variedTask(n int) []data.Example {
	tok := tokenizer.NewByteLevel()
	var out []data.Example
	for i := range n {
		prompt := append([]int{tokenizer.ByteBOS}, tok.Encode(strings.Repeat("p", 1+i%3)+"=")...)
		resp := append(tok.Encode(strings.Repeat(string(rune('a'+i%5)), 1+(i*7)%9)), tokenizer.ByteEOS)
		out = append(out, data.Example{IDs: append(prompt, resp...), PromptLen: len(prompt)})
	}
	return out
}

func params(t *testing.T, lm *model.LM) map[string][]float64 {
	named, err := lm.ParamTensors()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float64{}
	for _, nt := range named {
		out[nt.Name], _ = model.TensorFloat64(nt.Tensor)
	}
	return out
}

// TestGradAccumMatchesBigBatch: one step over 8 examples as 2 micro-batches of 4 has the loss,
// the gradient (its norm) and the update of one batch of 8 (full fine-tuning, float64): each
// micro-batch's gradient is weighted by its share of the step's response tokens.
func TestGradAccumMatchesBigBatch(t *testing.T) {
	examples := variedTask(8)
	run := func(batch, accum int) (*Trainer, map[string][]float64) {
		lm := tinyLM64(t, 11)
		cfg := DefaultConfig(1)
		cfg.LR, cfg.BatchSize, cfg.GradAccum, cfg.MaxLen, cfg.BucketQuantum = 1e-2, batch, accum, 32, 8
		cfg.Quiet, cfg.LogEvery, cfg.ClipNorm = true, 1, -1
		tr := runTrainer(t, lm, cfg, Full{}, "", examples, 1)
		return tr, params(t, lm)
	}
	big, wBig := run(8, 1)
	acc, wAcc := run(4, 2)
	// The two micro-batches carry different numbers of response tokens, so weighting them equally
	// (the mean of the two means) would not give the big batch's loss.
	lengths := make([]int, len(examples))
	for i := range examples {
		lengths[i] = len(examples[i].IDs)
	}
	sampler := data.Sampler{Lengths: lengths, BatchSize: 4}
	var n [2]int
	for m, ids := range sampler.Epoch(0) {
		for _, i := range ids {
			n[m] += len(examples[i].LabelPositions())
		}
	}
	if n[0] == n[1] {
		t.Fatalf("both micro-batches have %d response tokens: the test cannot tell the weighting", n[0])
	}
	if d := math.Abs(acc.History[0].Loss - big.History[0].Loss); d > 1e-12 {
		t.Errorf("loss: accumulated %.15g, big batch %.15g", acc.History[0].Loss, big.History[0].Loss)
	}
	if d := math.Abs(acc.History[0].GradNorm-big.History[0].GradNorm) / big.History[0].GradNorm; d > 1e-12 {
		t.Errorf("gradient norm: accumulated %.15g, big batch %.15g", acc.History[0].GradNorm, big.History[0].GradNorm)
	}
	for name, a := range wBig {
		b := wAcc[name]
		for i := range a {
			if math.Abs(a[i]-b[i]) > 1e-9 {
				t.Fatalf("%s[%d] after the step: big batch %.12g, accumulated %.12g", name, i, a[i], b[i])
			}
		}
	}
}

// TestGradAccumResumeBitExact: with accumulation, 6 straight steps equal 3, a checkpoint, and 3
// more in a resumed trainer (the accumulators are empty between steps and not saved).
func TestGradAccumResumeBitExact(t *testing.T) {
	examples := variedTask(20)
	run := func(dir string, stop int, resume string) *Trainer {
		cfg := DefaultConfig(6)
		cfg.LR, cfg.BatchSize, cfg.GradAccum, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet = 3e-3, 3, 2, 32, 16, true
		cfg.CheckpointEvery, cfg.OutDir, cfg.Seed = 3, dir, 5
		return runTrainer(t, tinyLM(t, 9), cfg, Full{}, resume, examples, stop)
	}
	straight := run(t.TempDir(), 6, "")
	requireDeterministic(t, straight.LM.Backend)
	dir := t.TempDir()
	run(dir, 3, "")
	resumed := run(dir, 6, filepath.Join(dir, "checkpoint-3"))
	for v := range straight.LM.Store.IterVariables() {
		if strings.HasPrefix(v.Path(), accumScope) {
			continue
		}
		a, _ := model.TensorFloat64(v.MustValue())
		b, _ := model.TensorFloat64(resumed.LM.Store.GetVariable(v.Path()).MustValue())
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s[%d]: straight %v, resumed %v", v.Path(), i, a[i], b[i])
			}
		}
	}
	st, _, err := model.ReadSafetensors(filepath.Join(dir, "checkpoint-6", "trainer_state.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range st {
		if strings.HasPrefix(name, accumScope) {
			t.Fatalf("the accumulator %s was saved", name)
		}
	}
}

// TestClipNorm: a negative ClipNorm disables clipping (the same update as a threshold that never
// binds), and a binding threshold changes the update.
func TestClipNorm(t *testing.T) {
	examples := copyTask(16)
	run := func(clip float64) map[string][]float64 {
		lm := tinyLM(t, 4)
		cfg := DefaultConfig(3)
		cfg.LR, cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet, cfg.ClipNorm = 1e-2, 4, 32, 16, true, clip
		runTrainer(t, lm, cfg, Full{}, "", examples, 3)
		return params(t, lm)
	}
	off, loose, tight := run(-1), run(1e9), run(1e-7)
	same := func(a, b map[string][]float64) bool {
		for n := range a {
			for i := range a[n] {
				if a[n][i] != b[n][i] {
					return false
				}
			}
		}
		return true
	}
	if !same(off, loose) {
		t.Error("ClipNorm -1 and a threshold that never binds give different updates")
	}
	if same(off, tight) {
		t.Error("a binding clip threshold changed nothing")
	}
}

func TestSchedules(t *testing.T) {
	c := DefaultConfig(110)
	c.WarmupSteps, c.LR, c.MinLRRatio = 10, 1, 0.1
	for _, tc := range []struct {
		s          Schedule
		step       int
		want       float64
		whatIsThis string
	}{
		{ScheduleLinear, 0, 0.1, "warm-up"},
		{ScheduleLinear, 10, 1, "peak"},
		{ScheduleLinear, 60, 0.55, "midway"},
		{ScheduleLinear, 110, 0.1, "end"},
		{ScheduleConstant, 5, 0.6, "warm-up"},
		{ScheduleConstant, 60, 1, "after warm-up"},
		{ScheduleConstant, 110, 1, "end"},
		{ScheduleCosine, 60, 0.55, "midway"},
		{ScheduleCosine, 35, 0.1 + 0.9*0.5*(1+math.Cos(math.Pi/4)), "quarter"},
	} {
		c.Schedule = tc.s
		if got := c.LearningRate(tc.step); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s at step %d (%s): %g, want %g", tc.s, tc.step, tc.whatIsThis, got, tc.want)
		}
	}
	c.Schedule = "exp"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "cosine, linear, constant") {
		t.Errorf("unknown schedule: %v", err)
	}
}

// TestConfigRejectsNonFinite: NaN and ±Inf settings are errors naming the setting.
func TestConfigRejectsNonFinite(t *testing.T) {
	for _, set := range []func(*Config){
		func(c *Config) { c.LR = math.NaN() },
		func(c *Config) { c.LR = math.Inf(1) },
		func(c *Config) { c.ClipNorm = math.NaN() },
		func(c *Config) { c.WeightDecay = math.Inf(1) },
		func(c *Config) { c.GradAccum = -1 },
	} {
		c := DefaultConfig(10)
		set(&c)
		if _, err := New(tinyLM(t, 1), nil, c, Full{}); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// TestPackingSameLoss: one step on the examples packed into rows has the loss and the gradient of
// the same examples one per row (float64; the model test TestPackedRowsMatchSeparate checks the
// per-token logits).
func TestPackingSameLoss(t *testing.T) {
	examples := variedTask(12)
	lengths := make([]int, len(examples))
	for i := range examples {
		lengths[i] = len(examples[i].IDs)
	}
	rows := data.Pack(lengths, 32)
	if len(rows) >= len(examples)/2 {
		t.Fatalf("%d examples packed into %d rows", len(examples), len(rows))
	}
	run := func(packing bool, batch int) *Trainer {
		cfg := DefaultConfig(1)
		cfg.LR, cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet, cfg.LogEvery, cfg.ClipNorm = 1e-3, batch, 32, 8, true, 1, -1
		cfg.Packing = packing
		return runTrainer(t, tinyLM64(t, 3), cfg, Full{}, "", examples, 1)
	}
	packed, separate := run(true, len(rows)), run(false, len(examples))
	if p, s := packed.History[0], separate.History[0]; math.Abs(p.Loss-s.Loss) > 1e-12 ||
		math.Abs(p.GradNorm-s.GradNorm) > 1e-12*s.GradNorm || p.Metrics["tokens"] != s.Metrics["tokens"] {
		t.Fatalf("packed: loss %.15g, grad norm %.15g, %g tokens; separate: %.15g, %.15g, %g",
			p.Loss, p.GradNorm, p.Metrics["tokens"], s.Loss, s.GradNorm, s.Metrics["tokens"])
	}
	if got := RowsPerEpoch(examples, packed.Config); got != len(rows) {
		t.Errorf("RowsPerEpoch = %d, want %d", got, len(rows))
	}
	// A method that does not keep attention inside each example is refused.
	cfg := DefaultConfig(1)
	cfg.Packing, cfg.MaxLen = true, 32
	if _, err := New(tinyLM(t, 1), nil, cfg, notPacking{}); err == nil || !strings.Contains(err.Error(), "does not support packing") {
		t.Errorf("packing with a method without support: %v", err)
	}
}

type notPacking struct{ Full }

func (notPacking) SupportsPacking() bool { return false }

// TestTensorBoardEvents: the logged steps reach TensorBoard event files with the same values as
// metrics.jsonl, and a resumed run leaves each step logged once.
func TestTensorBoardEvents(t *testing.T) {
	examples := copyTask(24)
	dir := t.TempDir()
	tb := filepath.Join(dir, "tb")
	run := func(stop int, resume string) *Trainer {
		cfg := DefaultConfig(6)
		cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet, cfg.LogEvery = 4, 32, 16, true, 1
		cfg.OutDir, cfg.CheckpointEvery, cfg.TensorBoardDir = dir, 2, tb
		return runTrainer(t, tinyLM(t, 6), cfg, Full{}, resume, examples, stop)
	}
	first := run(4, "")
	resumed := run(6, filepath.Join(dir, "checkpoint-2"))
	files, err := tfevents.Files(tb)
	if err != nil || len(files) != 2 {
		t.Fatalf("event files %v (%v)", files, err)
	}
	losses := map[int64][]float32{}
	for _, f := range files {
		events, err := tfevents.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if events[0].FileVersion != tfevents.FileVersion {
			t.Fatalf("%s starts with %+v", f, events[0])
		}
		for _, e := range events[1:] {
			for _, s := range e.Scalars {
				if s.Tag == "train/loss" {
					losses[e.Step] = append(losses[e.Step], s.Value)
				}
			}
		}
	}
	want := map[int64]float64{}
	for _, r := range first.History[:2] {
		want[int64(r.Step)] = r.Loss
	}
	for _, r := range resumed.History {
		want[int64(r.Step)] = r.Loss
	}
	for step := int64(1); step <= 6; step++ {
		if len(losses[step]) != 1 || losses[step][0] != float32(want[step]) {
			t.Errorf("step %d: train/loss events %v, want one %v", step, losses[step], float32(want[step]))
		}
	}
}

// TestDivergenceNeverCheckpointed: a learning rate that makes the run diverge stops it with an
// error naming the step; every checkpoint left is finite, the newest one's next step is finite
// (resuming from it runs), and no temporary directory is left.
func TestDivergenceNeverCheckpointed(t *testing.T) {
	examples := copyTask(24)
	dir := t.TempDir()
	cfg := DefaultConfig(20)
	cfg.LR, cfg.WarmupSteps, cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet = 1e9, 3, 4, 32, 16, true
	cfg.CheckpointEvery, cfg.KeepCheckpoints, cfg.OutDir = 1, 100, dir
	tr, err := New(tinyLM(t, 2), tokenizer.NewByteLevel(), cfg, Full{})
	if err != nil {
		t.Fatal(err)
	}
	err = tr.Run(examples)
	var nan *NaNError
	if !errors.As(err, &nan) {
		t.Fatalf("want a NaNError, got %v", err)
	}
	t.Logf("%v", err)
	latest, _ := LatestCheckpoint(dir)
	if nan.LastCheckpoint != latest || !strings.Contains(err.Error(), "step "+strconv.Itoa(nan.Step+1)+" of 20") {
		t.Fatalf("error %q; newest checkpoint %q", err, latest)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary %s left", e.Name())
		}
		if !strings.HasPrefix(e.Name(), "checkpoint-") {
			continue
		}
		back, err := model.Load(testBackend(t), filepath.Join(dir, e.Name()), dtypes.Float32)
		if err != nil {
			t.Fatal(err)
		}
		for name, vals := range params(t, back) {
			for _, x := range vals {
				if math.IsNaN(x) || math.IsInf(x, 0) {
					t.Fatalf("%s holds a non-finite %s", e.Name(), name)
				}
			}
		}
	}
	if latest == "" {
		return // diverged at the first step: nothing was written
	}
	// The newest checkpoint's next step is finite.
	again, err := New(tinyLM(t, 2), tokenizer.NewByteLevel(), cfg, Full{})
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Resume(latest); err != nil {
		t.Fatal(err)
	}
	if err := again.RunUntil(examples, again.Step()+1); err != nil {
		t.Fatalf("the step after %s: %v", latest, err)
	}
}

// TestNonFiniteUpdateStops: a finite loss and gradient whose update overflows (a learning rate
// beyond float32) is caught by the state check: nothing is written.
func TestNonFiniteUpdateStops(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig(3)
	cfg.LR, cfg.WarmupSteps, cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet = 1e39, 1, 4, 32, 16, true
	cfg.CheckpointEvery, cfg.OutDir = 1, dir
	tr, err := New(tinyLM(t, 2), tokenizer.NewByteLevel(), cfg, Full{})
	if err != nil {
		t.Fatal(err)
	}
	err = tr.Run(copyTask(12))
	var nan *NaNError
	if !errors.As(err, &nan) || nan.Step != 0 || !strings.Contains(nan.What, "updated state") ||
		!strings.Contains(err.Error(), "no checkpoint was written") {
		t.Fatalf("want the state check at step 1, got %v", err)
	}
	if latest, _ := LatestCheckpoint(dir); latest != "" {
		t.Fatalf("checkpoint %s written", latest)
	}
}

// TestResumeChecksSettings: resuming with a setting that changes the run's math is an error listing
// each difference, unless ResumeOverride (then each is logged); a trainer state whose step is
// negative, beyond the run, or not its directory's is an error.
func TestResumeChecksSettings(t *testing.T) {
	examples := copyTask(16)
	dir := t.TempDir()
	base := func() Config {
		cfg := DefaultConfig(4)
		cfg.LR, cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet = 2e-3, 4, 32, 16, true
		cfg.CheckpointEvery, cfg.OutDir = 2, dir
		return cfg
	}
	first, err := New(tinyLM(t, 3), nil, base(), Full{})
	if err != nil {
		t.Fatal(err)
	}
	first.RunSettings = map[string]string{"data": "sha256:aaaa", "--rho": "0.5"}
	if err := first.RunUntil(examples, 2); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(dir, "checkpoint-2")
	resume := func(cfg Config, run map[string]string, override bool) (string, error) {
		tr, err := New(tinyLM(t, 3), nil, cfg, Full{})
		if err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		tr.Log, tr.RunSettings, tr.ResumeOverride = &log, run, override
		err = tr.Resume(ckpt)
		return log.String(), err
	}
	same := map[string]string{"data": "sha256:aaaa", "--rho": "0.5"}
	if _, err := resume(base(), same, false); err != nil {
		t.Fatalf("same settings: %v", err)
	}
	changed := base()
	changed.LR, changed.Seed, changed.Steps = 1e-3, 9, 6
	run := map[string]string{"data": "sha256:bbbb", "--rho": "0.5", "--lambda": "2"}
	_, err = resume(changed, run, false)
	for _, want := range []string{"LR: 0.002 → 0.001", "Seed: 0 → 9", "Steps: 4 → 6", "data: sha256:aaaa → sha256:bbbb",
		"--lambda: (none) → 2", "--resume-override"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("changed settings: want %q in %v", want, err)
		}
	}
	if err != nil && strings.Contains(err.Error(), "--rho") {
		t.Errorf("an unchanged setting is listed: %v", err)
	}
	log, err := resume(changed, run, true)
	if err != nil || !strings.Contains(log, "resume override: LR: 0.002 → 0.001") || strings.Count(log, "resume override:") != 5 {
		t.Fatalf("override: %v\n%s", err, log)
	}
	// Bad trainer states.
	stateFile := filepath.Join(ckpt, "trainer_state.json")
	raw, _ := os.ReadFile(stateFile)
	for _, tc := range []struct{ from, to, want string }{
		{`"step": 2`, `"step": -5`, "step -5 is negative"},
		{`"step": 2`, `"step": 3`, "says step 3, but the checkpoint is checkpoint-2"},
		{`"step": 2`, `"step": 1e30`, "parsing"},
		{`"method": "full"`, `"method": ""`, "no method"},
	} {
		if err := os.WriteFile(stateFile, []byte(strings.Replace(string(raw), tc.from, tc.to, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := resume(base(), same, true); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want %q, got %v", tc.to, tc.want, err)
		}
	}
	beyond := filepath.Join(dir, "checkpoint-1000")
	if err := os.Rename(ckpt, beyond); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(beyond, "trainer_state.json"), []byte(strings.Replace(string(raw), `"step": 2`, `"step": 1000`, 1)), 0o644)
	ckpt = beyond
	if _, err := resume(base(), same, true); err == nil || !strings.Contains(err.Error(), "step 1000, beyond this run's 4 steps") {
		t.Errorf("step beyond the run: %v", err)
	}
}

// FuzzTrainerState: trainer_state.json never panics the parser; what parses has a step ≥ 0, a
// method and a configuration with its defaults filled in.
func FuzzTrainerState(f *testing.F) {
	cfg := DefaultConfig(20)
	f.Add([]byte(`{"step": 4, "method": "full", "config": ` + string(cfg.JSON()) + `, "run": {"data": "x"}}`))
	f.Add([]byte(`{"step": -5, "method": "full", "config": {}}`))
	f.Add([]byte(`{"step": 1e30}`))
	f.Add([]byte(`{"step": 2, "method": "full", "config": {"LR": "x"}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		st, c, err := parseTrainerState(raw, "trainer_state.json")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "train: ") {
				t.Fatalf("error without the package name: %v", err)
			}
			return
		}
		if st.Step < 0 || st.Method == "" || c.BatchSize == 0 || c.GradAccum == 0 || c.Schedule == "" {
			t.Fatalf("accepted %+v / %+v", st, c)
		}
		_ = SettingsDiff(c.settings(), cfg.settings())
	})
}
