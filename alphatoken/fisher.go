package alphatoken

import (
	"fmt"
	"slices"
	"strconv"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	gm "github.com/gomlx/gomlx/ml/model"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
)

// Fisher is the curvature of the stability proxy at θ_ref for the scored layers (SPEC §3), keyed by
// the HF name of each weight: Diag[name] [d_out, d_in] for the diagonal Fisher; A[name] [d_in, d_in]
// and S[name] [d_out, d_out] for K-FAC.
type Fisher struct {
	Kind    FisherKind
	Blocks  int // K: the last Blocks blocks are covered
	Diag    map[string]*tensors.Tensor
	A, S    map[string]*tensors.Tensor
	Samples int // number of sampled sequences it averages
}

// FisherOptions controls EstimateFisher.
type FisherOptions struct {
	Kind         FisherKind
	Blocks       int    // K
	MaxNewTokens int    // length of the sampled responses (temperature 1)
	Stop         []int  // ids that end a sampled response
	Seed         uint64 // sampling seed
	BatchSize    int    // sequences per backward pass (default 8)
	Progress     func(done, total int)
}

// EstimateFisher computes the Monte-Carlo Fisher of ref on prompts (SPEC §3): for each prompt x_n a
// response ŷ_n is sampled from ref at temperature 1 (opts.MaxNewTokens, opts.Stop), and
// FisherFromSequences averages over the sampled sequences.
func EstimateFisher(ref *model.LM, prompts [][]int, opts FisherOptions) (*Fisher, error) {
	if len(prompts) == 0 {
		return nil, errors.New("alphatoken: no Fisher prompts")
	}
	if opts.MaxNewTokens <= 0 {
		opts.MaxNewTokens = 64
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 8
	}
	gen, err := model.NewGenerator(ref)
	if err != nil {
		return nil, err
	}
	var seqs []data.Example
	for start := 0; start < len(prompts); start += opts.BatchSize {
		batch := prompts[start:min(start+opts.BatchSize, len(prompts))]
		responses, err := gen.Generate(batch, model.GenerateOptions{MaxNewTokens: opts.MaxNewTokens,
			Temperature: 1, Stop: opts.Stop, Seed: opts.Seed + uint64(start), BatchSize: opts.BatchSize})
		if err != nil {
			return nil, err
		}
		for i := range batch {
			if len(responses[i]) == 0 {
				continue
			}
			seqs = append(seqs, data.Example{IDs: append(slices.Clone(batch[i]), responses[i]...), PromptLen: len(batch[i])})
		}
		if opts.Progress != nil {
			opts.Progress(min(start+opts.BatchSize, len(prompts)), 2*len(prompts))
		}
	}
	progress := opts.Progress
	if progress != nil {
		opts.Progress = func(done, total int) { progress(len(prompts)+done*len(prompts)/max(total, 1), 2*len(prompts)) }
	}
	return FisherFromSequences(ref, seqs, opts)
}

// FisherFromSequences computes the Fisher from given sequences (prompt ++ sampled response):
//
//	diag: F = mean_n (∇_W log p_ref(ŷ_n | x_n))²            (per-sequence gradients, squared)
//	kfac: A = mean over real positions of a aᵀ,  S = mean_n Σ_t e_{n,t} e_{n,t}ᵀ,  e = ∂ log p_ref(ŷ_n|x_n)/∂z
//
// Per-sequence gradients of a linear layer are Σ_t e_{n,t} a_{n,t}ᵀ, formed for a batch at once from
// one backward pass (sequences of a batch do not interact), so the result does not depend on the
// batch size.
func FisherFromSequences(ref *model.LM, seqs []data.Example, opts FisherOptions) (*Fisher, error) {
	if opts.Kind != FisherDiag && opts.Kind != FisherKFAC {
		return nil, errors.Errorf("alphatoken: cannot estimate a Fisher of kind %q", opts.Kind)
	}
	if opts.Blocks < 1 || opts.Blocks > ref.Config.Layers {
		return nil, errors.Errorf("alphatoken: K = %d scored blocks, but the model has %d blocks", opts.Blocks, ref.Config.Layers)
	}
	if len(seqs) == 0 {
		return nil, errors.New("alphatoken: no sequences for the Fisher (every sampled response was empty?)")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 8
	}
	layers := ScoredLayers(ref.Config, opts.Blocks)
	f := &Fisher{Kind: opts.Kind, Blocks: opts.Blocks, Diag: map[string]*tensors.Tensor{},
		A: map[string]*tensors.Tensor{}, S: map[string]*tensors.Tensor{}}
	sums := make([][]float64, 2*len(layers))
	var positions float64
	exec, err := model.NewStoreExec(ref.Backend, ref.Store, "fisher", func(scope *gm.Scope, g *Graph, in []*Node) []*Node {
		return fisherGraph(ref, layers, opts, in[0], in[1], in[2], in[3])
	})
	if err != nil {
		return nil, err
	}
	for start := 0; start < len(seqs); start += opts.BatchSize {
		end := min(start+opts.BatchSize, len(seqs))
		idx := make([]int, end-start)
		longest := 0
		for i := range idx {
			idx[i] = start + i
			longest = max(longest, len(seqs[start+i].IDs))
		}
		if longest > ref.Config.MaxPositions {
			return nil, errors.Errorf("alphatoken: a Fisher sequence has %d tokens > max_position_embeddings", longest)
		}
		b := data.MakeBatch(seqs, idx, opts.BatchSize, data.BucketLen(longest, 32, ref.Config.MaxPositions), max(ref.Config.PadTokenID, 0))
		realPos := make([][]float32, len(b.Tokens))
		for r := range realPos {
			realPos[r] = make([]float32, b.T())
			if r < len(idx) {
				for p := range len(seqs[idx[r]].IDs) {
					realPos[r][p] = 1
				}
			}
		}
		outs, err := exec.Call(b.Tokens, b.Targets, b.Weights, realPos)
		if err != nil {
			return nil, model.ExplainOOM(errors.WithMessage(err, "alphatoken: Fisher"))
		}
		for i, o := range outs {
			vals, err := model.TensorFloat64(o)
			o.FinalizeAll()
			if err != nil {
				return nil, err
			}
			if i == len(outs)-1 {
				positions += vals[0]
				continue
			}
			if sums[i] == nil {
				sums[i] = vals
			} else {
				for j := range vals {
					sums[i][j] += vals[j]
				}
			}
		}
		f.Samples += len(idx)
		if opts.Progress != nil {
			opts.Progress(end, len(seqs))
		}
	}
	scale := func(v []float64, s float64) []float64 {
		out := make([]float64, len(v))
		for i := range v {
			out[i] = v[i] / s
		}
		return out
	}
	dt := model.AccumDType(ref.DType)
	for i, l := range layers {
		switch opts.Kind {
		case FisherDiag:
			t, err := model.TensorFromFloat64(scale(sums[i], float64(f.Samples)), dt, l.Out, l.In)
			if err != nil {
				return nil, err
			}
			f.Diag[l.Name] = t
		case FisherKFAC:
			a, err := model.TensorFromFloat64(scale(sums[2*i], positions), dt, l.In, l.In)
			if err != nil {
				return nil, err
			}
			s, err := model.TensorFromFloat64(scale(sums[2*i+1], float64(f.Samples)), dt, l.Out, l.Out)
			if err != nil {
				return nil, err
			}
			f.A[l.Name], f.S[l.Name] = a, s
		}
	}
	return f, nil
}

// fisherGraph returns per-layer sums over the batch (diag: Σ_n G_n², kfac: Σ a aᵀ and Σ e eᵀ) and
// the number of real positions. G_n = Σ_t e_{n,t} a_{n,t}ᵀ with e the gradient of the sampled
// responses' log-likelihood.
func fisherGraph(ref *model.LM, layers []Layer, opts FisherOptions, tokens, targets, weights, real *Node) []*Node {
	cfg := ref.Config
	out := model.Forward(cfg, ref.Weights(tokens.Graph()), tokens, model.ForwardOptions{TapBlocks: opts.Blocks})
	nll := model.TokenNLL(out.Logits, targets)
	logLik := Neg(ReduceAllSum(Mul(nll, ConvertDType(weights, nll.DType()))))
	first := cfg.Layers - opts.Blocks
	var zs []*Node
	for _, l := range layers {
		zs = append(zs, out.Taps[l.Block-first].Linear[l.Kind].Z)
	}
	es := Gradient(logLik, zs...)
	// Products in the compute dtype, sums in acc (float32 for a bfloat16 model).
	acc := model.AccumDType(ref.ComputeDType())
	var res []*Node
	for i, l := range layers {
		e := es[i] // [b, t, o]
		a := out.Taps[l.Block-first].Linear[l.Kind].A
		a = Mul(a, InsertAxes(ConvertDType(real, a.DType()), -1)) // [b, t, i], padding zeroed
		switch opts.Kind {
		case FisherDiag:
			gn := dotAcc(e, []int{1}, []int{0}, a, []int{1}, []int{0}, acc) // [b, o, i]
			res = append(res, ReduceSum(Square(gn), 0))
		case FisherKFAC:
			af, ef := flatten2(a), flatten2(e)
			res = append(res,
				dotAcc(af, []int{0}, nil, af, []int{0}, nil, acc), // Σ a aᵀ [i, i]
				dotAcc(ef, []int{0}, nil, ef, []int{0}, nil, acc)) // Σ e eᵀ [o, o]
		}
	}
	return append(res, ReduceAllSum(real))
}

// Check verifies that the Fisher covers the last k blocks of a model with config cfg, naming the
// first missing or mis-shaped tensor.
func (f *Fisher) Check(cfg *model.Config, k int) error {
	for _, l := range ScoredLayers(cfg, k) {
		switch f.Kind {
		case FisherDiag:
			if err := checkTensor(f.Diag, l.Name, l.Name, []int{l.Out, l.In}); err != nil {
				return err
			}
		case FisherKFAC:
			if err := checkTensor(f.A, l.Name, l.Name+".A", []int{l.In, l.In}); err != nil {
				return err
			}
			if err := checkTensor(f.S, l.Name, l.Name+".S", []int{l.Out, l.Out}); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkTensor(m map[string]*tensors.Tensor, key, shown string, want []int) error {
	t, ok := m[key]
	if !ok {
		return errors.Errorf("alphatoken: the Fisher has no tensor %s (needed for the scored layers)", shown)
	}
	if got := t.Shape().Dimensions; !slices.Equal(got, want) {
		return errors.Errorf("alphatoken: Fisher tensor %s has shape %v, the model needs %v", shown, got, want)
	}
	return nil
}

// Save writes the Fisher as safetensors with HF names: diag under the weight's name, K-FAC factors
// under name+".A" and name+".S". The metadata records the kind, K and the number of samples.
func (f *Fisher) Save(path string) error {
	var named []model.NamedTensor
	for _, m := range []struct {
		tensors map[string]*tensors.Tensor
		suffix  string
	}{{f.Diag, ""}, {f.A, ".A"}, {f.S, ".S"}} {
		for _, name := range model.SortedNames(m.tensors) {
			named = append(named, model.NamedTensor{Name: name + m.suffix, Tensor: m.tensors[name]})
		}
	}
	return model.WriteSafetensors(path, named, map[string]string{"alphatoken_fisher": string(f.Kind),
		"blocks": strconv.Itoa(f.Blocks), "samples": strconv.Itoa(f.Samples)})
}

// LoadFisher reads a Fisher file written by Save (or by any tool using the same names).
func LoadFisher(path string) (*Fisher, error) {
	ts, meta, err := model.ReadSafetensors(path)
	if err != nil {
		return nil, err
	}
	f := &Fisher{Diag: map[string]*tensors.Tensor{}, A: map[string]*tensors.Tensor{}, S: map[string]*tensors.Tensor{}}
	for name, t := range ts {
		switch {
		case len(name) > 2 && name[len(name)-2:] == ".A":
			f.A[name[:len(name)-2]] = t
		case len(name) > 2 && name[len(name)-2:] == ".S":
			f.S[name[:len(name)-2]] = t
		default:
			f.Diag[name] = t
		}
	}
	switch {
	case len(f.Diag) > 0 && len(f.A)+len(f.S) == 0:
		f.Kind = FisherDiag
	case len(f.Diag) == 0 && len(f.A) > 0 && len(f.S) > 0:
		f.Kind = FisherKFAC
	default:
		return nil, errors.Errorf("alphatoken: %s mixes diagonal and K-FAC tensors (or has none)", path)
	}
	if k, ok := meta["alphatoken_fisher"]; ok && FisherKind(k) != f.Kind {
		return nil, errors.Errorf("alphatoken: %s says kind %q but holds %q tensors", path, k, f.Kind)
	}
	f.Blocks, _ = strconv.Atoi(meta["blocks"])
	f.Samples, _ = strconv.Atoi(meta["samples"])
	return f, nil
}

func (f *Fisher) String() string {
	return fmt.Sprintf("Fisher(%s, last %d blocks, %d samples)", f.Kind, f.Blocks, f.Samples)
}
