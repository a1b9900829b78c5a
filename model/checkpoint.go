package model

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	gm "github.com/gomlx/gomlx/ml/model"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/internal/atomicfile"
)

// ignoredTensors are buffers some HF checkpoints carry that are not parameters.
var ignoredTensors = []string{".rotary_emb.inv_freq"}

// Load reads a Hugging Face checkpoint directory: config.json plus model.safetensors, or the
// shards listed by model.safetensors.index.json. Every tensor the config implies must be present
// with its exact shape; a mismatch is an error naming the tensor, the expected and the found shape.
// Weights are converted to the storage dtype dtype whatever the file holds (dtypes.InvalidDType
// means float32); see LM.SetPrecision for the compute dtype.
func Load(backend compute.Backend, dir string, dtype dtypes.DType) (*LM, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	if dtype == dtypes.InvalidDType {
		dtype = dtypes.Float32
	}
	files, weightMap, err := weightFiles(dir)
	if err != nil {
		return nil, err
	}
	found := map[string]*tensors.Tensor{}
	foundIn := map[string]string{}
	for _, f := range files {
		ts, _, err := ReadSafetensors(filepath.Join(dir, f))
		if err != nil {
			return nil, err
		}
		for name, t := range ts {
			if prev, dup := foundIn[name]; dup {
				return nil, errors.Errorf("model: checkpoint %s: tensor %s appears in both %s and %s", dir, name, prev, f)
			}
			if weightMap != nil && weightMap[name] != f {
				return nil, errors.Errorf("model: checkpoint %s: tensor %s is in %s, but model.safetensors.index.json maps it to %q",
					dir, name, f, weightMap[name])
			}
			found[name], foundIn[name] = t, f
		}
	}
	for _, name := range slices.Sorted(maps.Keys(weightMap)) {
		if _, ok := found[name]; !ok {
			return nil, errors.Errorf("model: checkpoint %s: model.safetensors.index.json maps tensor %s to %s, which does not hold it",
				dir, name, weightMap[name])
		}
	}
	missingNote := ""
	if cfg.textOf != "" { // a multimodal checkpoint: keep its text stack, under the causal LM's names
		text, textIn := map[string]*tensors.Tensor{}, map[string]string{}
		for _, name := range SortedNames(found) {
			if hf, ok := gemma3TextTensor(name); ok {
				if _, dup := text[hf]; dup {
					return nil, errors.Errorf("model: checkpoint %s: two tensors map to the text stack's %s (%s in %s is the second)", dir, hf, name, foundIn[name])
				}
				text[hf], textIn[hf] = found[name], foundIn[name]
			}
		}
		found, foundIn = text, textIn
		missingNote = fmt.Sprintf("; config.json is a %s's, whose text weights are read under language_model.model.* or model.language_model.*", cfg.textOf)
	}
	lm := &LM{Config: cfg, Store: gm.NewStore(), Backend: backend, DType: dtype}
	expected := map[string]bool{}
	for _, spec := range cfg.ParamSpecs() {
		expected[spec.Name] = true
		t, ok := found[spec.Name]
		if !ok {
			return nil, errors.Errorf("model: checkpoint %s: tensor %s is missing (config.json implies shape %v%s)", dir, spec.Name, spec.Shape, missingNote)
		}
		if got := t.Shape().Dimensions; !slices.Equal(got, spec.Shape) {
			return nil, errors.Errorf("model: checkpoint %s: tensor %s has shape %v in %s, but config.json implies %v",
				dir, spec.Name, got, foundIn[spec.Name], spec.Shape)
		}
		if !t.Shape().DType.IsFloat() {
			return nil, errors.Errorf("model: checkpoint %s: tensor %s has non-float dtype %s", dir, spec.Name, t.Shape().DType)
		}
		t, err = ConvertTensor(t, dtype)
		if err != nil {
			return nil, errors.WithMessagef(err, "model: converting %s", spec.Name)
		}
		if _, err := lm.Store.CreateVariable(VarPath(spec.Name), t); err != nil {
			return nil, err
		}
	}
	for _, name := range SortedNames(found) {
		if expected[name] || (cfg.TieEmbeddings && name == "lm_head.weight") ||
			slices.ContainsFunc(ignoredTensors, func(s string) bool { return strings.HasSuffix(name, s) }) {
			continue
		}
		return nil, errors.Errorf("model: checkpoint %s: unexpected tensor %s (shape %v) in %s: not part of a %s model with this config.json",
			dir, name, found[name].Shape().Dimensions, foundIn[name], cfg.Arch)
	}
	return lm, nil
}

// weightFiles lists the safetensors files of a checkpoint: the shards named by the index (with
// the index's tensor → file map), or model.safetensors (and a nil map).
func weightFiles(dir string) ([]string, map[string]string, error) {
	indexPath := filepath.Join(dir, "model.safetensors.index.json")
	if data, err := os.ReadFile(indexPath); err == nil {
		index, err := ParseShardIndex(indexPath, data)
		if err != nil {
			return nil, nil, err
		}
		for _, f := range index.Files {
			if err := insideCheckpoint(dir, f); err != nil {
				return nil, nil, errors.WithMessagef(err, "model: %s", indexPath)
			}
		}
		return index.Files, index.WeightMap, nil
	} else if !os.IsNotExist(err) {
		return nil, nil, errors.Wrapf(err, "model: reading %s", indexPath)
	}
	single := filepath.Join(dir, "model.safetensors")
	if _, err := os.Stat(single); err != nil {
		return nil, nil, errors.Errorf("model: checkpoint %s has neither model.safetensors nor model.safetensors.index.json", dir)
	}
	return []string{"model.safetensors"}, nil, nil
}

// ShardIndex is a validated model.safetensors.index.json.
type ShardIndex struct {
	WeightMap map[string]string // tensor name → shard file, relative to the checkpoint directory
	Files     []string          // the distinct shard files, sorted
}

// ParseShardIndex parses a shard index (path names it in errors). Every shard must be a
// .safetensors file named by a local path: not absolute, no "..", nothing outside the checkpoint
// directory (filepath.IsLocal). Symbolic links are checked when the files are opened.
func ParseShardIndex(path string, data []byte) (*ShardIndex, error) {
	var raw struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, errors.Wrapf(err, "model: parsing %s", path)
	}
	if len(raw.WeightMap) == 0 {
		return nil, errors.Errorf("model: %s has no weight_map (tensor → shard file)", path)
	}
	index := &ShardIndex{WeightMap: raw.WeightMap}
	for _, name := range slices.Sorted(maps.Keys(raw.WeightMap)) {
		f := raw.WeightMap[name]
		if !filepath.IsLocal(f) || strings.ContainsRune(f, '\\') || !strings.HasSuffix(f, ".safetensors") {
			return nil, errors.Errorf("model: %s: tensor %s is mapped to %q: a shard must be a .safetensors file inside the checkpoint directory (a relative path without \"..\")",
				path, name, f)
		}
		if !slices.Contains(index.Files, f) {
			index.Files = append(index.Files, f)
		}
	}
	slices.Sort(index.Files)
	return index, nil
}

// insideCheckpoint checks that dir/name, with every symbolic link resolved, lies inside dir, or,
// for a snapshot of the Hugging Face cache (<repo>/snapshots/<rev>/, whose files are links to
// <repo>/blobs/), inside that repository's blobs.
func insideCheckpoint(dir, name string) error {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	target, err := filepath.EvalSymlinks(filepath.Join(dir, name))
	if err != nil {
		return errors.Errorf("shard %s: %v", name, err)
	}
	within := func(base string) bool {
		rel, err := filepath.Rel(base, target)
		return err == nil && filepath.IsLocal(rel)
	}
	if within(root) {
		return nil
	}
	if snapshots := filepath.Dir(root); filepath.Base(snapshots) == "snapshots" && within(filepath.Join(filepath.Dir(snapshots), "blobs")) {
		return nil
	}
	return errors.Errorf("shard %s resolves to %s, outside the checkpoint directory %s", name, target, root)
}

// SaveOptions controls Save.
type SaveOptions struct {
	// MaxShardBytes > 0 splits the weights into model-0000i-of-0000n.safetensors shards of at most
	// this size (a single tensor larger than that gets a shard of its own) plus the index file.
	MaxShardBytes int64
	// Transformers5 writes config.json in the transformers-5 form (rope_parameters, dtype) instead
	// of the transformers-4 one (rope_theta, rope_scaling, torch_dtype); both load here and in
	// transformers.
	Transformers5 bool
}

// Save writes config.json and the weights (HF names, safetensors) to dir, in the storage dtype
// lm.DType (float32 under --dtype bfloat16 mixed precision; torch_dtype/dtype in config.json say
// which). Every file is written atomically; for a checkpoint that must appear all at once, save into a temporary directory and
// rename it (the trainer does).
func (lm *LM) Save(dir string, opts SaveOptions) error {
	cfg := *lm.Config
	cfg.DType = DTypeName(lm.DType)
	marshal := cfg.MarshalHF
	if opts.Transformers5 {
		marshal = cfg.MarshalHF5
	}
	cfgJSON, err := marshal()
	if err != nil {
		return err
	}
	named, err := lm.ParamTensors()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return errors.Wrapf(err, "model: creating %s", dir)
	}
	meta := map[string]string{"format": "pt"}
	// The layout not written is removed, so Load never sees two.
	if opts.MaxShardBytes <= 0 {
		if err := WriteSafetensors(filepath.Join(dir, "model.safetensors"), named, meta); err != nil {
			return err
		}
		_ = os.Remove(filepath.Join(dir, "model.safetensors.index.json"))
	} else {
		var shards [][]NamedTensor
		var size int64
		var total int64
		for _, nt := range named {
			b := int64(nt.Tensor.Shape().ByteSize())
			total += b
			if len(shards) == 0 || (size+b > opts.MaxShardBytes && size > 0) {
				shards = append(shards, nil)
				size = 0
			}
			shards[len(shards)-1] = append(shards[len(shards)-1], nt)
			size += b
		}
		weightMap := map[string]string{}
		for i, shard := range shards {
			name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
			if err := WriteSafetensors(filepath.Join(dir, name), shard, meta); err != nil {
				return err
			}
			for _, nt := range shard {
				weightMap[nt.Name] = name
			}
		}
		index, _ := json.MarshalIndent(map[string]any{
			"metadata": map[string]any{"total_size": total}, "weight_map": weightMap}, "", "  ")
		if err := atomicfile.WriteBytes(filepath.Join(dir, "model.safetensors.index.json"), index); err != nil {
			return err
		}
		_ = os.Remove(filepath.Join(dir, "model.safetensors"))
	}
	return atomicfile.WriteBytes(filepath.Join(dir, "config.json"), cfgJSON)
}
