package model

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/pkg/errors"
)

// Precision pairs the dtype the weights are stored in (the store's variables: what the optimizer
// updates and Save writes) with the dtype the forward and backward passes compute in. LM.Weights
// converts each stored weight to the compute dtype inside the graph; ConvertDType is differentiable,
// so gradients, gradient clipping and the AdamW moments stay in the storage dtype. Softmax, the
// norms and the loss upcast half precision to float32 whatever the compute dtype (see rmsNorm,
// causalSoftmax, TokenNLL), and the AlphaToken contractions accumulate in AccumDType.
type Precision struct {
	Name             string // as --dtype spells it
	Storage, Compute dtypes.DType
	Help             string
}

// Precisions are the values of --dtype.
var Precisions = []Precision{
	{Name: "float32", Storage: dtypes.Float32, Compute: dtypes.Float32,
		Help: "float32 weights and compute (the default)"},
	{Name: "bfloat16", Storage: dtypes.Float32, Compute: dtypes.BFloat16,
		Help: "mixed precision, as PyTorch AMP: float32 master weights and AdamW state, bfloat16 matmuls (softmax, norms, loss and valuation sums in float32); checkpoints are written in float32"},
	{Name: "bfloat16-pure", Storage: dtypes.BFloat16, Compute: dtypes.BFloat16,
		Help: "bfloat16 weights and compute (half the weight memory; updates smaller than bfloat16's resolution are lost); checkpoints are written in bfloat16"},
	{Name: "float64", Storage: dtypes.Float64, Compute: dtypes.Float64,
		Help: "float64 throughout (exact comparisons; CPU)"},
}

// ParsePrecision looks a --dtype value up in Precisions.
func ParsePrecision(name string) (Precision, error) {
	if name == "" {
		name = "float32"
	}
	for _, p := range Precisions {
		if p.Name == name {
			return p, nil
		}
	}
	return Precision{}, errors.Errorf("model: unknown --dtype %q (%s)", name, strings.Join(PrecisionNames(), ", "))
}

// PrecisionNames lists the --dtype values.
func PrecisionNames() []string {
	var out []string
	for _, p := range Precisions {
		out = append(out, p.Name)
	}
	return out
}

// PrecisionHelp is the --dtype flag's usage text: one line per value.
func PrecisionHelp() string {
	var b strings.Builder
	b.WriteString("precision:")
	for _, p := range Precisions {
		fmt.Fprintf(&b, "\n  %s: %s", p.Name, p.Help)
	}
	return b.String()
}

// Check returns an error naming --dtype when backend cannot hold or compute in the precision's dtypes.
func (p Precision) Check(backend compute.Backend) error {
	return p.checkCapabilities(backend.String(), backend.Capabilities())
}

func (p Precision) checkCapabilities(backendName string, caps compute.Capabilities) error {
	for _, dt := range []dtypes.DType{p.Storage, p.Compute} {
		if !caps.DTypes[dt] {
			var have []string
			for d, ok := range caps.DTypes {
				if ok && d.IsFloat() {
					have = append(have, d.String())
				}
			}
			slices.Sort(have)
			return errors.Errorf("model: --dtype %s needs %s, which backend %q does not support (its float dtypes: %s): use --dtype float32 or another --backend",
				p.Name, DTypeName(dt), backendName, strings.Join(have, ", "))
		}
	}
	return nil
}

// SetPrecision converts lm's stored weights to p.Storage (on the host, if they differ) and makes it
// compute in p.Compute.
func (lm *LM) SetPrecision(p Precision) error {
	if lm.DType != p.Storage {
		for _, spec := range lm.Config.ParamSpecs() {
			v := lm.Param(spec.Name)
			if v == nil {
				return errors.Errorf("model: parameter %s missing", spec.Name)
			}
			t, err := v.Value()
			if err != nil {
				return err
			}
			if t, err = ConvertTensor(t, p.Storage); err != nil {
				return errors.WithMessagef(err, "model: converting %s", spec.Name)
			}
			if err := v.SetValue(t); err != nil {
				return errors.WithMessagef(err, "model: converting %s", spec.Name)
			}
		}
		lm.DType = p.Storage
	}
	lm.Compute = p.Compute
	return nil
}

// ComputeDType is the dtype the model's graphs compute in (Compute, or DType when unset).
func (lm *LM) ComputeDType() dtypes.DType {
	if lm.Compute == dtypes.InvalidDType {
		return lm.DType
	}
	return lm.Compute
}

// AccumDType is the dtype sums over tokens and features accumulate in, and that statistics derived
// from a model of dtype dt are kept in (the AlphaToken validation gradient, θ_ref and the Fisher):
// float64 for float64, float32 for everything else.
func AccumDType(dt dtypes.DType) dtypes.DType {
	if dt == dtypes.Float64 {
		return dtypes.Float64
	}
	return dtypes.Float32
}

// oomMarkers are substrings by which XLA/PJRT (and CUDA) report a failed device allocation.
var oomMarkers = []string{"RESOURCE_EXHAUSTED", "Out of memory", "out of memory", "OutOfMemory", "CUDA_ERROR_OUT_OF_MEMORY"}

// OOMError is a device out-of-memory error, with what to change.
type OOMError struct{ Err error }

func (e *OOMError) Error() string {
	return "model: the device ran out of memory: lower --batch or --max-len, or use --dtype bfloat16 " +
		"(bfloat16 activations) or bfloat16-pure (also bfloat16 weights): " + e.Err.Error()
}

func (e *OOMError) Unwrap() error { return e.Err }

// ExplainOOM wraps err in an OOMError when it reports a device out-of-memory condition; any other
// error (and nil) is returned unchanged.
func ExplainOOM(err error) error {
	if err == nil {
		return nil
	}
	var oom *OOMError
	if errors.As(err, &oom) {
		return err
	}
	msg := err.Error()
	for _, m := range oomMarkers {
		if strings.Contains(msg, m) {
			return &OOMError{Err: err}
		}
	}
	return err
}
