package ablations

import (
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alphatoken/alphatoken/ablations/minibench"
	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/model"
)

func TestBuiltinSuites(t *testing.T) {
	for _, name := range SuiteNames() {
		s, err := LoadSuite(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(s.Rows) == 0 {
			t.Fatalf("%s has no rows", name)
		}
	}
	s, _ := LoadSuite("sensitivity")
	if len(s.Rows) != 17 || s.Rows[0].Rho == nil || *s.Rows[0].Rho != 0.25 {
		t.Fatalf("sensitivity sweeps expanded to %d rows", len(s.Rows))
	}
}

func TestSuiteErrors(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"{\n  \"name\": \"x\",\n  \"rows\": [\n    {\"method\": \"full\", \"lamda\": 2}\n  ]\n}": `:4: unknown field "lamda"`,
		`{"name": "x", "rows": [{"method": "fancy"}]}`:                                           `unknown method "fancy"`,
		`{"name": "x"}`: "has no rows",
		`{"name": "x", "rows": [{"method": "alphatoken", "fisher": "full"}]}`:      `unknown fisher "full"`,
		`{"name": "x", "rows": [{"method": "alphatoken", "normalize": "minmax"}]}`: `unknown normalize "minmax"`,
		`{"name": "x", "rows": [{"method": "alphatoken", "precondition": "sgd"}]}`: `unknown precondition "sgd"`,
		`{"name": "x", "paired": "Random", "rows": [{"method": "full"}]}`:          `pairs with row "Random"`,
		`{"name": "x", "rows": [{"method": "full", "rho_schedule": "linear"}]}`:    `keeps no ρ share`,
		`{"name": "x", "rows": [{"method": "stm", "params": {"gamma": 1}}]}`:       `has no parameter --gamma`,
		`{"name": "x", "rows": [{"method": "xtf", "rho_schedule": "cosine"}]}`:     `needs --budget-matched`,
		"{\n\"name\": \"x\",\n\"rows\": [}":                                        ".json:3:",
	}
	for content, want := range cases {
		p := filepath.Join(dir, "s.json")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadSuite(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: want error containing %q, got %v", content, want, err)
		}
	}
	if _, err := LoadSuite("no-such-suite"); err == nil || !strings.Contains(err.Error(), "unknown suite") {
		t.Errorf("unknown builtin: %v", err)
	}
}

// testPreset is a tiny preset that trains in seconds.
// testRunner is a Runner of the tiny "test" preset (registered for the test's duration) with a
// fresh cache.
func testRunner(t *testing.T) *Runner {
	t.Helper()
	Presets["test"] = testPreset()
	t.Cleanup(func() { delete(Presets, "test") })
	backend, err := model.NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRunner(backend, "test", t.TempDir(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func testPreset() Preset {
	b := minibench.DefaultConfig()
	b.CorpusDocs, b.ProbeItems, b.TrainSize, b.TestSize, b.ValSize, b.FisherSize = 600, 40, 200, 20, 16, 16
	v := alphatoken.DefaultConfig()
	v.Blocks, v.ValExamples, v.FisherPrompts, v.FisherMaxNewTokens, v.Window = 2, 8, 8, 16, 8
	return Preset{Name: "test", Model: "tiny", Bench: b,
		Pretrain: PretrainSettings{Steps: 6, Batch: 4, Seq: 64, LR: 2e-3},
		SFT:      SFTSettings{Steps: 4, Batch: 4, MaxLen: 160, LR: 1e-3, CheckpointEvery: 2},
		Rho:      0.5, Valuation: v,
		Helper: HelperSettings{CleanSize: 12, SFT: SFTSettings{Steps: 3, Batch: 4, MaxLen: 160, LR: 1e-3, CheckpointEvery: 2}},
		Eval:   EvalOptions{MaxProbeItems: 6, MaxTargetItems: 6, BatchSize: 8}, Target: minibench.TargetCode}
}

// TestRunnerCachesAndTables: a suite runs, tables are written, a second run comes from the cache
// with identical numbers, and a cached run whose configuration changed is an error.
func TestRunnerCachesAndTables(t *testing.T) {
	Presets["test"] = testPreset()
	defer delete(Presets, "test")
	backend, err := model.NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	r, err := NewRunner(backend, "test", cache, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := &Suite{Name: "t", Title: "test", Rows: []Row{{Label: "Reference", Method: "reference"}, {Label: "Full FT", Method: "full"},
		{Label: "AlphaToken", Method: "alphatoken"}, {Label: "Random", Method: "random"}}, Paired: "Random"}
	if _, err := r.RunSuite(s, []int{1}); err == nil || !strings.Contains(err.Error(), "at least 2 seeds") {
		t.Fatalf("one seed without OneSeed: %v", err)
	}
	r.CacheOnly = true
	if _, err := r.RunSuite(s, []int{1, 2}); err == nil || !strings.Contains(err.Error(), "not in the cache") {
		t.Fatalf("cache-only with an empty cache: %v", err)
	}
	r.CacheOnly = false
	tab, err := r.RunSuite(s, []int{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := tab.Write(out); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(out, "t.md"))
	for _, want := range []string{"| Full FT |", "| AlphaToken |", "Retention avg", "Commit"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	back, err := LoadTable(filepath.Join(out, "t.json"))
	if err != nil {
		t.Fatal(err)
	}
	if back.Rows[1].Overall.Mean != tab.Rows[1].Overall.Mean || back.Rows[0].Overall.N != 1 || !math.IsNaN(back.Rows[0].Overall.Std) {
		t.Fatalf("table JSON round trip: %+v vs %+v", back.Rows[0].Overall, tab.Rows[0].Overall)
	}
	if tab.Rows[1].Overall.N != 2 || tab.Rows[0].Overall.N != 1 {
		t.Fatalf("seed counts: %d (full), %d (reference)", tab.Rows[1].Overall.N, tab.Rows[0].Overall.N)
	}
	for _, row := range tab.Rows {
		for _, run := range row.Runs {
			sc := run.Scores
			if sc.Target < 0 || sc.Target > 100 || sc.Retention < 0 || sc.Retention > 100 {
				t.Fatalf("%s: scores out of range: %s", row.Label, sc)
			}
		}
	}
	// Intervals and paired differences: every cell is mean ± the 95% t half-width; Δ is computed seed by seed.
	at, rnd := tab.Rows[2], tab.Rows[3]
	if want := 12.706 * at.Target.Std / math.Sqrt(2); math.Abs(at.Target.CI95-want) > 1e-3*math.Max(want, 1) {
		t.Fatalf("target ci95 %v, want t(0.975, 1)·s/√2 = %v", at.Target.CI95, want)
	}
	d0, d1 := at.Runs[0].Scores.Target-rnd.Runs[0].Scores.Target, at.Runs[1].Scores.Target-rnd.Runs[1].Scores.Target
	if dt := at.DeltaTarget; dt.N != 2 || math.Abs(dt.Mean-(d0+d1)/2) > 1e-9 || math.Abs(dt.CI95-12.706*math.Abs(d0-d1)/2) > 1e-2 {
		t.Fatalf("Δ target %+v, from paired differences %v, %v", dt, d0, d1)
	}
	if rnd.DeltaTarget.N != 0 || tab.Rows[0].DeltaTarget.N != 0 {
		t.Fatal("the paired row and the reference have no Δ")
	}
	for _, want := range []string{"Δ target vs Random", "95% t-interval", "paired difference"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	r.CacheOnly = true // everything is cached now
	again, err := r.RunSuite(s, []int{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	if again.Rows[2].Overall.Mean != tab.Rows[2].Overall.Mean || again.Rows[2].Runs[0].Dir != tab.Rows[2].Runs[0].Dir {
		t.Fatal("second run did not come from the cache")
	}
	// A moved cache: a cached run reports where it is now, not where it was trained (a DPO
	// suite loads its warm-start from that directory).
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(cache, moved); err != nil {
		t.Fatal(err)
	}
	rm, err := NewRunner(backend, "test", moved, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rm.CacheOnly = true
	res, err := rm.RunRow(s.Rows[1], 1)
	if err != nil {
		t.Fatalf("run from the moved cache: %v", err)
	}
	if !strings.HasPrefix(res.Dir, moved) {
		t.Fatalf("run from the moved cache reports dir %q, want one under %s", res.Dir, moved)
	}
	if err := os.Rename(moved, cache); err != nil {
		t.Fatal(err)
	}
	// Corrupt a cached run's configuration: the runner refuses it.
	runCfg := filepath.Join(tab.Rows[1].Runs[0].Dir, "run.json")
	raw, _ := os.ReadFile(runCfg)
	if err := os.WriteFile(runCfg, []byte(strings.Replace(string(raw), `"method": "full"`, `"method": "fulll"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	r.CacheOnly = false
	if _, err := r.RunRow(s.Rows[1], 1); err == nil || !strings.Contains(err.Error(), "different configuration") {
		t.Fatalf("want a configuration-mismatch error, got %v", err)
	}
}

// TestRunnerBaselines: baselines that need the helper model get it (trained once on the clean
// slice, then reused from the cache), every row trains and is evaluated, and the realised keep
// share is in the curve (a schedule's last step keeps ρ).
func TestRunnerBaselines(t *testing.T) {
	Presets["test"] = testPreset()
	defer delete(Presets, "test")
	backend, err := model.NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	r, err := NewRunner(backend, "test", cache, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(r.CleanExamples()); n != 12 {
		t.Fatalf("clean slice of %d examples", n)
	}
	train := map[string]bool{}
	for _, ex := range r.TrainExamples() {
		train[string(fmtIDs(ex.IDs))] = true
	}
	for _, ex := range r.CleanExamples() {
		if train[string(fmtIDs(ex.IDs))] {
			t.Fatal("a clean-slice example is in the training set")
		}
	}
	linear, start := "linear", 1.0
	s := &Suite{Name: "b", Title: "baselines", Rows: []Row{
		{Label: "Token Cleaning", Method: "token-cleaning"},
		{Label: "Rho-1", Method: "rho1", Overrides: Overrides{BudgetMatched: true}},
		{Label: "STM", Method: "stm"},
		{Label: "ssToken", Method: "sstoken", Overrides: Overrides{Params: map[string]float64{"gamma-warmup": 0.5}}},
		{Label: "Random 1→ρ", Method: "random", Overrides: Overrides{RhoSchedule: &linear, RhoStart: &start}},
	}}
	r.OneSeed = true
	tab, err := r.RunSuite(s, []int{1})
	if err != nil {
		t.Fatal(err)
	}
	if md := tab.Markdown(); !strings.Contains(md, "| Kept % |") || !strings.Contains(md, "Compute: 5 trained runs,") || tab.Rows[0].Kept.N != 1 {
		t.Fatalf("the table lacks the kept share: %+v\n%s", tab.Rows[0].Kept, tab.Markdown())
	}
	helpers, _ := filepath.Glob(filepath.Join(cache, "helper", "*", "helper.json"))
	if len(helpers) != 1 {
		t.Fatalf("%d helper models cached", len(helpers))
	}
	for _, row := range tab.Rows {
		run := row.Runs[0]
		if run.Scores == nil || len(run.Curve) != 1 { // logged every 10 steps and at the last
			t.Fatalf("%s: scores %v, %d curve points", row.Label, run.Scores, len(run.Curve))
		}
		if (run.Config.Helper != "") != (row.Method == "token-cleaning" || row.Method == "rho1") {
			t.Fatalf("%s: helper %q", row.Label, run.Config.Helper)
		}
	}
	for i, want := range []struct{ lo, hi float64 }{{0.4, 0.8}, {0.4, 0.6}, {0, 1}, {0.5, 0.8}, {0.4, 0.6}} {
		if k := tab.Rows[i].Runs[0].Curve[0].Kept; !(k >= want.lo && k <= want.hi) {
			t.Errorf("%s: kept share %v at the last step, want it in [%v, %v]", tab.Rows[i].Label, k, want.lo, want.hi)
		}
	}
	// A second runner reuses the cached helper.
	r2, err := NewRunner(backend, "test", cache, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	h1, err := r.Helper()
	if err != nil {
		t.Fatal(err)
	}
	h2, err := r2.Helper()
	if err != nil {
		t.Fatal(err)
	}
	a, _ := h1.ParamTensors()
	b, _ := h2.ParamTensors()
	x, _ := model.TensorFloat64(a[3].Tensor)
	y, _ := model.TensorFloat64(b[3].Tensor)
	for i := range x {
		if x[i] != y[i] {
			t.Fatal("the cached helper differs from the trained one")
		}
	}
}

func fmtIDs(ids []int) []byte {
	out, _ := json.Marshal(ids)
	return out
}

// TestDiagnostics runs every MiniBench diagnostic on the tiny test preset and checks what must
// hold whatever the model: shapes, ranges, a zero proxy without a Fisher, CKA of the reference
// with itself.
func TestDiagnostics(t *testing.T) {
	r := testRunner(t)
	ft, err := r.FineTune("full", 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	vp, err := r.ValuePropagation(ft, "", 300, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(vp.Pairs) != 300 || vp.LowRiskShare <= 0 || vp.LowRiskShare > 1 {
		t.Fatalf("value propagation: %d pairs, share %g", len(vp.Pairs), vp.LowRiskShare)
	}
	diagRes, err := r.FisherFidelity(ft, alphatoken.FisherDiag, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	none, err := r.FisherFidelity(ft, alphatoken.FisherNone, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(diagRes.Proxy) != len(diagRes.Oracle) || len(diagRes.Oracle) == 0 || len(none.Oracle) != len(diagRes.Oracle) {
		t.Fatalf("fidelity lengths: %d proxy, %d oracle", len(diagRes.Proxy), len(diagRes.Oracle))
	}
	for i := range none.Proxy {
		if none.Proxy[i] != 0 {
			t.Fatal("without a Fisher the proxy must be 0")
		}
	}
	if !math.IsNaN(none.Spearman) || math.IsNaN(diagRes.Spearman) || diagRes.Spearman < -1 || diagRes.Spearman > 1 {
		t.Fatalf("spearman: none %g, diag %g", none.Spearman, diagRes.Spearman)
	}
	cov, err := r.Coverage(ft, 4, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range cov.Methods {
		if len(cov.Kept[m]) != len(cov.Points) || cov.Coverage[m] <= 0 || cov.Coverage[m] > 1 {
			t.Fatalf("coverage %s: %d kept flags for %d points, coverage %g", m, len(cov.Kept[m]), len(cov.Points), cov.Coverage[m])
		}
	}
	st, err := r.Stability(map[string]*model.LM{"self": r.Ref, "ft": ft}, []string{"self", "ft"}, 6)
	if err != nil {
		t.Fatal(err)
	}
	for l, c := range st.CKA["self"] {
		if math.Abs(c-1) > 1e-6 {
			t.Fatalf("CKA of the reference with itself at layer %d: %g", l, c)
		}
	}
	// The figures build from these results.
	if _, err := ValuePropagationFigure("vp", vp); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(none)
	if err != nil {
		t.Fatal(err)
	}
	var back FidelityResult
	if err := json.Unmarshal(raw, &back); err != nil || !math.IsNaN(back.Spearman) || len(back.Oracle) != len(none.Oracle) {
		t.Fatalf("fidelity JSON round trip: %v, spearman %g", err, back.Spearman)
	}
	if _, _, _, err := FidelityFigures([]*FidelityResult{diagRes, none}); err != nil {
		t.Fatal(err)
	}
	if _, err := CoverageFigure("cov", cov); err != nil {
		t.Fatal(err)
	}
	if _, err := StabilityFigure("cka", st); err != nil {
		t.Fatal(err)
	}
}
