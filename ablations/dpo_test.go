package ablations

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alphatoken/alphatoken/ablations/minibench"
	"github.com/alphatoken/alphatoken/alphatoken/dpo"
	"github.com/alphatoken/alphatoken/model"
)

func TestDPOSuites(t *testing.T) {
	names := DPOSuiteNames()
	for _, want := range []string{"main", "ranking", "objectives", "thresholds", "coefficient", "calibration"} {
		if !strings.Contains(","+strings.Join(names, ",")+",", ","+want+",") {
			t.Fatalf("builtin DPO suites %v lack %q", names, want)
		}
	}
	for _, n := range names {
		s, err := LoadDPOSuite(n)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if len(s.Rows) < 2 {
			t.Fatalf("%s has %d rows", n, len(s.Rows))
		}
	}
	for _, n := range SuiteNames() {
		if strings.HasPrefix(n, dpoSuitePrefix) {
			t.Fatalf("SuiteNames lists the DPO suite %s", n)
		}
	}
	if _, err := LoadSuite("dpo_main"); err == nil || !strings.Contains(err.Error(), "ablate-dpo --suite main") {
		t.Fatalf("an SFT load of a DPO suite: %v", err)
	}
	// The calibrations run only plain DPO (the benchmark is calibrated before any masked method).
	for _, n := range names {
		if !strings.HasPrefix(n, "calibration") {
			continue
		}
		cal, _ := LoadDPOSuite(n)
		for _, r := range cal.Rows {
			if r.Method != "dpo" && r.Method != WarmStartMethod {
				t.Fatalf("%s row %q runs %s", n, r.Label, r.Method)
			}
		}
	}
}

// TestUncalibratedDesign: on a design not yet calibrated only plain DPO and the warm-start run.
func TestUncalibratedDesign(t *testing.T) {
	dp := DPOPreset{Design: "x/0" + UncalibratedSuffix}
	for _, n := range DPOSuiteNames() {
		s, err := LoadDPOSuite(n)
		if err != nil {
			t.Fatal(err)
		}
		err = CheckCalibrated(dp, "p", s)
		if strings.HasPrefix(n, "calibration") {
			if err != nil {
				t.Fatalf("calibration suite %s refused: %v", n, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), "not calibrated") {
			t.Fatalf("suite %s on an uncalibrated design: %v", n, err)
		}
		if err := CheckCalibrated(DPOPreset{Design: "x/1"}, "p", s); err != nil {
			t.Fatalf("suite %s on a calibrated design: %v", n, err)
		}
	}
}

// TestDPOPresetsFrozen pins each DPO design (ablations/minibench/README.md, "Preference
// MiniBench"): a calibrated design's content (pairs, warm-start, DPO settings, β, loss, oracle) and
// the pair generator's version may not change without bumping Design and recalibrating.
func TestDPOPresetsFrozen(t *testing.T) {
	want := map[string]struct{ design, hash string }{
		"mini":       {"dpo/1", "2c89606ac5ad943a"},
		"mini-adapt": {"dpo-adapt/1", "f40b7d457cf858e2"},
	}
	if minibench.PrefsVersion != "minibench-prefs/1" {
		t.Errorf("the pair generator is %s; the calibrated designs were made with minibench-prefs/1", minibench.PrefsVersion)
	}
	if len(DPOPresets) != len(want) {
		t.Errorf("%d DPO presets, %d pinned", len(DPOPresets), len(want))
	}
	for name, p := range DPOPresets {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		got := hex.EncodeToString(h[:8])
		if w := want[name]; p.Design != w.design || got != w.hash {
			t.Errorf("DPO preset %s changed: design %q content %s, pinned %q %s", name, p.Design, got, w.design, w.hash)
		}
	}
}

func TestDPOSuiteErrors(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"{\n  \"name\": \"x\",\n  \"rows\": [\n    {\"method\": \"dpo\", \"threshhold\": 2}\n  ]\n}": `:4: unknown field "threshhold"`,
		`{"name": "x", "rows": [{"method": "full"}]}`:                                                `unknown DPO method "full"`,
		`{"name": "x"}`: "has no rows",
		`{"name": "x", "rows": [{"method": "alphatoken", "dpo_threshold": "joint"}]}`:                `unknown dpo_threshold "joint"`,
		`{"name": "x", "rows": [{"method": "alphatoken", "dpo_coefficient": "both"}]}`:               `unknown dpo_coefficient "both"`,
		`{"name": "x", "rows": [{"method": "dpo"}, {"method": "dpo"}]}`:                              `two rows are labelled "dpo"`,
		`{"name": "x", "compare": "DPO", "rows": [{"method": "dpo"}]}`:                               `"compare" names no row`,
		`{"name": "x", "rows": [{"method": "dpo", "lr": -1}]}`:                                       "must be positive",
		`{"name": "x", "rows": [{"method": "dpo", "rho_schedule": "linear"}]}`:                       "keeps no ρ share",
		`{"name": "x", "rows": [{"method": "confpo", "params": {"sepo-beta": 1}}]}`:                  "has no parameter",
		"{\n\"name\": \"x\",\n\"rows\": [}":                                                          ".json:3:",
		`{"name": "x", "rows": [{"method": "alphatoken", "fisher": "full"}]}`:                        `unknown fisher "full"`,
		`{"name": "x", "rows": [{"label": "w", "method": "warm-start"}, {"method": "sepo"}]}`:        "",
		`{"name": "x", "baseline": "dpo", "rows": [{"method": "dpo"}, {"method": "ti-dpo-budget"}]}`: "",
	}
	for content, want := range cases {
		p := filepath.Join(dir, "s.json")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadDPOSuite(p)
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", content, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: want error containing %q, got %v", content, want, err)
		}
	}
	if _, err := LoadDPOSuite("no-such"); err == nil || !strings.Contains(err.Error(), "unknown DPO suite") {
		t.Errorf("unknown builtin: %v", err)
	}
	if _, err := DPOPresetByName("nope"); err == nil || !strings.Contains(err.Error(), "no DPO stage") {
		t.Errorf("unknown preset: %v", err)
	}
	for _, seeds := range [][]int{nil, {1}, {1, 1}} {
		if err := CheckSeeds(seeds); err == nil {
			t.Errorf("seeds %v accepted", seeds)
		}
	}
	if err := CheckSeeds([]int{3, 1}); err != nil {
		t.Error(err)
	}
}

func TestPairedDiff(t *testing.T) {
	a := map[int]float64{1: 10, 2: 12, 3: 11, 9: 100}
	b := map[int]float64{1: 9, 2: 10, 3: 11}
	s := PairedDiff(a, b) // differences 1, 2, 0 (seed 9 has no partner)
	if s.N != 3 || math.Abs(s.Mean-1) > 1e-12 || math.Abs(s.Std-1) > 1e-12 || math.Abs(s.CI95-4.302652729749464/math.Sqrt(3)) > 1e-9 {
		t.Fatalf("paired difference %+v", s)
	}
}

// testDPOPreset is a tiny DPO stage for the test preset.
func testDPOPreset() DPOPreset {
	return DPOPreset{Design: "test", Pairs: minibench.PrefConfig{TrainPairs: 12, OraclePairs: 6, ValPairs: 6, TestPairs: 6},
		WarmStartSeed: 1, Train: DPOTrainSettings{Steps: 3, Batch: 2, MaxLen: 160, LR: 1e-3, CheckpointEvery: 2, EvalEvery: 2},
		Beta: dpo.DefaultBeta, Loss: dpo.LossSigmoid, Oracle: DPOTrainSettings{Steps: 2, Batch: 2, MaxLen: 160, LR: 1e-3}}
}

// TestDPORunner: a DPO suite runs from the warm-start (π_ref), the tables are written with the
// paired differences, a second run comes from the cache with identical numbers, a cached run
// whose configuration changed is an error, the warm-start's pair accuracy is 50, the runs share
// the AlphaToken run between labels, and the cost table measures every method in one run.
func TestDPORunner(t *testing.T) {
	Presets["test"] = testPreset()
	DPOPresets["test"] = testDPOPreset()
	defer delete(Presets, "test")
	defer delete(DPOPresets, "test")
	backend, err := model.NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	d, err := NewDPORunner(backend, "test", cache, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.TrainPairs()) != 24 || len(d.TestPairs()) != 12 || len(d.ValPairs()) != 12 || len(d.OraclePairs()) != 12 {
		t.Fatalf("pairs: %d train, %d test, %d val, %d oracle examples", len(d.TrainPairs()), len(d.TestPairs()), len(d.ValPairs()), len(d.OraclePairs()))
	}
	s := &DPOSuite{Name: "t", Title: "test", Compare: "AlphaToken", Baseline: "DPO", Rows: []DPORow{
		{Label: "Warm", Method: WarmStartMethod}, {Label: "DPO", Method: "dpo"}, {Label: "AlphaToken", Method: "alphatoken"},
		{Label: "Same AlphaToken", Method: "alphatoken", Threshold: dpo.Separate}, {Label: "SePO", Method: "sepo"},
		{Label: "Shared", Method: "alphatoken", Threshold: dpo.Shared}}}
	if _, err := d.RunDPOSuite(s, []int{1}); err == nil {
		t.Fatal("one seed accepted")
	}
	tab, err := d.RunDPOSuite(s, []int{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	if md := tab.Markdown(); !strings.Contains(md, "Compute: 8 trained runs,") { // 4 distinct trained rows × 2 seeds
		t.Fatalf("the compute note counts the wrong runs:\n%s", md)
	}
	warm := tab.Rows[0]
	if warm.PairAccuracy.N != 1 || warm.PairAccuracy.Mean != 50 || warm.Runs[0].Pairs.Margin != 0 {
		t.Fatalf("warm-start pair scores %+v", warm.Runs[0].Pairs)
	}
	if warm.Target.Mean != d.WarmRun.Scores.Target || warm.Retention.Mean != d.WarmRun.Scores.Retention {
		t.Fatal("the warm-start row is not the warm-start's SFT evaluation")
	}
	for _, r := range tab.Rows[1:] {
		if r.Overall.N != 2 || math.IsNaN(r.Overall.CI95) {
			t.Fatalf("%s: overall %+v", r.Label, r.Overall)
		}
		for _, run := range r.Runs {
			if run.Pairs.Accuracy < 0 || run.Pairs.Accuracy > 100 || run.Target < 0 || run.Target > 100 {
				t.Fatalf("%s: scores out of range: %+v", r.Label, run)
			}
			if want := ((run.Pairs.Accuracy+run.Target)/2 + run.Retention) / 2; math.Abs(run.Overall-want) > 1e-9 {
				t.Fatalf("%s: Overall %g, want mean(mean(pair acc, target), retention) = %g", r.Label, run.Overall, want)
			}
			if run.Pairs.Margin == 0 {
				t.Fatalf("%s: DPO left every margin at 0", r.Label)
			}
			evals := 0
			for _, c := range run.Curve {
				if c.EvalLoss > 0 {
					evals++
				}
			}
			if evals == 0 {
				t.Fatalf("%s: no held-out pair metrics in the curve", r.Label)
			}
		}
	}
	at, same := tab.Rows[2], tab.Rows[3]
	if at.Runs[0].Dir != same.Runs[0].Dir {
		t.Fatal("the same AlphaToken run under two labels was trained twice")
	}
	if at.DiffOverall != nil || tab.Rows[1].DiffOverall == nil || tab.Rows[0].DiffOverall != nil {
		t.Fatal("paired differences: want them on every trained row but the compared one")
	}
	if want := tab.Rows[1].Overall.Mean - at.Overall.Mean; math.Abs(tab.Rows[1].DiffOverall.Mean-want) > 1e-9 {
		t.Fatalf("paired difference of Overall %g, want %g", tab.Rows[1].DiffOverall.Mean, want)
	}
	if k := tab.Rows[2].KeptChosen; k.N != 2 || k.Mean <= 0 || k.Mean >= 100 {
		t.Fatalf("AlphaToken kept share %+v", k)
	}
	out := t.TempDir()
	if err := tab.Write(out); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(out, "t.md"))
	for _, want := range []string{"| DPO |", "| Warm | 50.0 |", "Δ Overall vs AlphaToken", "95% t-interval", "Commit", "Preference = mean(Pair acc, Target)"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	back, err := LoadDPOTable(filepath.Join(out, "t.json"))
	if err != nil {
		t.Fatal(err)
	}
	if back.Rows[1].Overall.Mean != tab.Rows[1].Overall.Mean || !math.IsNaN(back.Rows[0].Overall.CI95) {
		t.Fatalf("table JSON round trip: %+v vs %+v", back.Rows[1].Overall, tab.Rows[1].Overall)
	}
	if _, err := DPOTradeOffFigure("t", back); err != nil {
		t.Fatal(err)
	}
	if _, err := DPOCurvesFigure("t", back); err != nil {
		t.Fatal(err)
	}
	// From the cache: the same numbers, no training.
	again, err := d.RunDPOSuite(s, []int{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range tab.Rows {
		if again.Rows[i].Overall.Mean != tab.Rows[i].Overall.Mean || again.Rows[i].Runs[0].Dir != tab.Rows[i].Runs[0].Dir {
			t.Fatalf("%s: cached run differs", tab.Rows[i].Label)
		}
	}
	// The twin diagnostic retrains seed-1 runs: they reproduce the cached ones exactly; plain DPO
	// keeps every twin in both branches, AlphaToken's per-branch top-ρ leaves some one-sided.
	tw, err := d.Twins([]DPORow{{Label: "DPO", Method: "dpo"}, {Label: "AlphaToken", Method: "alphatoken"}}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range tw.Rows {
		if w.CachedAccuracy == nil || *w.CachedAccuracy != w.PairAccuracy || *w.CachedMargin != w.Margin {
			t.Errorf("%s: the retrained run (acc %v, margin %v) is not the cached one (%v, %v)", w.Label, w.PairAccuracy, w.Margin, w.CachedAccuracy, w.CachedMargin)
		}
		if !(w.TwinShare > 0 && w.TwinShare < 100) || len(w.OneSidedWindows) != tw.Steps {
			t.Errorf("%s: twin share %v, %d windows", w.Label, w.TwinShare, len(w.OneSidedWindows))
		}
		if !(w.ForkShare > 0 && w.ForkShare <= 100) {
			t.Errorf("%s: fork share %v", w.Label, w.ForkShare)
		}
		if i == 0 && (w.KeptTwinChosen != 100 || w.KeptTwinRejected != 100 || w.OneSided != 0 || w.KeptOtherChosen != 100 || w.KeptForkChosen != 100 || w.KeptForkRejected != 100) {
			t.Errorf("plain DPO: %+v", w)
		}
		if i == 1 && !(w.OneSided > 0) {
			t.Errorf("AlphaToken: no twin kept one-sided: %+v", w)
		}
	}
	if md := tw.Markdown(); !strings.Contains(md, "| AlphaToken |") || !strings.HasPrefix(tw.CSV(), "label,method,step,one_sided_pct") {
		t.Fatalf("twin outputs:\n%s", md)
	}
	// The component diagnostic: at the warm-start θ = θ_ref, so P = F(θ − θ_ref) and both proxy
	// components are exactly zero and the mask is adaptation-only's; the trained run has moved.
	if _, err := d.Components(1, len(d.TestPairs())); err == nil || !strings.Contains(err.Error(), "--pairs must be 1 … 6") {
		t.Fatalf("too many test pairs: %v", err)
	}
	comp, err := d.Components(1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(comp.Rows) != 2 {
		t.Fatalf("component rows %+v", comp.Rows)
	}
	w0, w1 := comp.Rows[0], comp.Rows[1]
	if w0.Drift != 0 || w0.DirPrx != 0 || w0.CauPrx != 0 || w0.ProxyRatio != 0 || w0.SameKeep != 100 || !(w0.DirTgt > 0 && w0.CauTgt > 0) {
		t.Errorf("warm-start components %+v", w0)
	}
	if !(w1.Drift > 0 && w1.DirPrx > 0 && w1.CauPrx > 0 && w1.ProxyRatio > 0) || w1.Tokens != w0.Tokens || w1.Kept != w0.Kept {
		t.Errorf("trained-run components %+v (warm-start %+v)", w1, w0)
	}
	if md := comp.Markdown(); !strings.Contains(md, "| warm-start (θ = θ_ref) | 0.00e+00 |") || !strings.HasPrefix(comp.CSV(), "point,drift_rel,") {
		t.Fatalf("component outputs:\n%s", md)
	}
	// A cached run whose stored configuration differs is an error.
	cfgPath := filepath.Join(tab.Rows[1].Runs[0].Dir, "run.json")
	raw, _ := os.ReadFile(cfgPath)
	var cfg DPORunConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Train.LR *= 2
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.RunDPORow(DPORow{Label: "DPO", Method: "dpo"}, 1); err == nil || !strings.Contains(err.Error(), "different configuration") {
		t.Fatalf("changed cached config: %v", err)
	}
	c, err := d.MeasureDPOCost([]DPORow{{Label: "DPO", Method: "dpo"}, {Label: "ConfPO", Method: "confpo"}, {Label: "AlphaToken", Method: "alphatoken"}}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Rows) != 3 || c.Rows[0].VsDPO != 1 || c.Rows[1].VsConfPO != 1 || !(c.Rows[2].CPU > 0) {
		t.Fatalf("cost rows %+v", c.Rows)
	}
}

// TestDPORunnerResumes: a DPO run interrupted after its first checkpoint resumes from it and
// ends with the same result as an uninterrupted run.
func TestDPORunnerResumes(t *testing.T) {
	Presets["test"] = testPreset()
	DPOPresets["test"] = testDPOPreset()
	defer delete(Presets, "test")
	defer delete(DPOPresets, "test")
	backend, err := model.NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	d, err := NewDPORunner(backend, "test", cache, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	row := DPORow{Label: "AlphaToken", Method: "alphatoken"}
	full, err := d.RunDPORow(row, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Interrupt a copy: train the same configuration to step 2 (its checkpoint) in a fresh cache
	// directory, then let the runner finish it.
	cfg, err := d.resolve(row, 3)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "run")
	lm, err := d.Warm.Clone()
	if err != nil {
		t.Fatal(err)
	}
	m, _, _, err := d.method(cfg, lm)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := newDPOTrainer(d, lm, m, cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.RunUntil(d.train, 2); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(filepath.Join(dir, "run.json"), cfg); err != nil {
		t.Fatal(err)
	}
	res, err := d.execute(cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.Overall != full.Overall || res.Pairs.Margin != full.Pairs.Margin || res.Pairs.Accuracy != full.Pairs.Accuracy {
		t.Fatalf("resumed run: overall %g margin %g; uninterrupted: %g, %g", res.Overall, res.Pairs.Margin, full.Overall, full.Pairs.Margin)
	}
}

// TestDPOTradeOffPointsDedupe: a row whose runs another table already drew (AlphaToken in main,
// "Separate thresholds" in thresholds: the same runs, the threshold spelled out) is drawn once.
func TestDPOTradeOffPointsDedupe(t *testing.T) {
	runs := func(dirs ...string) []*DPORunResult {
		var rs []*DPORunResult
		for _, d := range dirs {
			rs = append(rs, &DPORunResult{Dir: d})
		}
		return rs
	}
	main := &DPOTable{Rows: []DPOTableRow{{Label: "AlphaToken", Row: DPORow{Method: "alphatoken"}, Runs: runs("a1", "a2")},
		{Label: "DPO", Row: DPORow{Method: "dpo"}, Runs: runs("d1", "d2")}}}
	th := &DPOTable{Rows: []DPOTableRow{{Label: "Separate thresholds", Row: DPORow{Method: "alphatoken", Threshold: dpo.Separate}, Runs: runs("a1", "a2")},
		{Label: "Shared threshold", Row: DPORow{Method: "alphatoken", Threshold: dpo.Shared}, Runs: runs("s1", "s2")}}}
	var names []string
	for _, p := range DPOTradeOffPoints(main, th) {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "AlphaToken,DPO,Shared threshold" {
		t.Fatalf("points %v", names)
	}
}
