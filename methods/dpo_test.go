package methods

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/dpo"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// reversalPairs: prompt "abc=", chosen the reversal "cba", rejected a plausible wrong one (the
// first two letters swapped, "bca"), so a few tokens decide the preference. Flattened chosen,
// rejected, … (dpo.Examples).
func reversalPairs(n int) []data.Example {
	tok := tokenizer.NewByteLevel()
	var pairs []data.Pair
	for i := range n {
		word := []byte{byte('a' + i%7), byte('a' + (i/7)%5), byte('a' + (i/3)%4)}
		prompt := append([]int{tokenizer.ByteBOS}, tok.Encode(string(word)+"=")...)
		mk := func(resp string) data.Example {
			ids := append(append([]int(nil), prompt...), append(tok.Encode(resp), tokenizer.ByteEOS)...)
			return data.Example{IDs: ids, PromptLen: len(prompt), Source: "pairs.jsonl"}
		}
		good := string([]byte{word[2], word[1], word[0]})
		bad := string([]byte{word[1], word[2], word[0]})
		if good == bad {
			bad = string([]byte{word[2], word[1], 'z'})
		}
		pairs = append(pairs, data.Pair{Chosen: mk(good), Rejected: mk(bad)})
	}
	return dpo.Examples(pairs)
}

// testDPOEnv is a DPOEnv on lm with every input a DPO method may need: the reference (a copy of
// lm), a diagonal Fisher of it, validation pairs, an oracle pair (copies of lm).
func testDPOEnv(t testing.TB, lm *model.LM, steps int) *DPOEnv {
	env := testEnv(t, lm, steps)
	env.Val = nil
	return &DPOEnv{Env: *env, DPO: dpo.DefaultConfig(), ValPairs: reversalPairs(40)[60:], RefLogps: RefPrecompute,
		Oracle: env.Ref, OracleRef: env.Ref, Seed: 1, Stop: []int{tokenizer.ByteEOS}}
}

// runDPO trains lm with a DPO method on pair batches of 4 pairs (GroupSize 2).
func runDPO(t *testing.T, lm *model.LM, m train.Method, examples []data.Example, steps, stop int, dir, resume string) *train.Trainer {
	t.Helper()
	cfg := train.DefaultConfig(steps)
	cfg.LR, cfg.BatchSize, cfg.GroupSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet, cfg.LogEvery = 3e-3, 4, 2, 32, 16, true, 1
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

// TestDPOMethodsTrain: every registered DPO method builds from a full environment and takes steps
// with finite metrics; a method that selects keeps exactly floor(ρN+0.5) of each branch's tokens
// (separate thresholds) or of the batch's (shared).
func TestDPOMethodsTrain(t *testing.T) {
	exs := reversalPairs(12)
	type variant struct {
		name string
		edit func(e *DPOEnv)
	}
	var runs []variant
	for _, n := range DPONames() {
		runs = append(runs, variant{n, nil})
	}
	runs = append(runs,
		variant{"alphatoken", func(e *DPOEnv) { e.DPO.Threshold, e.DPO.Coefficient = dpo.Shared, dpo.Masked }},
		variant{"alphatoken", func(e *DPOEnv) { e.DPO.Loss, e.RefLogps = dpo.LossIPO, RefOnline }},
		variant{"dpo", func(e *DPOEnv) { e.DPO.Loss = dpo.LossHinge }},
		variant{"confpo", func(e *DPOEnv) { e.Options.BudgetMatched = true }},
		variant{"confpo", func(e *DPOEnv) { e.Options.Params = map[string]float64{"confpo-simpo": 1} }},
		variant{"sepo", func(e *DPOEnv) { e.Options.BudgetMatched = true }},
		variant{"ti-dpo", func(e *DPOEnv) { e.RefLogps = RefOnline }})
	for i, v := range runs {
		t.Run(fmt.Sprintf("%s/%d", v.name, i), func(t *testing.T) {
			lm := tinyLM(t, 3)
			env := testDPOEnv(t, lm, 2)
			if v.edit != nil {
				v.edit(env)
			}
			m, err := BuildDPO(v.name, env)
			if err != nil {
				t.Fatal(err)
			}
			tr := runDPO(t, lm, m, exs, 2, 2, "", "")
			in, _ := LookupDPO(v.name)
			for _, r := range tr.History {
				for k, x := range r.Metrics {
					if math.IsNaN(x) || math.IsInf(x, 0) {
						t.Errorf("step %d: %s = %v", r.Step, k, x)
					}
				}
				if math.IsNaN(r.Loss) {
					t.Errorf("step %d: loss NaN", r.Step)
				}
				kc, kr, nc, nr := r.Metrics["kept_chosen"], r.Metrics["kept_rejected"], r.Metrics["tokens_chosen"], r.Metrics["tokens_rejected"]
				tw, tc, tr, one := r.Metrics["twin_tokens"], r.Metrics["twin_kept_chosen"], r.Metrics["twin_kept_rejected"], r.Metrics["twin_onesided"]
				if tc > tw || tr > tw || tw > min(nc, nr) || one < math.Abs(tc-tr) || one > min(tc+tr, 2*tw-tc-tr) || math.Mod(tc+tr-one, 2) != 0 ||
					(!in.Selects && (tc != tw || tr != tw || one != 0)) {
					t.Errorf("step %d: twin counts %v tokens, %v/%v kept, %v one-sided are inconsistent", r.Step, tw, tc, tr, one)
				}
				if fk, fc, fr := r.Metrics["fork_tokens"], r.Metrics["fork_kept_chosen"], r.Metrics["fork_kept_rejected"]; fc > fk || fr > fk || fk > min(nc, nr) || fk == 0 ||
					(!in.Selects && (fc != fk || fr != fk)) { // reversal pairs differ: every batch has forks
					t.Errorf("step %d: fork counts %v, kept %v/%v", r.Step, fk, fc, fr)
				}
				budget := env.Options.BudgetMatched || (in.Native == 0 && !in.Threshold)
				switch {
				case !in.Selects:
					if kc != nc || kr != nr {
						t.Errorf("step %d: %s keeps %v/%v of %v/%v tokens", r.Step, v.name, kc, kr, nc, nr)
					}
				case budget && env.DPO.Threshold == dpo.Separate:
					if int(kc) != alphatoken.KeepCount(0.5, int(nc)) || int(kr) != alphatoken.KeepCount(0.5, int(nr)) {
						t.Errorf("step %d: kept %v/%v of %v/%v tokens, want floor(ρN+0.5) per branch", r.Step, kc, kr, nc, nr)
					}
				case budget && env.DPO.Threshold == dpo.Shared:
					if int(kc+kr) != alphatoken.KeepCount(0.5, int(nc+nr)) {
						t.Errorf("step %d: kept %v+%v of %v+%v tokens, want floor(ρN+0.5) of the batch", r.Step, kc, kr, nc, nr)
					}
				}
			}
		})
	}
}

// TestDPOLearnsPreference: plain DPO on the reversal pairs raises the reward accuracy and lowers
// the loss below log 2 (its value at the reference).
func TestDPOLearnsPreference(t *testing.T) {
	lm := tinyLM(t, 5)
	env := testDPOEnv(t, lm, 30)
	env.DPO.Beta = 0.5
	m, err := BuildDPO("dpo", env)
	if err != nil {
		t.Fatal(err)
	}
	tr := runDPO(t, lm, m, reversalPairs(40), 30, 30, "", "")
	first, last := tr.History[0], tr.History[len(tr.History)-1]
	if math.Abs(first.Loss-math.Ln2) > 1e-4 {
		t.Errorf("step 1 loss %.6f: the policy starts at the reference, so it should be log 2", first.Loss)
	}
	var acc, loss float64
	for _, r := range tr.History[len(tr.History)-5:] {
		acc += r.Metrics["reward_accuracy"] / 5
		loss += r.Loss / 5
	}
	if acc < 0.8 || loss > 0.5 {
		t.Errorf("after 30 steps: reward accuracy %.2f, loss %.3f (last %v)", acc, loss, last.Metrics)
	}
}

// TestDPOResumeBitExact: AlphaToken DPO for 6 steps straight equals 2 steps, a checkpoint and 4
// more in a new trainer resumed from it (the reference table comes back from the cache).
func TestDPOResumeBitExact(t *testing.T) {
	exs := reversalPairs(16)
	run := func(dir string, stop int, resume string) *train.Trainer {
		lm := tinyLM(t, 7)
		env := testDPOEnv(t, lm, 6)
		env.Cache = filepath.Join(dir, "cache")
		m, err := BuildDPO("alphatoken", env)
		if err != nil {
			t.Fatal(err)
		}
		return runDPO(t, lm, m, exs, 6, stop, dir, resume)
	}
	straight := run(t.TempDir(), 6, "")
	requireDeterministic(t, straight.LM.Backend)
	dir := t.TempDir()
	run(dir, 2, "")
	resumed := run(dir, 6, filepath.Join(dir, "checkpoint-2"))
	for v := range straight.LM.Store.IterVariables() {
		w := resumed.LM.Store.GetVariable(v.Path())
		if w == nil {
			t.Fatalf("%s missing after resume", v.Path())
		}
		a, _ := model.TensorFloat64(v.MustValue())
		b, _ := model.TensorFloat64(w.MustValue())
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s[%d]: straight %v, resumed %v", v.Path(), i, a[i], b[i])
			}
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "cache"))
	if len(entries) == 0 {
		t.Error("no cached reference log-probabilities")
	}
}

// TestDPONaNStops: a NaN in the policy stops DPO training with a NaNError; the last checkpoint
// (written before) is untouched and finite.
func TestDPONaNStops(t *testing.T) {
	exs := reversalPairs(16)
	lm := tinyLM(t, 2)
	dir := t.TempDir()
	env := testDPOEnv(t, lm, 6)
	m, err := BuildDPO("alphatoken", env)
	if err != nil {
		t.Fatal(err)
	}
	cfg := train.DefaultConfig(6)
	cfg.BatchSize, cfg.GroupSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet, cfg.CheckpointEvery, cfg.OutDir = 4, 2, 32, 16, true, 2, dir
	tr, err := train.New(lm, tokenizer.NewByteLevel(), cfg, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.RunUntil(exs, 2); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "checkpoint-2", "model.safetensors"))
	v := lm.Param("model.norm.weight")
	vals := make([]float64, v.Shape().Size())
	vals[0] = math.NaN()
	tt, _ := model.TensorFromFloat64(vals, dtypes.Float32, v.Shape().Dimensions...)
	if err := v.SetValue(tt); err != nil {
		t.Fatal(err)
	}
	err = tr.Run(exs)
	var nan *train.NaNError
	if !errors.As(err, &nan) || nan.Step != 2 {
		t.Fatalf("want a NaNError at step 2, got %v", err)
	}
	latest, _ := train.LatestCheckpoint(dir)
	after, _ := os.ReadFile(filepath.Join(latest, "model.safetensors"))
	if filepath.Base(latest) != "checkpoint-2" || string(before) != string(after) {
		t.Fatalf("the last checkpoint changed: %s", latest)
	}
	back, err := model.Load(testBackend(t), latest, dtypes.Float32)
	if err != nil {
		t.Fatal(err)
	}
	named, _ := back.ParamTensors()
	for _, nt := range named {
		xs, _ := model.TensorFloat64(nt.Tensor)
		for _, x := range xs {
			if math.IsNaN(x) {
				t.Fatalf("checkpoint-2 holds a NaN in %s", nt.Name)
			}
		}
	}
}

// TestDPOBadInputs: a reference with another vocabulary, SePO without its oracle, AlphaToken
// without validation pairs, and bad DPO settings are errors naming the flag.
func TestDPOBadInputs(t *testing.T) {
	lm := tinyLM(t, 1)
	other := *lm.Config
	other.VocabSize = lm.Config.VocabSize + 3
	ref, err := model.New(testBackend(t), &other, dtypes.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, method, want string
		edit               func(e *DPOEnv)
	}{
		{"vocabulary", "dpo", "--ref: the reference model's vocabulary", func(e *DPOEnv) { e.Ref = ref }},
		{"oracle", "sepo", "--oracle", func(e *DPOEnv) { e.Oracle = nil }},
		{"oracle vocabulary", "sepo", "--oracle", func(e *DPOEnv) { e.Oracle = ref }},
		{"val", "alphatoken", "needs --val", func(e *DPOEnv) { e.ValPairs = nil }},
		{"beta", "dpo", "--beta", func(e *DPOEnv) { e.DPO.Beta = 0 }},
		{"loss", "dpo", "--loss", func(e *DPOEnv) { e.DPO.Loss = "kto" }},
		{"threshold", "alphatoken", "--dpo-threshold", func(e *DPOEnv) { e.DPO.Threshold = "both" }},
		{"ref-logps", "dpo", "--ref-logps", func(e *DPOEnv) { e.RefLogps = "cached" }},
		{"method", "nope", "unknown DPO method", nil},
	}
	for _, c := range cases {
		env := testDPOEnv(t, lm, 2)
		if c.edit != nil {
			c.edit(env)
		}
		_, err := BuildDPO(c.method, env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
}
