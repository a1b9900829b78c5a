// Package nbstrip removes the results of running a Jupyter notebook (cell outputs, execution
// counts, execution timings, widget state), so notebooks are committed as source only, and checks
// that a notebook is in that state.
//
// Strip writes notebooks the way Jupyter does (keys sorted, one-space indentation, non-ASCII
// kept, a final newline), so stripping a notebook saved by Jupyter changes only what it removes,
// and stripping twice changes nothing.
package nbstrip

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/pkg/errors"
)

// Notebook-level metadata keys that record a run, not the source.
var runMetadata = []string{"widgets"}

// Cell-level metadata keys that record a run (nbclient's timings, ExecuteTime extensions).
var cellRunMetadata = []string{"execution", "ExecuteTime"}

// Problems lists what in a notebook records a run: code cells with outputs or an execution
// count, run metadata. An empty list means the notebook is stripped.
func Problems(data []byte) ([]string, error) {
	nb, err := parse(data)
	if err != nil {
		return nil, err
	}
	var probs []string
	meta, _ := nb["metadata"].(map[string]any)
	for _, k := range runMetadata {
		if _, ok := meta[k]; ok {
			probs = append(probs, fmt.Sprintf("notebook metadata has %q", k))
		}
	}
	cells, _ := nb["cells"].([]any)
	for i, c := range cells {
		cell, ok := c.(map[string]any)
		if !ok {
			return nil, errors.Errorf("nbstrip: cell %d is not an object", i)
		}
		name := fmt.Sprintf("cell %d", i+1)
		if id, ok := cell["id"].(string); ok {
			name += fmt.Sprintf(" (id %q)", id)
		}
		if outs, ok := cell["outputs"].([]any); ok && len(outs) > 0 {
			probs = append(probs, fmt.Sprintf("%s has %d outputs", name, len(outs)))
		}
		if ec, ok := cell["execution_count"]; ok && ec != nil {
			probs = append(probs, fmt.Sprintf("%s has execution_count %v", name, ec))
		}
		cm, _ := cell["metadata"].(map[string]any)
		for _, k := range cellRunMetadata {
			if _, ok := cm[k]; ok {
				probs = append(probs, fmt.Sprintf("%s has metadata %q", name, k))
			}
		}
	}
	return probs, nil
}

// Strip returns the notebook without outputs, execution counts and run metadata.
func Strip(data []byte) ([]byte, error) {
	nb, err := parse(data)
	if err != nil {
		return nil, err
	}
	if meta, ok := nb["metadata"].(map[string]any); ok {
		for _, k := range runMetadata {
			delete(meta, k)
		}
	}
	cells, _ := nb["cells"].([]any)
	for i, c := range cells {
		cell, ok := c.(map[string]any)
		if !ok {
			return nil, errors.Errorf("nbstrip: cell %d is not an object", i)
		}
		if cell["cell_type"] == "code" {
			cell["outputs"] = []any{}
			cell["execution_count"] = nil
		}
		if cm, ok := cell["metadata"].(map[string]any); ok {
			for _, k := range cellRunMetadata {
				delete(cm, k)
			}
		}
	}
	return Format(nb)
}

// Format renders a parsed notebook as Jupyter writes it: keys sorted, one-space indentation,
// no HTML escaping, a final newline.
func Format(nb map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(nb); err != nil {
		return nil, errors.Wrap(err, "nbstrip: encoding the notebook")
	}
	return buf.Bytes(), nil
}

// parse decodes a notebook, keeping numbers verbatim.
func parse(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var nb map[string]any
	if err := dec.Decode(&nb); err != nil {
		return nil, errors.Wrap(err, "nbstrip: not a JSON notebook")
	}
	if _, ok := nb["cells"].([]any); !ok {
		return nil, errors.New("nbstrip: not a notebook (no \"cells\" list)")
	}
	return nb, nil
}
