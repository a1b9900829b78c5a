package alphatoken

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	gm "github.com/gomlx/gomlx/ml/model"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/internal/progress"
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
	Samples int    // number of sampled sequences it averages
	Path    string // the file it was loaded from ("" when estimated)
}

// FisherOptions controls EstimateFisher.
type FisherOptions struct {
	Kind         FisherKind
	Blocks       int    // K
	MaxNewTokens int    // length of the sampled responses (temperature 1; 0: SPEC §3's 64)
	Stop         []int  // ids that end a sampled response
	Seed         uint64 // sampling seed: prompt n's response is a pure function of (Seed, n)
	BatchSize    int    // sequences per backward pass (0: 8)
	// SampleBatch is the number of prompts decoded together when sampling the responses (0: 64;
	// it changes the speed, not the samples).
	SampleBatch int
	Progress    func(done, total int)
}

// EstimateFisher computes the Monte-Carlo Fisher of ref on prompts (SPEC §3): for each prompt x_n a
// response ŷ_n is sampled from ref at temperature 1 (opts.MaxNewTokens, opts.Stop), and
// FisherFromSequences averages over the sampled sequences.
func EstimateFisher(ref *model.LM, prompts [][]int, opts FisherOptions) (*Fisher, error) {
	if len(prompts) == 0 {
		return nil, errors.New("alphatoken: no Fisher prompts")
	}
	if opts.MaxNewTokens < 0 || opts.BatchSize < 0 || opts.SampleBatch < 0 {
		return nil, errors.Errorf("alphatoken: Fisher MaxNewTokens (%d), BatchSize (%d) and SampleBatch (%d) must be ≥ 0 (0: the default)",
			opts.MaxNewTokens, opts.BatchSize, opts.SampleBatch)
	}
	if opts.MaxNewTokens == 0 {
		opts.MaxNewTokens = 64
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = 8
	}
	if opts.SampleBatch == 0 {
		opts.SampleBatch = 64
	}
	gen, err := model.NewGenerator(ref)
	if err != nil {
		return nil, err
	}
	var sampled func(done, total int)
	if opts.Progress != nil {
		sampled = func(done, total int) { opts.Progress(done, 2*total) }
	}
	responses, err := gen.Generate(prompts, model.GenerateOptions{MaxNewTokens: opts.MaxNewTokens, Temperature: 1,
		Stop: opts.Stop, Seed: opts.Seed, BatchSize: opts.SampleBatch, Progress: sampled})
	if err != nil {
		return nil, err
	}
	var seqs []data.Example
	for i, p := range prompts {
		if len(responses[i]) > 0 {
			seqs = append(seqs, data.Example{IDs: append(slices.Clone(p), responses[i]...), PromptLen: len(p)})
		}
	}
	progress := opts.Progress
	if progress != nil {
		opts.Progress = func(done, total int) { progress(len(prompts)+done*len(prompts)/max(total, 1), 2*len(prompts)) }
	}
	return FisherFromSequences(ref, seqs, opts)
}

// FisherProgress reports EstimateFisher's progress on w (stderr) in its two phases: sampling the
// responses, then the gradient passes over the sampled sequences.
func FisherProgress(w io.Writer) func(done, total int) {
	sample, grad := progress.New(w, "fisher: sampling", "prompts"), progress.New(w, "fisher: gradients", "prompts")
	return func(done, total int) {
		// EstimateFisher counts prompts sampled in [0, n] and gradient passes in (n, 2n].
		if n := total / 2; done <= n {
			sample.Update(done, n)
		} else {
			grad.Update(done-n, n)
		}
	}
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
		return nil, BlocksError(opts.Blocks, ref.Config.Layers)
	}
	if len(seqs) == 0 {
		return nil, errors.New("alphatoken: no sequences for the Fisher (every sampled response was empty?)")
	}
	if opts.BatchSize < 0 {
		return nil, errors.Errorf("alphatoken: Fisher BatchSize must be ≥ 0 (0: 8), got %d", opts.BatchSize)
	}
	if opts.BatchSize == 0 {
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
// first missing or mis-shaped tensor; when it covers other blocks, the error says which it covers.
func (f *Fisher) Check(cfg *model.Config, k int) error {
	if k < 1 || k > cfg.Layers {
		return BlocksError(k, cfg.Layers)
	}
	covered := f.CoveredBlocks()
	for b := cfg.Layers - k; b < cfg.Layers; b++ {
		if !slices.Contains(covered, b) {
			return errors.Errorf("alphatoken: %s covers blocks %s (made with K = %d), but K = %d (--k) scores blocks %d..%d of this %d-block model: "+
				"use --k %s, or estimate a Fisher with alphatoken fisher --k %d", f.source(), blockRanges(covered), f.Blocks, k,
				cfg.Layers-k, cfg.Layers-1, cfg.Layers, kRange(covered, cfg.Layers), k)
		}
	}
	for _, l := range ScoredLayers(cfg, k) {
		switch f.Kind {
		case FisherDiag:
			if err := f.checkTensor(f.Diag, l.Name, l.Name, []int{l.Out, l.In}); err != nil {
				return err
			}
		case FisherKFAC:
			if err := f.checkTensor(f.A, l.Name, l.Name+".A", []int{l.In, l.In}); err != nil {
				return err
			}
			if err := f.checkTensor(f.S, l.Name, l.Name+".S", []int{l.Out, l.Out}); err != nil {
				return err
			}
		}
	}
	return nil
}

// CoveredBlocks lists, sorted, the decoder blocks the Fisher has tensors for.
func (f *Fisher) CoveredBlocks() []int {
	var out []int
	for _, m := range []map[string]*tensors.Tensor{f.Diag, f.A, f.S} {
		for name := range m {
			if b, ok := blockOf(name); ok && !slices.Contains(out, b) {
				out = append(out, b)
			}
		}
	}
	slices.Sort(out)
	return out
}

// blockOf parses the block index of an HF tensor name "model.layers.N.…".
func blockOf(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "model.layers.")
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, ".")
	b, err := strconv.Atoi(num)
	return b, ok && err == nil && b >= 0
}

// blockRanges renders sorted block indices as ranges: "0..1", "3", "0..1, 4".
func blockRanges(blocks []int) string {
	if len(blocks) == 0 {
		return "none"
	}
	var parts []string
	for i := 0; i < len(blocks); {
		j := i
		for j+1 < len(blocks) && blocks[j+1] == blocks[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, strconv.Itoa(blocks[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d..%d", blocks[i], blocks[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// kRange is the range of K a Fisher covering blocks can serve on a model of n blocks: K such that
// the last K blocks are all covered.
func kRange(covered []int, n int) string {
	k := 0
	for k < n && slices.Contains(covered, n-1-k) {
		k++
	}
	if k == 0 {
		return "(none: the file is for another model)"
	}
	if k == 1 {
		return "1"
	}
	return fmt.Sprintf("1..%d", k)
}

func (f *Fisher) source() string {
	if f.Path != "" {
		return "the Fisher file " + f.Path
	}
	return "the Fisher"
}

func (f *Fisher) checkTensor(m map[string]*tensors.Tensor, key, shown string, want []int) error {
	t, ok := m[key]
	if !ok {
		return errors.Errorf("alphatoken: %s has no tensor %s (needed for the scored layers)", f.source(), shown)
	}
	if got := t.Shape().Dimensions; !slices.Equal(got, want) {
		return errors.Errorf("alphatoken: %s: tensor %s has shape %v, the model needs %v (a Fisher of another model?)", f.source(), shown, got, want)
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

// LoadFisher reads a Fisher file written by Save and validates it: the metadata names a Fisher
// (alphatoken_fisher: diag or kfac, blocks ≥ 1, samples ≥ 1), the tensor names match the kind
// (K-FAC: an .A and an .S factor per weight), every value is finite, a diagonal Fisher is ≥ 0, and
// K-FAC factors are square and symmetric with a non-negative diagonal (necessary for positive
// semi-definiteness, and cheap). A model's weights given as a Fisher are refused by the metadata
// check. Errors name the file and the tensor.
func LoadFisher(path string) (*Fisher, error) {
	ts, meta, err := model.ReadSafetensors(path)
	if err != nil {
		return nil, err
	}
	return fisherFromTensors(path, ts, meta)
}

// fisherFromTensors validates the tensors and metadata of a Fisher file (LoadFisher).
func fisherFromTensors(path string, ts map[string]*tensors.Tensor, meta map[string]string) (*Fisher, error) {
	kind, ok := meta["alphatoken_fisher"]
	if !ok {
		return nil, errors.Errorf("alphatoken: %s is not a Fisher file: its metadata has no alphatoken_fisher entry "+
			"(model weights? estimate a Fisher with alphatoken fisher)", path)
	}
	f := &Fisher{Kind: FisherKind(kind), Path: path, Diag: map[string]*tensors.Tensor{}, A: map[string]*tensors.Tensor{}, S: map[string]*tensors.Tensor{}}
	if f.Kind != FisherDiag && f.Kind != FisherKFAC {
		return nil, errors.Errorf("alphatoken: %s: metadata alphatoken_fisher is %q, not diag or kfac", path, kind)
	}
	for _, key := range []string{"blocks", "samples"} {
		v, err := strconv.Atoi(meta[key])
		if err != nil || v < 1 {
			return nil, errors.Errorf("alphatoken: %s: metadata %s is %q, not an integer ≥ 1", path, key, meta[key])
		}
		if key == "blocks" {
			f.Blocks = v
		} else {
			f.Samples = v
		}
	}
	if len(ts) == 0 {
		return nil, errors.Errorf("alphatoken: %s holds no tensors", path)
	}
	for _, name := range model.SortedNames(ts) {
		t := ts[name]
		base, factor := name, ""
		if f.Kind == FisherKFAC {
			if b, ok := strings.CutSuffix(name, ".A"); ok {
				base, factor = b, "A"
			} else if b, ok := strings.CutSuffix(name, ".S"); ok {
				base, factor = b, "S"
			} else {
				return nil, errors.Errorf("alphatoken: %s: tensor %s of a K-FAC Fisher must be a factor, NAME.A or NAME.S", path, name)
			}
		}
		if _, ok := blockOf(base); !ok || !strings.HasSuffix(base, ".weight") {
			return nil, errors.Errorf("alphatoken: %s: tensor %s is not named after a decoder block's weight (model.layers.N.….weight%s)",
				path, name, map[bool]string{true: " + .A or .S", false: ""}[f.Kind == FisherKFAC])
		}
		if !t.Shape().DType.IsFloat() {
			return nil, errors.Errorf("alphatoken: %s: tensor %s has dtype %s, not a float", path, name, t.Shape().DType)
		}
		dims := t.Shape().Dimensions
		if len(dims) != 2 || (factor != "" && dims[0] != dims[1]) {
			return nil, errors.Errorf("alphatoken: %s: tensor %s has shape %v; a Fisher needs %s", path, name, dims,
				map[bool]string{true: "a square matrix (a K-FAC factor)", false: "a matrix [d_out, d_in]"}[factor != ""])
		}
		vals, err := model.TensorFloat64(t)
		if err != nil {
			return nil, errors.WithMessagef(err, "alphatoken: %s: tensor %s", path, name)
		}
		if err := checkFisherValues(vals, dims, factor != ""); err != nil {
			return nil, errors.Errorf("alphatoken: %s: tensor %s %v: not a Fisher", path, name, err)
		}
		switch factor {
		case "":
			f.Diag[name] = t
		case "A":
			f.A[base] = t
		case "S":
			f.S[base] = t
		}
	}
	for _, name := range model.SortedNames(f.A) {
		if _, ok := f.S[name]; !ok {
			return nil, errors.Errorf("alphatoken: %s: K-FAC factor %s.A has no %s.S", path, name, name)
		}
	}
	for _, name := range model.SortedNames(f.S) {
		if _, ok := f.A[name]; !ok {
			return nil, errors.Errorf("alphatoken: %s: K-FAC factor %s.S has no %s.A", path, name, name)
		}
	}
	return f, nil
}

// checkFisherValues checks a diagonal Fisher's entries (finite, ≥ 0) or a K-FAC factor's (finite,
// symmetric up to float rounding, diagonal ≥ 0).
func checkFisherValues(vals []float64, dims []int, factor bool) error {
	for i, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return errors.Errorf("has a non-finite value %v at %v", v, unflatten(i, dims))
		}
		if !factor && v < 0 {
			return errors.Errorf("has a negative entry %g at %v (a diagonal Fisher is a mean of squares)", v, unflatten(i, dims))
		}
	}
	if !factor {
		return nil
	}
	n := dims[0]
	for i := range n {
		if d := vals[i*n+i]; d < 0 {
			return errors.Errorf("has a negative diagonal entry %g at [%d %d] (a K-FAC factor is positive semi-definite)", d, i, i)
		}
	}
	for i := range n {
		for j := i + 1; j < n; j++ {
			a, b := vals[i*n+j], vals[j*n+i]
			scale := math.Sqrt(vals[i*n+i] * vals[j*n+j])
			if math.Abs(a-b) > 1e-3*(math.Abs(a)+math.Abs(b))+1e-6*scale {
				return errors.Errorf("is not symmetric: [%d %d] = %g but [%d %d] = %g (a K-FAC factor is symmetric)", i, j, a, j, i, b)
			}
		}
	}
	return nil
}

func unflatten(i int, dims []int) []int {
	out := make([]int, len(dims))
	for d := len(dims) - 1; d >= 0; d-- {
		if dims[d] > 0 {
			out[d] = i % dims[d]
			i /= dims[d]
		}
	}
	return out
}

func (f *Fisher) String() string {
	return fmt.Sprintf("Fisher(%s, last %d blocks, %d samples)", f.Kind, f.Blocks, f.Samples)
}
