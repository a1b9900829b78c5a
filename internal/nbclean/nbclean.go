// Package nbclean keeps executed Jupyter notebooks fit to commit: the notebooks are committed with
// the outputs of one clean run, top to bottom, so that a reader sees their tables and figures on
// GitHub without running them.
//
// Clean removes what changes between two runs of the same notebook without changing what it shows
// (nbclient's per-cell timings, ExecuteTime, widget state) and stamps the notebook's metadata with
// a digest of its cells' sources (metadata.alphatoken.source_sha256). Problems lists what keeps a
// notebook from being that clean run of its current sources: a code cell not executed, execution
// counts not 1, 2, 3, … in cell order (cells run out of order or twice), an error output, run
// metadata, or a source digest that is missing or no longer matches (a cell edited after the run).
//
// Clean writes notebooks the way Jupyter does (keys sorted, one-space indentation, non-ASCII kept,
// a final newline), and cleaning twice changes nothing.
package nbclean

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pkg/errors"
)

// Notebook-level metadata keys that record a run, not what the notebook shows.
var runMetadata = []string{"widgets"}

// Cell-level metadata keys that record a run (nbclient's timings, ExecuteTime extensions).
var cellRunMetadata = []string{"execution", "ExecuteTime"}

// metaKey holds this project's notebook metadata; digestKey the source digest inside it.
const (
	metaKey   = "alphatoken"
	digestKey = "source_sha256"
)

// Digest is the SHA-256 of the notebook's cells (type and source, in order), hex-encoded.
func Digest(data []byte) (string, error) {
	nb, err := parse(data)
	if err != nil {
		return "", err
	}
	return digest(nb)
}

func digest(nb map[string]any) (string, error) {
	h := sha256.New()
	cells, _ := nb["cells"].([]any)
	for i, c := range cells {
		cell, ok := c.(map[string]any)
		if !ok {
			return "", errors.Errorf("nbclean: cell %d is not an object", i)
		}
		fmt.Fprintf(h, "%v\x00%s\x00", cell["cell_type"], text(cell["source"]))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// text joins a notebook text field: a string or a list of strings.
func text(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case []any:
		var b strings.Builder
		for _, x := range s {
			if str, ok := x.(string); ok {
				b.WriteString(str)
			}
		}
		return b.String()
	}
	return ""
}

// Clean returns the executed notebook without run metadata, stamped with its source digest.
func Clean(data []byte) ([]byte, error) {
	nb, err := parse(data)
	if err != nil {
		return nil, err
	}
	meta, ok := nb["metadata"].(map[string]any)
	if !ok {
		meta = map[string]any{}
		nb["metadata"] = meta
	}
	for _, k := range runMetadata {
		delete(meta, k)
	}
	cells, _ := nb["cells"].([]any)
	for i, c := range cells {
		cell, ok := c.(map[string]any)
		if !ok {
			return nil, errors.Errorf("nbclean: cell %d is not an object", i)
		}
		if cm, ok := cell["metadata"].(map[string]any); ok {
			for _, k := range cellRunMetadata {
				delete(cm, k)
			}
		}
	}
	d, err := digest(nb)
	if err != nil {
		return nil, err
	}
	own, _ := meta[metaKey].(map[string]any)
	if own == nil {
		own = map[string]any{}
		meta[metaKey] = own
	}
	own[digestKey] = d
	return Format(nb)
}

// Problems lists what keeps the notebook from being a clean, error-free run of its current
// sources. An empty list means it is one.
func Problems(data []byte) ([]string, error) {
	nb, err := parse(data)
	if err != nil {
		return nil, err
	}
	var probs []string
	meta, _ := nb["metadata"].(map[string]any)
	for _, k := range runMetadata {
		if _, ok := meta[k]; ok {
			probs = append(probs, fmt.Sprintf("notebook metadata has %q (run metadata)", k))
		}
	}
	want, err := digest(nb)
	if err != nil {
		return nil, err
	}
	own, _ := meta[metaKey].(map[string]any)
	switch got, _ := own[digestKey].(string); {
	case got == "":
		probs = append(probs, "no source digest: the notebook was not executed and cleaned by the update command")
	case got != want:
		probs = append(probs, "cells changed since the notebook was executed (source digest differs)")
	}
	cells, _ := nb["cells"].([]any)
	count := 0
	for i, c := range cells {
		cell, ok := c.(map[string]any)
		if !ok {
			return nil, errors.Errorf("nbclean: cell %d is not an object", i)
		}
		name := fmt.Sprintf("cell %d", i+1)
		if id, ok := cell["id"].(string); ok {
			name += fmt.Sprintf(" (id %q)", id)
		}
		cm, _ := cell["metadata"].(map[string]any)
		for _, k := range cellRunMetadata {
			if _, ok := cm[k]; ok {
				probs = append(probs, fmt.Sprintf("%s has run metadata %q", name, k))
			}
		}
		if cell["cell_type"] != "code" {
			continue
		}
		count++
		if ec := fmt.Sprint(cell["execution_count"]); ec != fmt.Sprint(count) {
			probs = append(probs, fmt.Sprintf("%s has execution_count %s, want %d (one clean run, top to bottom)", name, ec, count))
		}
		outs, _ := cell["outputs"].([]any)
		for _, o := range outs {
			if out, ok := o.(map[string]any); ok && out["output_type"] == "error" {
				probs = append(probs, fmt.Sprintf("%s has an error output: %v: %v", name, out["ename"], out["evalue"]))
			}
		}
	}
	return probs, nil
}

// Format renders a parsed notebook as Jupyter writes it: keys sorted, one-space indentation,
// no HTML escaping, a final newline.
func Format(nb map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(nb); err != nil {
		return nil, errors.Wrap(err, "nbclean: encoding the notebook")
	}
	return buf.Bytes(), nil
}

// parse decodes a notebook, keeping numbers verbatim.
func parse(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var nb map[string]any
	if err := dec.Decode(&nb); err != nil {
		return nil, errors.Wrap(err, "nbclean: not a JSON notebook")
	}
	if _, ok := nb["cells"].([]any); !ok {
		return nil, errors.New("nbclean: not a notebook (no \"cells\" list)")
	}
	return nb, nil
}
