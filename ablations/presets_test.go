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
	"github.com/alphatoken/alphatoken/model"
)

func presetHash(t *testing.T, p Preset) string {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// TestPresetsFrozen pins every preset's content. "mini" is the from-scratch regime whose results
// are committed; "mini-adapt" was fixed by its calibration (minibench/README.md) before any method
// ran on it. A change must bump the preset's Design and say why in that README.
func TestPresetsFrozen(t *testing.T) {
	want := map[string]string{
		"mini":       "64dfeef15eb2742c",
		"mini-adapt": "",
		"small":      "7e84ce02d5b2e4bb",
	}
	for _, name := range PresetNames() {
		p, err := PresetByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := presetHash(t, p); got != want[name] {
			t.Errorf("preset %s (design %q) changed: content hash %s, pinned %s", name, p.Design, got, want[name])
		}
	}
}

func TestPresetsResolve(t *testing.T) {
	if _, err := PresetByName("mini-adpt"); err == nil || !strings.Contains(err.Error(), "mini, mini-adapt, small") {
		t.Fatalf("unknown preset: %v", err)
	}
	mini, _ := PresetByName("mini")
	adapt, err := PresetByName("mini-adapt")
	if err != nil {
		t.Fatal(err)
	}
	if adapt.Regime != "adapt" || mini.Regime != "" || adapt.Bench.Mix.Instruct <= 0 || mini.Bench.Mix.Instruct != 0 {
		t.Fatalf("regimes: mini %q (instruct %g), mini-adapt %q (instruct %g)", mini.Regime, mini.Bench.Mix.Instruct,
			adapt.Regime, adapt.Bench.Mix.Instruct)
	}
	// The two regimes differ only in the reference model: same model size, SFT, valuation,
	// evaluation and target.
	if adapt.Model != mini.Model || adapt.SFT != mini.SFT || adapt.Eval != mini.Eval || adapt.Target != mini.Target ||
		presetHash(t, Preset{Valuation: adapt.Valuation}) != presetHash(t, Preset{Valuation: mini.Valuation}) {
		t.Error("mini-adapt differs from mini in more than the reference model")
	}
	for _, name := range PresetNames() {
		p, _ := PresetByName(name)
		if _, err := minibench.Build(p.Bench); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
	}
}

func TestPatchPreset(t *testing.T) {
	p, _ := PresetByName("mini-adapt")
	q, err := PatchPreset(p, `{"pretrain":{"steps":7},"bench":{"mix":{"instruct":0.1}}}`)
	if err != nil {
		t.Fatal(err)
	}
	if q.Pretrain.Steps != 7 || q.Pretrain.Batch != p.Pretrain.Batch || q.Bench.Mix.Instruct != 0.1 || q.Bench.Mix.Facts != p.Bench.Mix.Facts {
		t.Fatalf("patch did not merge: %+v", q.Pretrain)
	}
	if p.Pretrain.Steps == 7 || Presets["mini-adapt"].Pretrain.Steps == 7 {
		t.Fatal("patch changed the registered preset")
	}
	if _, err := PatchPreset(p, `{"pretrain":{"stepz":7}}`); err == nil || !strings.Contains(err.Error(), "stepz") {
		t.Fatalf("unknown field: %v", err)
	}
	if q, err := PatchPreset(p, " "); err != nil || presetHash(t, q) != presetHash(t, p) {
		t.Fatal("an empty patch changed the preset")
	}
}

// TestCalibrate runs the calibration on the tiny test preset: one reference per reference seed
// (seed 1 is the suites' reference), Full FT per SFT seed, intervals over seeds, files that
// round-trip; no selection method runs.
func TestCalibrate(t *testing.T) {
	backend, err := model.NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	p := testPreset()
	c, err := Calibrate(backend, p, []int{1, 2}, []int{1, 2}, cache, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Refs) != 2 || len(c.Refs[0].FullFT) != 2 || c.Refs[0].Dir == c.Refs[1].Dir {
		t.Fatalf("calibration: %d refs, %d runs, dirs %s %s", len(c.Refs), len(c.Refs[0].FullFT), c.Refs[0].Dir, c.Refs[1].Dir)
	}
	Presets["test"] = p
	defer delete(Presets, "test")
	r, err := NewRunner(backend, "test", cache, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if r.RefDir != c.Refs[0].Dir {
		t.Fatalf("reference seed 1 is not the suites' reference: %s vs %s", c.Refs[0].Dir, r.RefDir)
	}
	runs, _ := filepath.Glob(filepath.Join(cache, "runs", "*"))
	for _, d := range runs {
		if !strings.HasPrefix(filepath.Base(d), "full-") {
			t.Fatalf("the calibration ran %s", filepath.Base(d))
		}
	}
	if len(runs) != 4 {
		t.Fatalf("%d runs, want 4", len(runs))
	}
	if c.Gain.N != 2 || c.GainRefs.N != 2 || c.Reference.Target.N != 2 || c.FullFT.Retention.N != 2 {
		t.Fatalf("seed counts: gain %d, gain over refs %d, reference %d, full %d", c.Gain.N, c.GainRefs.N, c.Reference.Target.N, c.FullFT.Retention.N)
	}
	ref0, runs0 := c.Refs[0].Reference, c.Refs[0].FullFT
	if want := (runs0[0].Scores.Target+runs0[1].Scores.Target)/2 - ref0.Target; math.Abs(c.Gain.Mean-want) > 1e-9 {
		t.Fatalf("gain %g, want %g", c.Gain.Mean, want)
	}
	if want := ref0.Retention - (runs0[0].Scores.Retention+runs0[1].Scores.Retention)/2; math.Abs(c.Loss.Mean-want) > 1e-9 {
		t.Fatalf("retention loss %g, want %g", c.Loss.Mean, want)
	}
	out := t.TempDir()
	c.Command = "alphatoken calibrate --preset test"
	if err := c.Write(out, "cal"); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(out, "cal.md"))
	for _, s := range []string{"| 1 |", "| 2 |", "Full FT gain", "Regenerate: `alphatoken calibrate --preset test`"} {
		if !strings.Contains(string(md), s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(out, "cal.json"))
	var back Calibration
	if err := json.Unmarshal(raw, &back); err != nil || len(back.Refs) != 2 || back.Gain.Mean != c.Gain.Mean {
		t.Fatalf("calibration JSON round trip: %v", err)
	}
	// Cached: the second calibration trains nothing and gives the same numbers.
	again, err := Calibrate(backend, p, []int{1, 2}, []int{1, 2}, cache, io.Discard)
	if err != nil || again.Gain != c.Gain || again.LossRefs != c.LossRefs {
		t.Fatalf("second calibration: %v, gain %+v vs %+v", err, again.Gain, c.Gain)
	}
	if _, err := Calibrate(backend, p, nil, []int{1}, cache, io.Discard); err == nil {
		t.Error("a calibration without reference seeds was accepted")
	}
	if _, err := Calibrate(backend, p, []int{0}, []int{1}, cache, io.Discard); err == nil {
		t.Error("reference seed 0 was accepted")
	}
}
