package methods

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
)

// TestRegistry: every method is registered once with a summary; unknown names, missing inputs and
// options that do not apply are errors naming the method, the flag or the registered names.
func TestRegistry(t *testing.T) {
	want := []string{"adaptation-only", "alphatoken", "alphatoken-soft", "bottom", "causal-only", "direct-only", "full",
		"low-ppl", "random", "rho1", "sstoken", "stability-only", "stm", "token-cleaning", "token-cleaning-self", "xtf"}
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("registered %v", got)
	}
	var usage bytes.Buffer
	Usage(&usage)
	for _, n := range want {
		if !strings.Contains(usage.String(), "  "+n+" ") {
			t.Errorf("usage misses %s:\n%s", n, usage.String())
		}
	}
	if _, err := Lookup("tokencleaning"); err == nil || !strings.Contains(err.Error(), "registered: adaptation-only, alphatoken") {
		t.Errorf("unknown method: %v", err)
	}
	lm := tinyLM(t, 1)
	cases := []struct {
		name string
		edit func(e *Env)
		want string
	}{
		{"alphatoken", func(e *Env) { e.Fisher = nil }, "needs --fisher"},
		{"alphatoken", func(e *Env) { e.Val = nil }, "needs --val"},
		{"rho1", func(e *Env) { e.Helper = nil }, "needs --helper"},
		{"token-cleaning", func(e *Env) { e.Helper = nil }, "needs --helper"},
		{"stability-only", func(e *Env) { e.Fisher, e.FisherNone = nil, true }, "not none"},
		{"random", func(e *Env) { e.Options.Rho = 0 }, "--rho"},
		{"full", func(e *Env) { e.Options.Schedule = ScheduleLinear }, "keeps no ρ share"},
		{"full", func(e *Env) { e.Options.BudgetMatched = true }, "--budget-matched does not apply"},
		{"random", func(e *Env) { e.Options.Schedule = "zigzag" }, "unknown --rho-schedule"},
		{"stm", func(e *Env) { e.Options.Schedule = ScheduleCosine }, "needs --budget-matched"},
		{"sstoken", func(e *Env) { e.Options.Params = map[string]float64{"temperature": 2} }, "has no parameter --temperature (its parameters: --gamma, --gamma-warmup)"},
		{"stm", func(e *Env) { e.Options.Params = map[string]float64{"ppl-threshold": 0.5} }, "--ppl-threshold must be > 1"},
		{"alphatoken-soft", func(e *Env) { e.Options.Params = map[string]float64{"temperature": 0} }, "--temperature must be > 0"},
		{"token-cleaning-self", func(e *Env) { e.Options.Params = map[string]float64{"chunks": 1} }, "--chunks must be an integer ≥ 2"},
	}
	for _, c := range cases {
		env := testEnv(t, lm, 10)
		c.edit(env)
		if _, err := Build(c.name, env); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: want an error containing %q, got %v", c.name, c.want, err)
		}
	}
	// --fisher none is an explicit choice: AlphaToken then ranks by the adaptation terms, with a warning.
	env := testEnv(t, lm, 10)
	var log bytes.Buffer
	env.Fisher, env.FisherNone, env.Log = nil, true, &log
	if _, err := Build("alphatoken", env); err != nil || !strings.Contains(log.String(), "stability (Fisher-drift) term is off") {
		t.Errorf("--fisher none: %v, log %q", err, log.String())
	}
}

// TestSchedule: constant, linear and cosine keep ratios from ρ_start at step 0 to ρ_end at the
// last step; budget matching and native ratios decide ρ_end.
func TestSchedule(t *testing.T) {
	lm := tinyLM(t, 1)
	env := testEnv(t, lm, 11)
	env.info, _ = Lookup("random")
	env.Options.Rho = 0.5
	if s := env.schedule(); s.at(0) != 0.5 || s.at(10) != 0.5 {
		t.Fatalf("constant: %v %v", s.at(0), s.at(10))
	}
	env.Options.Schedule, env.Options.RhoStart = ScheduleLinear, 1
	s := env.schedule()
	if s.at(0) != 1 || s.at(10) != 0.5 || !near(s.at(5), 0.75) || s.at(20) != 0.5 {
		t.Fatalf("linear: %v %v %v %v", s.at(0), s.at(5), s.at(10), s.at(20))
	}
	env.Options.Schedule = ScheduleCosine
	s = env.schedule()
	if s.at(0) != 1 || !near(s.at(10), 0.5) || !near(s.at(5), 0.75) || !(s.at(2) > 1-0.25*2/10) {
		t.Fatalf("cosine: %v %v %v (slow start: %v)", s.at(0), s.at(5), s.at(10), s.at(2))
	}
	env.info, _ = Lookup("rho1") // native 0.6 unless budget matched
	env.Options.Schedule = ScheduleConstant
	if r := env.KeepRatio(); r != 0.6 {
		t.Fatalf("rho1 native ratio %v", r)
	}
	env.Options.BudgetMatched = true
	if r := env.KeepRatio(); r != 0.5 {
		t.Fatalf("rho1 budget-matched ratio %v", r)
	}
}

// TestSelectPerRow: each row keeps its own k highest valid scores, ties to the earlier position,
// k = 0 keeps nothing; MinMaxPerRow rescales each row's valid values to [0, 1].
func TestSelectPerRow(t *testing.T) {
	backend := testBackend(t)
	score := [][]float64{{5, 1, 3, 3, 9, 0}, {2, 2, 2, 7, 1, 8}, {1, 2, 3, 4, 5, 6}}
	valid := [][]bool{{true, true, true, true, false, false}, {true, true, true, true, true, true}, {true, true, true, false, false, false}}
	k := []int32{2, 3, 0}
	got := MustExecOnce(backend, func(s, v, k *Node) *Node { return SelectPerRow(s, v, k) }, score, valid, k).Value().([][]bool)
	want := [][]bool{
		{true, false, true, false, false, false}, // 5, then the first of the tied 3s (9 is not valid)
		{true, false, false, true, false, true},  // 8, 7, then the first 2
		{false, false, false, false, false, false},
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("row %d: kept %v, want %v", i, got[i], want[i])
		}
	}
	mm := MustExecOnce(backend, func(s, v *Node) *Node { return MinMaxPerRow(s, v) }, score, valid).Value().([][]float64)
	wantMM := [][]float64{{1, 0, 0.5, 0.5, 0, 0}, {1.0 / 7, 1.0 / 7, 1.0 / 7, 6.0 / 7, 0, 1}, {0, 0.5, 1, 0, 0, 0}}
	for i := range wantMM {
		for j := range wantMM[i] {
			if math.Abs(mm[i][j]-wantMM[i][j]) > 1e-12 {
				t.Fatalf("minmax row %d: %v, want %v", i, mm[i], wantMM[i])
			}
		}
	}
	if k := rowKeepCounts(0.6, [][]float32{{1, 1, 1, 1, 1}, {0, 1}, {0, 0}}); !slices.Equal(k, []int32{3, 1, 0}) {
		t.Fatalf("⌈0.6·5⌉ etc.: %v", k)
	}
}
