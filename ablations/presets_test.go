package ablations

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"

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
	// Re-pinned when the adapt branch met the methods registry (2026-11-30): the Preset struct gained
	// Rho and Helper (ρ left the valuation settings) and the valuation's default Normalize became none.
	// Nothing the adapt calibration used (corpus, pre-training, instruction stage, SFT, evaluation)
	// changed; the helper model of mini-adapt follows its SFT lr (3e-4).
	want := map[string]string{
		"mini":       "db8b4bf544df85d6",
		"mini-adapt": "6db1ea3c36abbe09",
		"small":      "65b4d8ae4090e18c",
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
	// The two regimes differ in the reference model and the SFT learning rate only: same model
	// size, SFT data, steps and batch, valuation, evaluation and target.
	sft := adapt.SFT
	sft.LR = mini.SFT.LR
	if adapt.Model != mini.Model || sft != mini.SFT || adapt.Eval != mini.Eval || adapt.Target != mini.Target ||
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
	q, err = PatchPreset(p, `{"instruct":{"steps":9}}`)
	if err != nil || q.Instruct.Steps != 9 || q.Instruct.Pairs != p.Instruct.Pairs || Presets["mini-adapt"].Instruct.Steps == 9 {
		t.Fatalf("patching the instruction stage: %v, %+v, registered %+v", err, q.Instruct, Presets["mini-adapt"].Instruct)
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

// TestInstructStage: an adapt preset's reference is the pre-trained model followed by the
// instruction stage, each cached on its own: a second stage setting reuses the pre-trained model.
func TestInstructStage(t *testing.T) {
	backend, err := model.NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	p := testPreset()
	p.Name, p.Regime = "test-adapt", "adapt"
	p.Bench.Mix.Instruct, p.Bench.SFTOnlyOps = 0.25, "abs,mod7,clip0"
	p.Instruct = &InstructStage{Pairs: 12, Replay: 1, Steps: 3, Batch: 4, LR: 1e-3}
	bench, err := minibench.Build(p.Bench)
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	lm, dir, info, err := Reference(backend, p, bench, cache, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if info.Key.Instruct == nil || info.Key.Stage1 == "" || info.Key.Stage1 == filepath.Base(dir) {
		t.Fatalf("instruction stage key: %+v (dir %s)", info.Key, dir)
	}
	if _, err := os.Stat(filepath.Join(cache, "reference", info.Key.Stage1, "reference.json")); err != nil {
		t.Fatalf("the pre-trained model is not cached on its own: %v", err)
	}
	stage1, err := model.Load(backend, filepath.Join(cache, "reference", info.Key.Stage1), dtypes.Float32)
	if err != nil {
		t.Fatal(err)
	}
	if same, err := sameWeights(lm, stage1); err != nil || same {
		t.Fatalf("the instruction stage did not change the model (%v)", err)
	}
	_, dir2, _, err := Reference(backend, p, bench, cache, io.Discard)
	if err != nil || dir2 != dir {
		t.Fatalf("second call: %v, %s vs %s", err, dir2, dir)
	}
	q := p
	q.Instruct = &InstructStage{Pairs: 12, Replay: 0, Steps: 2, Batch: 4, LR: 1e-3}
	_, dir3, info3, err := Reference(backend, q, bench, cache, io.Discard)
	if err != nil || dir3 == dir || info3.Key.Stage1 != info.Key.Stage1 {
		t.Fatalf("another stage setting: %v, dir %s, stage 1 %s vs %s", err, dir3, info3.Key.Stage1, info.Key.Stage1)
	}
	q.Instruct = &InstructStage{Pairs: 0, Steps: 2, Batch: 4, LR: 1e-3}
	if _, _, _, err := Reference(backend, q, bench, cache, io.Discard); err == nil || !strings.Contains(err.Error(), "instruction stage needs") {
		t.Fatalf("zero pairs: %v", err)
	}
	// A from-scratch corpus has no pairs for the stage: a clear error.
	q = testPreset()
	q.Instruct = &InstructStage{Pairs: 4, Steps: 2, Batch: 4, LR: 1e-3}
	b0, _ := minibench.Build(q.Bench)
	if _, _, _, err := Reference(backend, q, b0, cache, io.Discard); err == nil || !strings.Contains(err.Error(), "no pre-training pool") {
		t.Fatalf("stage on a from-scratch corpus: %v", err)
	}
}

// sameWeights reports whether two models have bit-identical parameters.
func sameWeights(a, b *model.LM) (bool, error) {
	ta, err := a.ParamTensors()
	if err != nil {
		return false, err
	}
	tb, err := b.ParamTensors()
	if err != nil {
		return false, err
	}
	for i := range ta {
		x, err := model.TensorFloat64(ta[i].Tensor)
		if err != nil {
			return false, err
		}
		y, err := model.TensorFloat64(tb[i].Tensor)
		if err != nil {
			return false, err
		}
		if !slices.Equal(x, y) {
			return false, nil
		}
	}
	return true, nil
}
