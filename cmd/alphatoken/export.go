package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/parquet-go/parquet-go"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/internal/atomicfile"
)

// trlRow is one example of `score --export trl`, in the layout TRL's SFTTrainer takes as it is: a
// dataset with input_ids is used without tokenization, and its collator reads labels when present
// (trl/trainer/sft_trainer.py, DataCollatorForLanguageModeling). labels[j] = input_ids[j] for the
// response tokens AlphaToken keeps and -100 for the prompt and the dropped tokens (transformers
// shifts labels inside the loss); values[j] is the token's value Φ (0 for prompt tokens, which have
// none).
type trlRow struct {
	InputIDs []int64   `json:"input_ids" parquet:"input_ids,list"`
	Labels   []int64   `json:"labels" parquet:"labels,list"`
	Values   []float64 `json:"values" parquet:"values,list"`
}

// ignoreIndex is the label of tokens without loss (PyTorch cross-entropy's ignore_index).
const ignoreIndex = -100

// trlRows lays the scores out per example: a score at label position p is token p+1.
func trlRows(examples []data.Example, scores []alphatoken.TokenScore) ([]trlRow, error) {
	rows := make([]trlRow, len(examples))
	for i, ex := range examples {
		r := trlRow{InputIDs: make([]int64, len(ex.IDs)), Labels: make([]int64, len(ex.IDs)), Values: make([]float64, len(ex.IDs))}
		for j, id := range ex.IDs {
			r.InputIDs[j], r.Labels[j] = int64(id), ignoreIndex
		}
		rows[i] = r
	}
	for _, s := range scores {
		if s.Example < 0 || s.Example >= len(rows) || s.Pos+1 >= len(rows[s.Example].InputIDs) || s.Pos < 0 {
			return nil, fmt.Errorf("score of example %d position %d is outside the data", s.Example, s.Pos)
		}
		r := &rows[s.Example]
		if r.InputIDs[s.Pos+1] != int64(s.TokenID) {
			return nil, fmt.Errorf("example %d position %d: scored token %d, data has %d", s.Example, s.Pos, s.TokenID, r.InputIDs[s.Pos+1])
		}
		r.Values[s.Pos+1] = s.Value
		if s.Kept {
			r.Labels[s.Pos+1] = int64(s.TokenID)
		}
	}
	return rows, nil
}

// writeTRLExport writes dir/train.jsonl and dir/train.parquet (atomically) with the rows.
func writeTRLExport(dir string, rows []trlRow) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--out %s: %v", dir, err)
	}
	if err := atomicfile.Write(filepath.Join(dir, "train.jsonl"), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, "train.parquet"), func(w io.Writer) error {
		pw := parquet.NewGenericWriter[trlRow](w)
		if _, err := pw.Write(rows); err != nil {
			return err
		}
		return pw.Close()
	})
}
