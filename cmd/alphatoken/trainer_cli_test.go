package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"

	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/internal/tfevents"
	"github.com/alphatoken/alphatoken/model"
)

// tinyRun makes the set-up of issue 14's reproductions: a tiny reference pre-trained for a few
// steps and a 24-line {prompt, response} JSONL.
func tinyRun(t *testing.T) (ref, data string) {
	t.Helper()
	dir := t.TempDir()
	corpus := filepath.Join(dir, "corpus.txt")
	var docs []string
	for i := range 300 {
		docs = append(docs, strings.Repeat("ab", 1+i%5)+" says hello to "+string(rune('a'+i%26))+".")
	}
	if err := os.WriteFile(corpus, []byte(strings.Join(docs, "\n\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	ref = filepath.Join(dir, "ref")
	if _, err := captureStderr(t, func() error {
		return runPretrain([]string{"--out", ref, "--corpus", corpus, "--preset", "tiny", "--steps", "6", "--batch", "4",
			"--seq", "32", "--samples", "0"})
	}); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := range 24 {
		lines = append(lines, fmt.Sprintf(`{"prompt": "q%c", "response": "ab says hello"}`, 'a'+i%26))
	}
	data = filepath.Join(dir, "train.jsonl")
	if err := os.WriteFile(data, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return ref, data
}

func readState(t *testing.T, ckpt string) (step int, cfg train.Config) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(ckpt, "trainer_state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Step   int
		Config train.Config
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	return st.Step, st.Config
}

// metricSteps lists the steps of metrics.jsonl, in file order.
func metricSteps(t *testing.T, out string) []int {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var steps []int
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var r train.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("metrics.jsonl: %v", err)
		}
		steps = append(steps, r.Step)
	}
	return steps
}

// allFinite fails if a checkpoint holds a NaN or Inf weight.
func allFinite(t *testing.T, dir string) {
	t.Helper()
	lm, err := model.Load(testBackendCLI(t), dir, dtypes.Float32)
	if err != nil {
		t.Fatal(err)
	}
	named, _ := lm.ParamTensors()
	for _, nt := range named {
		vals, _ := model.TensorFloat64(nt.Tensor)
		for _, x := range vals {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				t.Fatalf("%s holds a non-finite %s", dir, nt.Name)
			}
		}
	}
}

var divergedStep = regexp.MustCompile(`step (\d+) of (\d+) diverged`)

// TestTrainingRunCases: issue 14 #7, #9, #10 and issue 15 #1, #4 as the CLI meets them, one case
// per row: flag errors, divergence, the output directory rules, resume checks, the lock, and the
// training features (each run's trainer_state.json, metrics and event files checked).
func TestTrainingRunCases(t *testing.T) {
	ref, trainData := tinyRun(t)
	base := []string{"--model", ref, "--data", trainData, "--steps", "4", "--batch", "4", "--max-len", "32", "--log-every", "1"}
	sft := func(out string, extra ...string) (string, error) {
		args := append(append([]string{"--out", out}, base...), extra...)
		// Later flags win: a case may repeat one of base's.
		return captureStderr(t, func() error { return runSFT(args) })
	}
	// finished leaves a finished 4-step run with checkpoints at 2 and 4 in out.
	finished := func(t *testing.T, out string) {
		if _, err := sft(out, "--checkpoint-every", "2"); err != nil {
			t.Fatal(err)
		}
	}
	notCreated := func(t *testing.T, out, _ string) {
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("a flag error created %s", out)
		}
	}
	otherData := filepath.Join(t.TempDir(), "other.jsonl")
	raw, _ := os.ReadFile(trainData)
	if err := os.WriteFile(otherData, append(raw, []byte("\n{\"prompt\": \"qz\", \"response\": \"ab\"}")...), 0o644); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	cases := []struct {
		name  string
		setup func(t *testing.T, out string)
		args  []string
		want  string // substring of the error; "" for success
		check func(t *testing.T, out, stderr string)
	}{
		// #7: non-finite flags are flag errors.
		{name: "lr NaN", args: []string{"--lr", "NaN"}, want: "--lr must be a finite number > 0, got NaN", check: notCreated},
		{name: "lr Inf", args: []string{"--lr", "Inf"}, want: "--lr must be a finite number > 0, got +Inf", check: notCreated},
		{name: "lr 0", args: []string{"--lr", "0"}, want: "--lr must be a finite number > 0, got 0", check: notCreated},
		{name: "clip NaN", args: []string{"--clip", "NaN"}, want: "--clip must be a finite number", check: notCreated},
		{name: "weight decay Inf", args: []string{"--weight-decay", "Inf"}, want: "--weight-decay must be a finite number", check: notCreated},
		{name: "grad-accum 0", args: []string{"--grad-accum", "0"}, want: "--grad-accum must be ≥ 1", check: notCreated},
		{name: "scheduler", args: []string{"--scheduler", "exp"}, want: `--scheduler: "exp" is not one of cosine, linear, constant`, check: notCreated},
		// #7: an update that overflows: caught after the step, nothing written.
		{name: "lr beyond float32", args: []string{"--lr", "1e39", "--checkpoint-every", "1"}, want: "step 1 of 4 diverged: the updated state holds",
			check: func(t *testing.T, out, _ string) {
				if latest, _ := train.LatestCheckpoint(out); latest != "" {
					t.Errorf("checkpoint %s written", latest)
				}
				if _, err := os.Stat(filepath.Join(out, "model.safetensors")); err == nil {
					t.Error("the diverged model was saved")
				}
			}},
		// #7: --lr 3e8 diverges a few steps in: the error names the step; every checkpoint is
		// finite; the newest one's next step is finite (resuming it diverges at the same step
		// again, not at once); no final model.
		{name: "diverges", args: []string{"--lr", "3e8", "--warmup", "4", "--steps", "40", "--checkpoint-every", "2"}, want: "diverged: the loss is NaN",
			check: func(t *testing.T, out, _ string) {
				if _, err := os.Stat(filepath.Join(out, "model.safetensors")); err == nil {
					t.Error("the diverged model was saved")
				}
				latest, _ := train.LatestCheckpoint(out)
				if latest == "" {
					t.Skip("diverged before the first checkpoint on this machine")
				}
				entries, _ := os.ReadDir(out)
				for _, e := range entries {
					if strings.HasPrefix(e.Name(), "checkpoint-") {
						allFinite(t, filepath.Join(out, e.Name()))
					}
				}
				c, _ := readState(t, latest)
				_, err := sft(out, "--lr", "3e8", "--warmup", "4", "--steps", "40", "--checkpoint-every", "2", "--resume")
				m := divergedStep.FindStringSubmatch(fmt.Sprint(err))
				if m == nil {
					t.Fatalf("resumed from %s: %v", latest, err)
				}
				if s, _ := strconv.Atoi(m[1]); s < c+2 {
					t.Fatalf("the newest checkpoint (step %d) diverges at step %d: its next step was not finite", c, s)
				}
			}},
		// #1 (issue 15): a finished run is never replaced silently.
		{name: "non-empty out", setup: finished, want: "is not empty (checkpoint-2, checkpoint-4, config.json, metrics.jsonl, and 4 more)",
			check: func(t *testing.T, out, _ string) {
				if got := metricSteps(t, out); len(got) != 4 {
					t.Errorf("the refused run touched metrics.jsonl: %v", got)
				}
			}},
		{name: "overwrite", setup: func(t *testing.T, out string) {
			finished(t, out)
			_ = os.Mkdir(filepath.Join(out, "checkpoint-40"), 0o755)
		}, args: []string{"--overwrite", "--steps", "2"},
			check: func(t *testing.T, out, _ string) {
				if latest, _ := train.LatestCheckpoint(out); filepath.Base(latest) != "checkpoint-2" {
					t.Errorf("newest checkpoint %s", latest)
				}
				if got := metricSteps(t, out); fmt.Sprint(got) != "[1 2]" {
					t.Errorf("metrics.jsonl steps %v: the old run's lines were kept", got)
				}
			}},
		{name: "resume and overwrite", setup: finished, args: []string{"--resume", "--overwrite"}, want: "exclude each other"},
		{name: "override without resume", args: []string{"--resume-override"}, want: "--resume-override applies to --resume only"},
		// #9: resume checks the run.
		{name: "resume same settings", setup: finished, args: []string{"--resume"},
			check: func(t *testing.T, out, stderr string) {
				if !strings.Contains(stderr, "resuming from") || fmt.Sprint(metricSteps(t, out)) != "[1 2 3 4]" {
					t.Errorf("stderr %q, metrics %v", stderr, metricSteps(t, out))
				}
			}},
		{name: "resume changed lr", setup: finished, args: []string{"--resume", "--lr", "2e-4", "--seed", "3"},
			want: "with different settings (checkpoint → this run):\n  LR: 0.0001 → 0.0002\n  Seed: 1 → 3\nrun with"},
		{name: "resume changed data", setup: finished, args: []string{"--resume", "--data", otherData}, want: "--data: sha256:"},
		{name: "resume changed method options", setup: finished, args: []string{"--resume", "--rho", "0.3", "--template", "plain", "--max-len", "64"},
			want: "--rho: 0.5 → 0.3\n  --template: auto → plain\n  MaxLen: 32 → 64\nrun with"},
		{name: "resume override", setup: func(t *testing.T, out string) {
			if _, err := sft(out, "--checkpoint-every", "2", "--steps", "2"); err != nil {
				t.Fatal(err)
			}
		}, args: []string{"--resume", "--resume-override", "--lr", "2e-4"},
			check: func(t *testing.T, out, stderr string) {
				for _, want := range []string{"resume override: LR: 0.0001 → 0.0002\nresume override: Steps: 2 → 4\nresuming from"} {
					if !strings.Contains(stderr, want) {
						t.Errorf("stderr lacks %q:\n%s", want, stderr)
					}
				}
				if step, cfg := readState(t, filepath.Join(out, "checkpoint-4")); step != 4 || cfg.LR != 2e-4 {
					t.Errorf("checkpoint-4: step %d, lr %g", step, cfg.LR)
				}
			}},
		{name: "state step -5", setup: func(t *testing.T, out string) {
			finished(t, out)
			p := filepath.Join(out, "checkpoint-4", "trainer_state.json")
			raw, _ := os.ReadFile(p)
			_ = os.WriteFile(p, []byte(strings.Replace(string(raw), `"step": 4`, `"step": -5`, 1)), 0o644)
		}, args: []string{"--resume"}, want: "step -5 is negative"},
		{name: "state step 1000", setup: func(t *testing.T, out string) {
			finished(t, out)
			p := filepath.Join(out, "checkpoint-1000")
			_ = os.Rename(filepath.Join(out, "checkpoint-4"), p)
			raw, _ := os.ReadFile(filepath.Join(p, "trainer_state.json"))
			_ = os.WriteFile(filepath.Join(p, "trainer_state.json"), []byte(strings.Replace(string(raw), `"step": 4`, `"step": 1000`, 1)), 0o644)
		}, args: []string{"--resume"}, want: "at step 1000, beyond this run's 4 steps"},
		// #10: a lock left by a dead run is taken over with a warning naming it.
		{name: "stale lock", setup: func(t *testing.T, out string) {
			_ = os.MkdirAll(out, 0o755)
			rec := fmt.Sprintf(`{"pid": 999999, "host": %q, "started": "2026-01-02T03:04:05Z", "command": "alphatoken train-sft --out x"}`, host)
			_ = os.WriteFile(filepath.Join(out, train.LockFile), []byte(rec), 0o644)
			_ = os.Mkdir(filepath.Join(out, "checkpoint-2.tmp-999999-abcdef"), 0o755)
		}, check: func(t *testing.T, out, stderr string) {
			if !strings.Contains(stderr, "ended without releasing it") || !strings.Contains(stderr, "pid 999999") {
				t.Errorf("no stale-lock warning:\n%s", stderr)
			}
			if _, err := os.Stat(filepath.Join(out, "checkpoint-2.tmp-999999-abcdef")); !os.IsNotExist(err) {
				t.Error("the dead run's temporary is still there")
			}
			if _, err := os.Stat(filepath.Join(out, train.LockFile)); !os.IsNotExist(err) {
				t.Error("the lock was not released")
			}
		}},
		// #4 (issue 15): the training features reach the run.
		{name: "grad-accum clip scheduler tensorboard", args: []string{"--grad-accum", "2", "--clip", "0", "--scheduler", "linear", "--steps", "3", "--checkpoint-every", "3"},
			check: func(t *testing.T, out, _ string) {
				_, cfg := readState(t, filepath.Join(out, "checkpoint-3"))
				if cfg.GradAccum != 2 || cfg.ClipNorm != -1 || cfg.Schedule != train.ScheduleLinear || cfg.BatchSize != 4 {
					t.Errorf("config %+v", cfg)
				}
				files, _ := tfevents.Files(filepath.Join(out, "tb"))
				if len(files) != 1 {
					t.Fatalf("event files %v", files)
				}
				events, err := tfevents.ReadFile(files[0])
				if err != nil || len(events) != 4 || events[3].Step != 3 {
					t.Fatalf("events %+v (%v)", events, err)
				}
				tags := map[string]bool{}
				for _, s := range events[3].Scalars {
					tags[s.Tag] = true
				}
				if !tags["train/loss"] || !tags["train/lr"] || !tags["train/grad_norm"] || !tags["train/tokens"] {
					t.Errorf("tags %v", tags)
				}
			}},
		{name: "tensorboard off", args: []string{"--tensorboard", "off", "--steps", "1"},
			check: func(t *testing.T, out, _ string) {
				if _, err := os.Stat(filepath.Join(out, "tb")); !os.IsNotExist(err) {
					t.Error("tb/ written with --tensorboard off")
				}
			}},
		{name: "packing", args: []string{"--packing", "--max-len", "64", "--batch", "2", "--steps", "0", "--epochs", "1", "--checkpoint-every", "1"},
			check: func(t *testing.T, out, stderr string) {
				steps := metricSteps(t, out)
				_, cfg := readState(t, filepath.Join(out, fmt.Sprintf("checkpoint-%d", steps[len(steps)-1])))
				// An epoch of 24 examples is 12 steps of 2 rows unpacked; packed rows of 64 tokens
				// hold several of these ~20-token examples, and the steps follow the rows.
				if !cfg.Packing || cfg.Steps > 6 || len(steps) != cfg.Steps {
					t.Errorf("packing %v, %d steps, logged %v (stderr %s)", cfg.Packing, cfg.Steps, steps, stderr)
				}
			}},
		{name: "packing alphatoken", args: []string{"--packing", "--method", "alphatoken", "--val", trainData, "--fisher", "none", "--k", "2"},
			want: "method alphatoken does not support packing"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), fmt.Sprintf("out%d", i))
			if c.setup != nil {
				c.setup(t, out)
			}
			stderr, err := sft(out, c.args...)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("%v\n%s", err, stderr)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("want an error containing %q, got %v", c.want, err)
			}
			if c.check != nil {
				c.check(t, out, stderr)
			}
		})
	}
}

// TestOneWriterCLI (issue 14 #10): while a train-sft process writes --out, a second run on it fails
// naming that process; after the first is killed (kill -9), the next run takes the lock over with
// a warning naming it, and metrics.jsonl holds the new run's steps only, once each.
func TestOneWriterCLI(t *testing.T) {
	ref, data := tinyRun(t)
	out := filepath.Join(t.TempDir(), "out")
	args := []string{"--model", ref, "--data", data, "--batch", "4", "--max-len", "32", "--log-every", "1"}
	child := exec.Command(os.Args[0], append([]string{"train-sft", "--out", out, "--steps", "100000"}, args...)...)
	child.Env = append(os.Environ(), childEnv+"=1")
	stderr, _ := child.StderrPipe()
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	// Wait until it trains (it holds the lock from before its first step).
	lines := bufio.NewScanner(stderr)
	deadline := time.Now().Add(2 * time.Minute)
	for lines.Scan() && !strings.Contains(lines.Text(), "step 2/100000") {
		if time.Now().After(deadline) {
			t.Fatal("the first run did not start training")
		}
	}
	go func() {
		for lines.Scan() {
		}
	}()
	_, err := captureStderr(t, func() error { return runSFT(append([]string{"--out", out, "--steps", "3", "--resume"}, args...)) })
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("in use by another run: pid %d", child.Process.Pid)) ||
		!strings.Contains(err.Error(), "train-sft --out "+out) {
		t.Fatalf("second writer: %v", err)
	}
	_ = child.Process.Kill()
	_ = child.Wait()
	log, err := captureStderr(t, func() error { return runSFT(append([]string{"--out", out, "--steps", "3", "--overwrite"}, args...)) })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log, fmt.Sprintf("pid %d", child.Process.Pid)) || !strings.Contains(log, "ended without releasing it") {
		t.Fatalf("no stale-lock warning naming pid %d:\n%s", child.Process.Pid, log)
	}
	if got := metricSteps(t, out); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("metrics.jsonl steps %v", got)
	}
}
