package minibench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// WriteFiles writes the build under dir:
//
//	manifest.json                    config, fingerprints, sizes, chance levels, limits, stop rules
//	corpus.txt                       documents separated by one blank line (documents contain none)
//	corpus.jsonl                     {"text"} per document
//	<target>_train.jsonl             {"prompt","response"}      (target = code, math)
//	<target>_val.jsonl               {"prompt","response"}      B_val pool
//	<target>_test.jsonl              {"id","family","prompt","response","answer"?,"tests"?}
//	<target>_fisher_prompts.jsonl    {"prompt"}
//	retention_oracle.jsonl           {"prompt","response"}
//	probes/{arc,hellaswag,mmlu}.jsonl {"id","kind","context","choices","answer"}
//	probes/gsm.jsonl                 {"id","kind","prompt","answer","solution"}
//
// Every file is written to a temporary file in the same directory and renamed
// into place, so a reader never sees a partial file.
func (b *Bench) WriteFiles(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "probes"), 0o755); err != nil {
		return fmt.Errorf("minibench: %w", err)
	}
	if err := writeJSONFile(filepath.Join(dir, "manifest.json"), b.manifest()); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, "corpus.txt"), func(w *bufio.Writer) error {
		_, err := w.WriteString(strings.Join(b.Corpus, "\n\n") + "\n")
		return err
	}); err != nil {
		return err
	}
	type text struct {
		Text string `json:"text"`
	}
	corpus := make([]text, len(b.Corpus))
	for i, d := range b.Corpus {
		corpus[i] = text{d}
	}
	if err := writeJSONL(filepath.Join(dir, "corpus.jsonl"), corpus); err != nil {
		return err
	}
	for _, t := range []*Target{b.Code, b.Math} {
		type prompt struct {
			Prompt string `json:"prompt"`
		}
		fp := make([]prompt, len(t.FisherPrompts))
		for i, p := range t.FisherPrompts {
			fp[i] = prompt{p}
		}
		for _, err := range []error{
			writeJSONL(filepath.Join(dir, t.Name+"_train.jsonl"), t.Train),
			writeJSONL(filepath.Join(dir, t.Name+"_val.jsonl"), t.Val),
			writeJSONL(filepath.Join(dir, t.Name+"_test.jsonl"), t.Test),
			writeJSONL(filepath.Join(dir, t.Name+"_fisher_prompts.jsonl"), fp),
		} {
			if err != nil {
				return err
			}
		}
	}
	for _, err := range []error{
		writeJSONL(filepath.Join(dir, "retention_oracle.jsonl"), b.RetentionOracle),
		writeJSONL(filepath.Join(dir, "probes", ProbeARC+".jsonl"), b.ARC),
		writeJSONL(filepath.Join(dir, "probes", ProbeHellaSwag+".jsonl"), b.HellaSwag),
		writeJSONL(filepath.Join(dir, "probes", ProbeMMLU+".jsonl"), b.MMLU),
		writeJSONL(filepath.Join(dir, "probes", ProbeGSM+".jsonl"), b.GSM),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// Manifest is the content of manifest.json.
type Manifest struct {
	GeneratorVersion  string             `json:"generator_version"`
	Fingerprint       string             `json:"fingerprint"`
	CorpusFingerprint string             `json:"corpus_fingerprint"`
	Config            Config             `json:"config"`
	Stats             Stats              `json:"stats"`
	Chance            map[string]float64 `json:"chance"`
	Limits            map[string]int     `json:"limits"`
	StopRules         map[string]string  `json:"stop_rules"`
}

func (b *Bench) manifest() Manifest {
	return Manifest{
		GeneratorVersion:  GeneratorVersion,
		Fingerprint:       b.Config.Fingerprint(),
		CorpusFingerprint: b.Config.CorpusFingerprint(),
		Config:            b.Config,
		Stats:             b.Stats(),
		Chance:            b.Chance(),
		Limits: map[string]int{
			"corpus_doc_bytes":                  MaxDocBytes,
			"mc_context_plus_choice_bytes":      MaxMCBytes,
			"gsm_prompt_plus_solution_bytes":    MaxGSMBytes,
			"target_prompt_plus_response_bytes": MaxTargetBytes,
			"gsm_max_new_bytes":                 GSMMaxNewBytes,
			"code_max_new_bytes":                CodeMaxNewBytes,
			"math_max_new_bytes":                MathMaxNewBytes,
		},
		StopRules: map[string]string{
			ProbeGSM:   "EOS, or a newline after '####', or the number after '####' followed by another character, or gsm_max_new_bytes",
			TargetCode: "EOS, or a newline (after the header line) followed by a non-space character, or code_max_new_bytes; the judge truncates the same way",
			TargetMath: "EOS, or a newline after 'The answer is', or the number after it followed by another character, or math_max_new_bytes",
		},
	}
}

// MaxTargetBytes bounds len(Prompt)+len(Response) of every target example.
const MaxTargetBytes = 160

func writeJSONL[T any](path string, items []T) error {
	return writeAtomic(path, func(w *bufio.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for _, it := range items {
			if err := enc.Encode(it); err != nil {
				return err
			}
		}
		return nil
	})
}

func writeJSONFile(path string, v any) error {
	return writeAtomic(path, func(w *bufio.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	})
}

// writeAtomic writes through fill into a temporary file next to path, syncs
// it and renames it over path. On any error the temporary file is removed.
func writeAtomic(path string, fill func(*bufio.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("minibench: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("minibench: writing %s: %w", path, err)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<16)
	if err = fill(w); err != nil {
		return err
	}
	if err = w.Flush(); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
