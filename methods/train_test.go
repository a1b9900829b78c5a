package methods

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// runMethod trains lm with a method for steps (batch 4), resuming from resume when set, stopping
// at stop.
func runMethod(t *testing.T, lm *model.LM, m train.Method, examples []data.Example, steps, stop int, dir, resume string) *train.Trainer {
	t.Helper()
	cfg := train.DefaultConfig(steps)
	cfg.LR, cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet, cfg.LogEvery = 3e-3, 4, 32, 16, true, 1
	cfg.Seed, cfg.OutDir = 4, dir
	if dir != "" {
		cfg.CheckpointEvery = 2
	}
	tr, err := train.New(lm, tokenizer.NewByteLevel(), cfg, m)
	if err != nil {
		t.Fatal(err)
	}
	if resume != "" {
		if err := tr.Resume(resume); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.RunUntil(examples, stop); err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestMethodsTrain: every registered method (and every baseline budget-matched, and the selecting
// ones under a schedule) builds from a full environment and takes steps; hard masks keep at most
// every token, and at least one, except a threshold (STM drops every token of a random model).
func TestMethodsTrain(t *testing.T) {
	type variant struct {
		name string
		edit func(o *Options)
	}
	var runs []variant
	for _, n := range Names() {
		runs = append(runs, variant{n, nil})
		in, _ := Lookup(n)
		if in.Native > 0 || in.Threshold {
			runs = append(runs, variant{n, func(o *Options) { o.BudgetMatched = true }})
		}
	}
	runs = append(runs, variant{"rho1", func(o *Options) { o.Schedule, o.RhoStart = ScheduleCosine, 1 }},
		variant{"alphatoken", func(o *Options) { o.Schedule, o.RhoStart = ScheduleLinear, 1 }})
	exs := copyTask(16)
	for _, v := range runs {
		label := v.name
		if v.edit != nil {
			label += "+options"
		}
		t.Run(label, func(t *testing.T) {
			lm := tinyLM(t, 3)
			env := testEnv(t, lm, 5)
			if v.edit != nil {
				v.edit(&env.Options)
			}
			m, err := Build(v.name, env)
			if err != nil {
				t.Fatal(err)
			}
			tr := runMethod(t, lm, m, exs, 5, 5, "", "")
			in, _ := Lookup(v.name)
			least := 1.0
			if in.Threshold && (v.edit == nil) {
				least = 0
			}
			for _, r := range tr.History {
				if math.IsNaN(r.Loss) {
					t.Fatalf("step %d: NaN loss", r.Step)
				}
				if kept, ok := r.Metrics["kept"]; ok && !(kept >= least && kept <= r.Metrics["tokens"]) {
					t.Fatalf("step %d kept %v of %v", r.Step, kept, r.Metrics["tokens"])
				}
			}
		})
	}
}

// TestScheduledKeepCounts: under a linear schedule from 1 to ρ, step s keeps exactly
// floor(ρ_s N + 0.5) of the batch's N tokens, starting with all of them.
func TestScheduledKeepCounts(t *testing.T) {
	lm := tinyLM(t, 3)
	env := testEnv(t, lm, 5)
	env.Options = Options{Rho: 0.5, Schedule: ScheduleLinear, RhoStart: 1}
	m, err := Build("random", env)
	if err != nil {
		t.Fatal(err)
	}
	tr := runMethod(t, lm, m, copyTask(16), 5, 5, "", "")
	for i, r := range tr.History {
		rho := 1 - 0.5*float64(i)/4
		if n := int(r.Metrics["tokens"]); int(r.Metrics["kept"]) != alphatoken.KeepCount(rho, n) || !near(r.Metrics["rho"], rho) {
			t.Fatalf("step %d: kept %v of %d at ρ %v, want ρ %v", i, r.Metrics["kept"], n, r.Metrics["rho"], rho)
		}
	}
	if tr.History[0].Metrics["kept"] != tr.History[0].Metrics["tokens"] {
		t.Fatalf("step 0 must keep every token")
	}
}

// TestAlphaTokenTrainingAndResume: the AlphaToken step trains (the full loss drops), keeps exactly
// floor(ρN+0.5) tokens per batch, and resumes bit-for-bit across a ValRefresh boundary (the
// validation gradient of the last refresh comes back from the checkpoint).
func TestAlphaTokenTrainingAndResume(t *testing.T) {
	examples := copyTask(60)
	run := func(dir string, stop int, resume string) *train.Trainer {
		lm := tinyLM(t, 9)
		env := testEnv(t, lm, 8)
		env.Valuation.ValRefresh = 3
		m, err := Build("alphatoken", env)
		if err != nil {
			t.Fatal(err)
		}
		return runMethod(t, lm, m, examples, 8, stop, dir, resume)
	}
	straight := run(t.TempDir(), 8, "")
	for _, r := range straight.History {
		if int(r.Metrics["kept"]) != alphatoken.KeepCount(0.5, int(r.Metrics["tokens"])) {
			t.Fatalf("step %d kept %v of %v tokens", r.Step, r.Metrics["kept"], r.Metrics["tokens"])
		}
	}
	if h := straight.History; !(h[len(h)-1].Metrics["full_loss"] < h[0].Metrics["full_loss"]) {
		t.Fatalf("full loss did not drop: %v -> %v", h[0].Metrics["full_loss"], h[len(h)-1].Metrics["full_loss"])
	}
	requireDeterministic(t, straight.LM.Backend)
	dir := t.TempDir()
	run(dir, 4, "")
	resumed := run(dir, 8, filepath.Join(dir, "checkpoint-4"))
	sameWeights(t, straight.LM, resumed.LM)
}

// sameWeights fails unless every variable of a is bit-identical in b.
func sameWeights(t *testing.T, a, b *model.LM) {
	t.Helper()
	for v := range a.Store.IterVariables() {
		w := b.Store.GetVariable(v.Path())
		if w == nil {
			t.Fatalf("%s missing after resume", v.Path())
		}
		x, _ := model.TensorFloat64(v.MustValue())
		y, _ := model.TensorFloat64(w.MustValue())
		for i := range x {
			if x[i] != y[i] && !(math.IsNaN(x[i]) && math.IsNaN(y[i])) {
				t.Fatalf("%s[%d]: straight %v, resumed %v", v.Path(), i, x[i], y[i])
			}
		}
	}
}

// TestTokenCleaningSelf: 10 steps in 5 chunks over one epoch: chunk 0 trains on every token,
// every later chunk keeps exactly the global top 60% of its own tokens (summed over its steps),
// and a run resumed inside a chunk ends bit-identical to a straight one.
func TestTokenCleaningSelf(t *testing.T) {
	examples := copyTask(40) // 10 batches of 4: one epoch
	run := func(dir string, stop int, resume string) *train.Trainer {
		lm := tinyLM(t, 6)
		m, err := Build("token-cleaning-self", testEnv(t, lm, 10))
		if err != nil {
			t.Fatal(err)
		}
		return runMethod(t, lm, m, examples, 10, stop, dir, resume)
	}
	straight := run(t.TempDir(), 10, "")
	kept, tokens := map[int]float64{}, map[int]float64{}
	for _, r := range straight.History {
		c := int(r.Metrics["chunk"])
		if c != (r.Step-1)/2 {
			t.Fatalf("step %d is in chunk %d", r.Step-1, c)
		}
		kept[c] += r.Metrics["kept"]
		tokens[c] += r.Metrics["tokens"]
	}
	for c := range 5 {
		want := alphatoken.KeepCount(0.6, int(tokens[c]))
		if c == 0 {
			want = int(tokens[c])
		}
		if int(kept[c]) != want {
			t.Errorf("chunk %d kept %v of %v tokens, want %d", c, kept[c], tokens[c], want)
		}
	}
	requireDeterministic(t, straight.LM.Backend)
	dir := t.TempDir()
	run(dir, 6, "") // checkpoints at 2, 4, 6: step 6 is the start of chunk 3, step 5 inside chunk 2
	resumed := run(dir, 10, filepath.Join(dir, "checkpoint-6"))
	sameWeights(t, straight.LM, resumed.LM)
}

// TestAccumulationAndPacking: AlphaToken with two micro-batches per step (its mask taken per
// micro-batch, the validation gradient refreshed once per step) trains and resumes bit-for-bit
// across a refresh; random-ρ trains on packed rows, keeping floor(ρN+0.5) of each batch's N
// tokens; AlphaToken refuses packing (its valuation does not keep to one example of a row).
func TestAccumulationAndPacking(t *testing.T) {
	examples := copyTask(40)
	run := func(dir string, stop int, resume string) *train.Trainer {
		lm := tinyLM(t, 9)
		env := testEnv(t, lm, 6)
		env.Valuation.ValRefresh = 3
		m, err := Build("alphatoken", env)
		if err != nil {
			t.Fatal(err)
		}
		cfg := train.DefaultConfig(6)
		cfg.LR, cfg.BatchSize, cfg.GradAccum, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet, cfg.LogEvery = 3e-3, 2, 2, 32, 16, true, 1
		cfg.Seed, cfg.OutDir, cfg.CheckpointEvery = 4, dir, 2
		tr, err := train.New(lm, tokenizer.NewByteLevel(), cfg, m)
		if err != nil {
			t.Fatal(err)
		}
		if resume != "" {
			if err := tr.Resume(resume); err != nil {
				t.Fatal(err)
			}
		}
		if err := tr.RunUntil(examples, stop); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	straight := run(t.TempDir(), 6, "")
	for _, r := range straight.History {
		if !(r.Metrics["kept"] >= 1 && r.Metrics["kept"] < r.Metrics["tokens"]) || math.IsNaN(r.Loss) {
			t.Fatalf("step %d: kept %v of %v (loss %v)", r.Step, r.Metrics["kept"], r.Metrics["tokens"], r.Loss)
		}
	}
	if model.Deterministic(straight.LM.Backend) { // bit-exact resuming needs a deterministic backend
		dir := t.TempDir()
		run(dir, 4, "")
		sameWeights(t, straight.LM, run(dir, 6, filepath.Join(dir, "checkpoint-4")).LM)
	}

	lm := tinyLM(t, 3)
	env := testEnv(t, lm, 4)
	env.Options.Rho = 0.5
	m, err := Build("random", env)
	if err != nil {
		t.Fatal(err)
	}
	cfg := train.DefaultConfig(4)
	cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet, cfg.LogEvery, cfg.Packing = 2, 32, 16, true, 1, true
	tr, err := train.New(lm, tokenizer.NewByteLevel(), cfg, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(examples); err != nil {
		t.Fatal(err)
	}
	for _, r := range tr.History {
		if n := int(r.Metrics["tokens"]); int(r.Metrics["kept"]) != alphatoken.KeepCount(0.5, n) {
			t.Fatalf("packed step %d: kept %v of %d", r.Step, r.Metrics["kept"], n)
		}
	}
	if tr.History[0].Metrics["tokens"] <= 2*float64(len(examples[0].Response())+1) {
		t.Fatalf("a packed batch of 2 rows holds only %v response tokens", tr.History[0].Metrics["tokens"])
	}
	at, err := Build("alphatoken", testEnv(t, lm, 4))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := train.New(lm, nil, cfg, at); err == nil {
		t.Fatal("alphatoken accepted packing")
	}
}

// TestAlphaTokenPreconditionAdam: with precondition adam the valuer reads the trainer's own AdamW
// moments (the host-created state is the optimizer's: one second moment per weight, the step
// count equals the steps taken); step 0 has no v̂ and keeps the same tokens as the plain values,
// later steps rank differently; and a run resumes bit-for-bit.
func TestAlphaTokenPreconditionAdam(t *testing.T) {
	examples := copyTask(60)
	run := func(pre alphatoken.Precondition, dir string, stop int, resume string) *train.Trainer {
		lm := tinyLM(t, 9)
		env := testEnv(t, lm, 6)
		env.Valuation.Precondition = pre
		m, err := Build("alphatoken", env)
		if err != nil {
			t.Fatal(err)
		}
		return runMethod(t, lm, m, examples, 6, stop, dir, resume)
	}
	plain := run("", "", 6, "")
	adam := run(alphatoken.PrecondAdam, "", 6, "")
	if a, p := adam.History[0], plain.History[0]; a.Loss != p.Loss || a.Metrics["kept"] != p.Metrics["kept"] {
		t.Fatalf("step 0: preconditioned loss %v, plain %v (no v̂ yet: they must agree)", a.Loss, p.Loss)
	}
	differ := false
	for i := 1; i < len(adam.History); i++ {
		differ = differ || adam.History[i].Loss != plain.History[i].Loss
	}
	if !differ {
		t.Fatal("preconditioned and plain runs took identical losses after step 0")
	}
	st := adam.LM.Store.GetVariable("/AdamOptimizer/step")
	if st == nil {
		t.Fatal("no /AdamOptimizer/step")
	}
	if s, _ := model.TensorFloat64(st.MustValue()); s[0] != 6 {
		t.Fatalf("AdamW step count %v, want 6", s[0])
	}
	n2 := 0
	for v := range adam.LM.Store.IterVariables() {
		if v.Trainable {
			if adam.LM.Store.GetVariable("/AdamOptimizer"+v.Path()+"_2nd_moment") == nil {
				t.Fatalf("no second moment for %s", v.Path())
			}
			n2++
		}
	}
	count := 0
	for v := range adam.LM.Store.IterVariables() {
		if len(v.Path()) > 11 && v.Path()[len(v.Path())-11:] == "_2nd_moment" {
			count++
		}
	}
	if count != n2 {
		t.Fatalf("%d second moments for %d weights", count, n2)
	}
	dir := t.TempDir()
	run(alphatoken.PrecondAdam, dir, 4, "")
	resumed := run(alphatoken.PrecondAdam, dir, 6, filepath.Join(dir, "checkpoint-4"))
	sameWeights(t, adam.LM, resumed.LM)
}

// TestClassMetrics: with Env.Classes a hard-mask method reports the kept and total tokens of the
// class (here: every third position) without changing what it trains: the losses are those of the
// run without it, bit for bit.
func TestClassMetrics(t *testing.T) {
	examples := copyTask(40)
	classes := newTable("classes", examples)
	for i := range examples {
		for p := range classes.Values[i] {
			if p%3 == 0 {
				classes.Values[i][p] = 1
			}
		}
	}
	for _, name := range []string{"alphatoken", "random"} {
		run := func(cls *TokenTable) *train.Trainer {
			lm := tinyLM(t, 9)
			env := testEnv(t, lm, 4)
			env.Classes = cls
			m, err := Build(name, env)
			if err != nil {
				t.Fatal(err)
			}
			return runMethod(t, lm, m, examples, 4, 4, "", "")
		}
		plain, with := run(nil), run(classes)
		for i, r := range with.History {
			if r.Loss != plain.History[i].Loss {
				t.Fatalf("%s step %d: loss %v with the class metrics, %v without", name, r.Step, r.Loss, plain.History[i].Loss)
			}
			kc, tc := r.Metrics["kept_class"], r.Metrics["tokens_class"]
			if !(tc > 0 && tc < r.Metrics["tokens"] && kc <= tc && kc <= r.Metrics["kept"] && kc >= r.Metrics["kept"]-(r.Metrics["tokens"]-tc)) {
				t.Fatalf("%s step %d: kept_class %v of tokens_class %v (kept %v of %v)", name, r.Step, kc, tc, r.Metrics["kept"], r.Metrics["tokens"])
			}
		}
		if _, ok := plain.History[0].Metrics["kept_class"]; ok {
			t.Fatal("kept_class reported without Env.Classes")
		}
	}
}
