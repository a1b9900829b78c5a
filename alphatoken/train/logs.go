package train

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/internal/atomicfile"
	"github.com/alphatoken/alphatoken/internal/tfevents"
)

// openLogs cuts metrics.jsonl and the TensorBoard events back to the steps already taken (what a
// resumed or restarted run redoes is logged again, once) and opens a new event file.
func (tr *Trainer) openLogs() error {
	if tr.Config.OutDir != "" {
		if err := truncateMetrics(filepath.Join(tr.Config.OutDir, "metrics.jsonl"), tr.step); err != nil {
			return err
		}
	}
	if dir := tr.Config.TensorBoardDir; dir != "" {
		if err := tfevents.Truncate(dir, int64(tr.step)); err != nil {
			return errors.WithMessage(err, "train: TensorBoard events")
		}
		w, err := tfevents.NewWriter(dir)
		if err != nil {
			return errors.WithMessage(err, "train: TensorBoard events")
		}
		tr.tb = w
	}
	return nil
}

func (tr *Trainer) closeLogs() error {
	if tr.tb == nil {
		return nil
	}
	err := tr.tb.Close()
	tr.tb = nil
	return err
}

// logRecord appends rec to OutDir/metrics.jsonl (one JSON line, one write) and to the TensorBoard
// events: train/loss, train/lr, train/grad_norm, train/tokens_per_sec, train/step_seconds and each
// metric (train/<name>; eval_<x> as eval/<x>).
func (tr *Trainer) logRecord(rec Record) error {
	if err := tr.appendMetrics(rec); err != nil {
		return err
	}
	if tr.tb == nil {
		return nil
	}
	scalars := map[string]float64{"train/loss": rec.Loss, "train/lr": rec.LR, "train/grad_norm": rec.GradNorm,
		"train/tokens_per_sec": rec.TokensPerSec, "train/step_seconds": rec.StepSeconds}
	for k, v := range rec.Metrics {
		if rest, ok := strings.CutPrefix(k, "eval_"); ok {
			scalars["eval/"+rest] = v
		} else {
			scalars["train/"+k] = v
		}
	}
	if err := tr.tb.WriteScalars(int64(rec.Step), time.Now(), scalars); err != nil {
		return err
	}
	return tr.tb.Flush()
}

// appendMetrics appends one JSON line to OutDir/metrics.jsonl.
func (tr *Trainer) appendMetrics(rec Record) error {
	if tr.Config.OutDir == "" {
		return nil
	}
	if err := os.MkdirAll(tr.Config.OutDir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(tr.Config.OutDir, "metrics.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return errors.Wrap(err, "train: opening metrics.jsonl")
	}
	line, _ := json.Marshal(rec)
	_, err = f.Write(append(line, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return errors.Wrap(err, "train: writing metrics.jsonl")
}

// truncateMetrics keeps the records of metrics.jsonl up to step.
func truncateMetrics(path string, step int) error {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var keep []byte
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r Record
		if json.Unmarshal([]byte(line), &r) == nil && r.Step <= step {
			keep = append(keep, line+"\n"...)
		}
	}
	return atomicfile.WriteBytes(path, keep)
}
