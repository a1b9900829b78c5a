package train

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/ml/train/optimizer"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/internal/atomicfile"
	"github.com/alphatoken/alphatoken/model"
)

// trainerState is trainer_state.json.
type trainerState struct {
	Step   int               `json:"step"`
	Method string            `json:"method"`
	Config json.RawMessage   `json:"config"`
	Run    map[string]string `json:"run,omitempty"` // Trainer.RunSettings
}

// parseTrainerState reads and checks trainer_state.json (name is for errors): a non-negative step,
// a method and a configuration that parses.
func parseTrainerState(raw []byte, name string) (trainerState, Config, error) {
	var st trainerState
	var cfg Config
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, cfg, errors.Wrapf(err, "train: parsing %s", name)
	}
	if st.Step < 0 {
		return st, cfg, errors.Errorf("train: %s: step %d is negative", name, st.Step)
	}
	if st.Method == "" {
		return st, cfg, errors.Errorf("train: %s: no method", name)
	}
	if len(st.Config) == 0 || string(st.Config) == "null" {
		return st, cfg, errors.Errorf("train: %s: no config", name)
	}
	if err := json.Unmarshal(st.Config, &cfg); err != nil {
		return st, cfg, errors.Wrapf(err, "train: %s: config", name)
	}
	cfg.fill()
	return st, cfg, nil
}

// isStateVar reports whether a store variable is optimizer/method state (saved for resume):
// everything but the model weights, the frozen inputs and the gradient accumulators.
func isStateVar(path string) bool {
	return !strings.HasPrefix(path, "/model/") && !strings.HasPrefix(path, "/lm_head/") &&
		!strings.HasPrefix(path, FrozenScope+"/") && !strings.HasPrefix(path, accumScope+"/")
}

// Checkpoint writes OutDir/checkpoint-<step> now: an HF checkpoint (config.json,
// model.safetensors, tokenizer files) plus trainer_state.safetensors (AdamW moments, counters,
// method state) and trainer_state.json. It is written into a uniquely named temporary directory and
// renamed, so it is complete or absent; older checkpoints beyond KeepCheckpoints are removed
// afterwards. (During Run, checkpoints are published one step later; see the package doc.)
func (tr *Trainer) Checkpoint() error {
	if err := tr.writePending(); err != nil {
		return err
	}
	return tr.publishPending()
}

// writePending writes the checkpoint of the current step into a temporary directory, to be
// published by publishPending.
func (tr *Trainer) writePending() error {
	if err := tr.publishPending(); err != nil {
		return err
	}
	final := filepath.Join(tr.Config.OutDir, fmt.Sprintf("checkpoint-%d", tr.step))
	tmp := final + ".tmp-" + uniqueSuffix()
	if err := tr.SaveTo(tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	tr.pending, tr.pendingFinal = tmp, final
	return nil
}

// publishPending renames the pending checkpoint into place (replacing one of the same step, e.g.
// of the run a resume started from) and removes the oldest beyond KeepCheckpoints.
func (tr *Trainer) publishPending() error {
	if tr.pending == "" {
		return nil
	}
	tmp, final := tr.pending, tr.pendingFinal
	tr.pending, tr.pendingFinal = "", ""
	if _, err := os.Stat(final); err == nil {
		old := final + ".old-" + uniqueSuffix()
		if err := os.Rename(final, old); err != nil {
			_ = os.RemoveAll(tmp)
			return errors.Wrapf(err, "train: replacing %s", final)
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, final); err != nil {
		_ = os.RemoveAll(tmp)
		return errors.Wrapf(err, "train: publishing %s", final)
	}
	steps, _ := checkpointSteps(tr.Config.OutDir)
	for i := 0; i+tr.Config.KeepCheckpoints < len(steps); i++ {
		_ = os.RemoveAll(filepath.Join(tr.Config.OutDir, fmt.Sprintf("checkpoint-%d", steps[i])))
	}
	return nil
}

// dropPending deletes a checkpoint that will not be published (the step after it failed).
func (tr *Trainer) dropPending() {
	if tr.pending != "" {
		_ = os.RemoveAll(tr.pending)
		tr.pending, tr.pendingFinal = "", ""
	}
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
	st, _ := json.MarshalIndent(trainerState{Step: tr.step, Method: tr.Method.Name(), Config: tr.Config.JSON(), Run: tr.RunSettings}, "", "  ")
	return atomicfile.WriteBytes(filepath.Join(dir, "trainer_state.json"), st)
}

// checkpointSteps lists the complete checkpoint-<step> directories of outDir, ascending
// (temporaries, checkpoint-<step>.tmp-…, are not).
func checkpointSteps(outDir string) ([]int, error) {
	entries, err := os.ReadDir(outDir)
	if err != nil {
		return nil, err
	}
	var steps []int
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "checkpoint-") {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "checkpoint-")); err == nil && n >= 0 {
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

// ResumeLatest resumes from the newest complete checkpoint under dir, if there is one, and says
// whether it did (a directory that does not exist holds none).
func (tr *Trainer) ResumeLatest(dir string) (bool, error) {
	latest, err := LatestCheckpoint(dir)
	if err != nil || latest == "" {
		return false, err
	}
	return true, tr.Resume(latest)
}

// settings are the run's math-affecting settings: Config's, the method's name and Run.
func (tr *Trainer) settings(cfg *Config, method string, run map[string]string) map[string]string {
	s := cfg.settings()
	s["method"] = method
	for k, v := range run {
		s[k] = v
	}
	return s
}

// SettingsDiff lists the settings that differ between a checkpoint (was) and a run (now), one
// "name: was → now" line each, sorted by name; a setting only one side records shows as "(none)".
func SettingsDiff(was, now map[string]string) []string {
	keys := map[string]bool{}
	for k := range was {
		keys[k] = true
	}
	for k := range now {
		keys[k] = true
	}
	var out []string
	for k := range keys {
		a, aok := was[k]
		b, bok := now[k]
		if a == b && aok == bok {
			continue
		}
		if !aok {
			a = "(none)"
		}
		if !bok {
			b = "(none)"
		}
		out = append(out, fmt.Sprintf("%s: %s → %s", k, a, b))
	}
	sort.Strings(out)
	return out
}

// Resume restores weights and trainer state from a checkpoint written by Checkpoint, so Run
// continues exactly where that run was (metrics.jsonl and the TensorBoard events are cut back to
// its step when Run starts). It refuses a trainer state whose step is negative or beyond this
// run's Steps, and a run whose settings (Config's math, the method, Trainer.RunSettings) differ from the
// checkpoint's, listing the differences, unless ResumeOverride is set: then each difference is
// logged and the run continues with its own settings.
func (tr *Trainer) Resume(dir string) error {
	name := filepath.Join(dir, "trainer_state.json")
	raw, err := os.ReadFile(name)
	if err != nil {
		return errors.Wrapf(err, "train: %s is not a resumable checkpoint", dir)
	}
	st, saved, err := parseTrainerState(raw, name)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(filepath.Clean(dir)), "checkpoint-")); err == nil && n != st.Step {
		return errors.Errorf("train: %s says step %d, but the checkpoint is %s", name, st.Step, filepath.Base(dir))
	}
	if st.Step > tr.Config.Steps {
		return errors.Errorf("train: %s is at step %d, beyond this run's %d steps", name, st.Step, tr.Config.Steps)
	}
	was := tr.settings(&saved, st.Method, st.Run)
	now := tr.settings(&tr.Config, tr.Method.Name(), tr.RunSettings)
	if st.Run == nil { // written before runs recorded their settings: compare what it has
		now = tr.settings(&tr.Config, tr.Method.Name(), nil)
	}
	if diff := SettingsDiff(was, now); len(diff) > 0 {
		if !tr.ResumeOverride {
			return errors.Errorf("train: resuming %s with different settings (checkpoint → this run):\n  %s\n"+
				"run with the checkpoint's settings, or override them (--resume-override; Trainer.ResumeOverride) to continue with this run's",
				dir, strings.Join(diff, "\n  "))
		}
		if tr.Log != nil {
			for _, d := range diff {
				fmt.Fprintf(tr.Log, "resume override: %s\n", d)
			}
		}
	}
	loaded, err := model.Load(tr.LM.Backend, dir, tr.LM.DType)
	if err != nil {
		return err
	}
	if !loaded.Config.Equal(tr.LM.Config) {
		return errors.Errorf("train: checkpoint %s has a different model config", dir)
	}
	named, err := loaded.ParamTensors()
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
	return nil
}

// LoadAdamState restores the AdamW state (moments and step count) of checkpoint dir into lm's store
// and returns its settings from trainer_state.json: for readers of the optimizer state outside
// training, such as `score --precondition adam`. A directory without trainer state is an error.
func LoadAdamState(dir string, lm *model.LM) (AdamState, error) {
	name := filepath.Join(dir, "trainer_state.json")
	raw, err := os.ReadFile(name)
	if err != nil {
		return AdamState{}, errors.Wrapf(err, "train: %s has no optimizer state (not a training checkpoint)", dir)
	}
	_, cfg, err := parseTrainerState(raw, name)
	if err != nil {
		return AdamState{}, err
	}
	stPath := filepath.Join(dir, "trainer_state.safetensors")
	state, _, err := model.ReadSafetensors(stPath)
	if err != nil {
		return AdamState{}, err
	}
	st := AdamState{Scope: optimizer.AdamDefaultScope, Beta1: cfg.Beta1, Beta2: cfg.Beta2, Eps: cfg.Eps}
	prefix := "/" + optimizer.AdamDefaultScope + "/"
	for path, t := range state {
		if !strings.HasPrefix(path, prefix) {
			continue
		}
		if path == prefix+"step" {
			st.DType = t.DType()
		}
		if err := model.SetFrozen(lm.Store, path, t); err != nil {
			return AdamState{}, errors.WithMessagef(err, "train: restoring %s from %s", path, stPath)
		}
	}
	if st.DType == dtypes.InvalidDType {
		return AdamState{}, errors.Errorf("train: %s has no %sstep", stPath, prefix)
	}
	return st, nil
}
