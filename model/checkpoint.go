package model

import (
	"encoding/json"
	"fmt"
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
	files, err := weightFiles(dir)
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
			found[name], foundIn[name] = t, f
		}
	}
	lm := &LM{Config: cfg, Store: gm.NewStore(), Backend: backend, DType: dtype}
	expected := map[string]bool{}
	for _, spec := range cfg.ParamSpecs() {
		expected[spec.Name] = true
		t, ok := found[spec.Name]
		if !ok {
			return nil, errors.Errorf("model: checkpoint %s: tensor %s is missing (config.json implies shape %v)", dir, spec.Name, spec.Shape)
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

// weightFiles lists the safetensors files of a checkpoint: the shards named by the index, or model.safetensors.
func weightFiles(dir string) ([]string, error) {
	indexPath := filepath.Join(dir, "model.safetensors.index.json")
	if data, err := os.ReadFile(indexPath); err == nil {
		var index struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(data, &index); err != nil {
			return nil, errors.Wrapf(err, "model: parsing %s", indexPath)
		}
		var files []string
		for _, f := range index.WeightMap {
			if !slices.Contains(files, f) {
				files = append(files, f)
			}
		}
		slices.Sort(files)
		if len(files) == 0 {
			return nil, errors.Errorf("model: %s lists no weight files", indexPath)
		}
		return files, nil
	}
	single := filepath.Join(dir, "model.safetensors")
	if _, err := os.Stat(single); err != nil {
		return nil, errors.Errorf("model: checkpoint %s has neither model.safetensors nor model.safetensors.index.json", dir)
	}
	return []string{"model.safetensors"}, nil
}

// SaveOptions controls Save.
type SaveOptions struct {
	// MaxShardBytes > 0 splits the weights into model-0000i-of-0000n.safetensors shards of at most
	// this size (a single tensor larger than that gets a shard of its own) plus the index file.
	MaxShardBytes int64
}

// Save writes config.json and the weights (HF names, safetensors) to dir, in the storage dtype
// lm.DType (float32 under --dtype bfloat16 mixed precision; torch_dtype/dtype in config.json say
// which). Every file is written atomically; for a checkpoint that must appear all at once, save into a temporary directory and
// rename it (the trainer does).
func (lm *LM) Save(dir string, opts SaveOptions) error {
	cfg := *lm.Config
	cfg.DType = DTypeName(lm.DType)
	cfgJSON, err := cfg.MarshalHF()
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
