package ablations

import (
	"encoding/json"
	"math"
	"math/rand/v2"

	"github.com/gomlx/compute/dtypes"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/diag"
	"github.com/alphatoken/alphatoken/model"
)

// SPEC §8 diagnostics on MiniBench: each returns the numbers a figure and a table need.

// RunModel loads the final model of a row's run at a seed (training it first if it is not cached).
func (r *Runner) RunModel(row Row, seed int) (*model.LM, *RunResult, error) {
	res, err := r.RunRow(row, seed)
	if err != nil {
		return nil, nil, err
	}
	if row.Method == "reference" {
		return r.Ref, res, nil
	}
	lm, err := model.Load(r.Backend, res.Dir, dtypes.Float32)
	return lm, res, err
}

// sample returns n target training examples chosen by seed.
func (r *Runner) sample(n int, seed uint64) []data.Example {
	rng := rand.New(rand.NewPCG(seed, 3))
	idx := rng.Perm(len(r.train))[:min(n, len(r.train))]
	out := make([]data.Example, len(idx))
	for i, j := range idx {
		out[i] = r.train[j]
	}
	return out
}

// ValuePropagationResult is the value-propagation diagnostic (SPEC §8).
type ValuePropagationResult struct {
	Pairs         []diag.PairStat `json:"pairs"`
	AThreshold    float64         `json:"a_threshold"`
	DevThreshold  float64         `json:"dev_threshold"`
	LowRiskShare  float64         `json:"low_risk_share"`
	OmittedShare  float64         `json:"omitted_share_in_low_risk"`
	MeanOmitted   float64         `json:"mean_omitted"`
	Blocks        int             `json:"blocks"`
	ModelDir      string          `json:"model"`
	TokensSampled int             `json:"examples"`
}

// ValuePropagation samples attention pairs of the scored blocks of lm on target examples.
func (r *Runner) ValuePropagation(lm *model.LM, dir string, nPairs int, seed uint64) (*ValuePropagationResult, error) {
	exs := r.sample(16, seed)
	k := r.Preset.Valuation.Blocks
	pairs, err := alphatoken.ValuePropagationPairs(lm, exs, k, nPairs, seed)
	if err != nil {
		return nil, err
	}
	a, dev := diag.DefaultRiskThresholds(pairs)
	res := &ValuePropagationResult{Pairs: pairs, AThreshold: a, DevThreshold: dev, LowRiskShare: diag.RiskShare(pairs, a, dev),
		OmittedShare: diag.OmittedShare(pairs, a, dev), Blocks: k, ModelDir: dir, TokensSampled: len(exs)}
	for _, p := range pairs {
		res.MeanOmitted += p.Omitted / float64(len(pairs))
	}
	return res, nil
}

// FidelityResult compares Φ_prx with oracle retention values <g_token, ∇J_ret> (SPEC §8).
type FidelityResult struct {
	Kind     alphatoken.FisherKind `json:"kind"`
	Proxy    []float64             `json:"proxy"`  // Φ_prx^dir + Φ_prx^cau per token
	Oracle   []float64             `json:"oracle"` // Φ_ret^dir + Φ_ret^cau per token (G from the retention oracle set)
	Spearman float64               `json:"spearman"`
	Pearson  float64               `json:"pearson"`
	KFracs   []float64             `json:"k_fractions"` // k/n
	Overlap  []float64             `json:"overlap"`     // top-k overlap at each k
	AtRho    float64               `json:"overlap_at_rho"`
	Rho      float64               `json:"rho"`
}

// FisherFidelity scores target training tokens at lm (a model drifted from the reference) twice:
// the stability terms with the preset's Fisher of the given kind, and the oracle retention values
// computed by the same machinery with the retention oracle set (32 examples spread over the
// probes) in place of the target validation set.
func (r *Runner) FisherFidelity(lm *model.LM, kind alphatoken.FisherKind, nExamples int, seed uint64) (*FidelityResult, error) {
	exs := r.sample(nExamples, seed)
	tmpl := data.PlainTemplate{}
	var oracle []data.Example
	for _, e := range r.Bench.RetentionOracle {
		p := tmpl.Prompt(r.Tok, []data.Message{{Role: "user", Content: e.Prompt}})
		// The oracle's "response" is the correct continuation; it is not an SFT reply, so no <eos>.
		oracle = append(oracle, data.Example{IDs: append(p, r.Tok.Encode(e.Response)...), PromptLen: len(p)})
	}
	if len(oracle) == 0 {
		return nil, errors.New("ablations: the benchmark has no retention oracle set")
	}
	base := r.Preset.Valuation
	oc := base
	oc.Adaptation, oc.Stability, oc.ValExamples, oc.Fisher = true, false, len(oracle), alphatoken.FisherNone
	ov, err := alphatoken.NewValuer(lm, nil, nil, oracle, oc, 0)
	if err != nil {
		return nil, err
	}
	os, err := alphatoken.Score(ov, exs, alphatoken.ScoreOptions{})
	if err != nil {
		return nil, err
	}
	res := &FidelityResult{Kind: kind, Rho: r.Preset.Rho}
	for _, s := range os {
		res.Oracle = append(res.Oracle, s.DirTgt+s.CauTgt)
	}
	if kind == alphatoken.FisherNone {
		res.Proxy = make([]float64, len(res.Oracle))
	} else {
		pc := base
		pc.Adaptation, pc.Stability, pc.Fisher = false, true, kind
		f, _, err := r.Fisher(pc, 1)
		if err != nil {
			return nil, err
		}
		pv, err := alphatoken.NewValuer(lm, r.Ref, f, r.val, pc, 0)
		if err != nil {
			return nil, err
		}
		ps, err := alphatoken.Score(pv, exs, alphatoken.ScoreOptions{})
		if err != nil {
			return nil, err
		}
		for _, s := range ps {
			res.Proxy = append(res.Proxy, s.DirPrx+s.CauPrx)
		}
	}
	if res.Spearman, err = diag.Spearman(res.Proxy, res.Oracle); err != nil {
		res.Spearman = math.NaN() // a constant proxy (no Fisher) has no rank correlation
	}
	if res.Pearson, err = diag.Pearson(res.Proxy, res.Oracle); err != nil {
		res.Pearson = math.NaN()
	}
	n := len(res.Oracle)
	var ks []int
	for i := 1; i <= 20; i++ {
		ks = append(ks, max(1, n*i/20))
	}
	if res.Overlap, err = diag.TopKOverlapCurve(res.Proxy, res.Oracle, ks); err != nil {
		return nil, err
	}
	for _, k := range ks {
		res.KFracs = append(res.KFracs, float64(k)/float64(n))
	}
	res.AtRho, _ = diag.TopKOverlap(res.Proxy, res.Oracle, alphatoken.KeepCount(r.Preset.Rho, n))
	return res, nil
}

// CoverageResult is the token-coverage diagnostic (SPEC §8): a 2-D t-SNE of response-token hidden
// states, which tokens each method keeps, and the share of k-means clusters its kept tokens reach.
type CoverageResult struct {
	Points   [][2]float64       `json:"points"`
	Kept     map[string][]bool  `json:"kept"`
	Coverage map[string]float64 `json:"coverage"`
	Clusters int                `json:"clusters"`
	Methods  []string           `json:"methods"`
}

// Coverage values nExamples target training examples at lm with AlphaToken (top), bottom-ρ and
// random-ρ, embeds the final hidden state of every response token (at its label position) with
// t-SNE, and counts the k-means clusters (of all tokens) that each method's kept tokens reach.
func (r *Runner) Coverage(lm *model.LM, nExamples, clusters int, seed uint64) (*CoverageResult, error) {
	exs := r.sample(nExamples, seed)
	v := r.Preset.Valuation
	var fisher *alphatoken.Fisher
	if v.Fisher != alphatoken.FisherNone {
		f, _, err := r.Fisher(v, 1)
		if err != nil {
			return nil, err
		}
		fisher = f
	}
	val, err := alphatoken.NewValuer(lm, r.Ref, fisher, r.val, v, 0)
	if err != nil {
		return nil, err
	}
	res := &CoverageResult{Kept: map[string][]bool{}, Coverage: map[string]float64{}, Clusters: clusters,
		Methods: []string{"AlphaToken (top-ρ)", "Random-ρ", "Bottom-ρ"}}
	sels := []alphatoken.Selection{alphatoken.SelectTop, alphatoken.SelectRandom, alphatoken.SelectBottom}
	var scores []alphatoken.TokenScore
	for i, sel := range sels {
		s, err := alphatoken.Score(val, exs, alphatoken.ScoreOptions{Rho: r.Preset.Rho, Selection: sel, Seed: seed})
		if err != nil {
			return nil, err
		}
		scores = s
		for _, t := range s {
			res.Kept[res.Methods[i]] = append(res.Kept[res.Methods[i]], t.Kept)
		}
	}
	seqs := make([][]int, len(exs))
	positions := make([][]int, len(exs))
	for _, t := range scores {
		seqs[t.Example] = exs[t.Example].IDs
		positions[t.Example] = append(positions[t.Example], t.Pos)
	}
	hidden, err := alphatoken.HiddenStates(lm, seqs, positions, 16)
	if err != nil {
		return nil, err
	}
	last := hidden[len(hidden)-1]
	labels, _, err := diag.KMeans(last, clusters, int64(seed), 0)
	if err != nil {
		return nil, err
	}
	for _, m := range res.Methods {
		res.Coverage[m] = diag.Coverage(labels, res.Kept[m], clusters)
	}
	opts := diag.DefaultTSNEOptions()
	opts.Seed = int64(seed)
	opts.Perplexity = math.Min(30, float64(len(last)-1)/3)
	if res.Points, err = diag.TSNE(last, opts); err != nil {
		return nil, err
	}
	return res, nil
}

// StabilityResult holds linear CKA per layer boundary between the reference and fine-tuned models
// on HellaSwag probe contexts (SPEC §8).
type StabilityResult struct {
	Layers  int                  `json:"layers"`
	CKA     map[string][]float64 `json:"cka"`
	Methods []string             `json:"methods"`
}

// Stability compares each fine-tuned model with the reference.
func (r *Runner) Stability(models map[string]*model.LM, order []string, nProbe int) (*StabilityResult, error) {
	var seqs [][]int
	for _, it := range limit(r.Bench.HellaSwag, nProbe) {
		seqs = append(seqs, data.PlainTemplate{}.Prompt(r.Tok, []data.Message{{Role: "user", Content: it.Context + it.Choices[it.Answer]}}))
	}
	res := &StabilityResult{Layers: r.Ref.Config.Layers + 1, CKA: map[string][]float64{}, Methods: order}
	for _, name := range order {
		c, err := alphatoken.LayerCKA(r.Ref, models[name], seqs)
		if err != nil {
			return nil, err
		}
		res.CKA[name] = c
	}
	return res, nil
}

// MarshalJSON writes undefined correlations (a constant proxy) as null.
func (f *FidelityResult) MarshalJSON() ([]byte, error) {
	type alias FidelityResult
	nullable := func(x float64) *float64 {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return &x
	}
	return json.Marshal(struct {
		*alias
		Spearman *float64 `json:"spearman"`
		Pearson  *float64 `json:"pearson"`
	}{(*alias)(f), nullable(f.Spearman), nullable(f.Pearson)})
}

// UnmarshalJSON reads undefined correlations (null) back as NaN.
func (f *FidelityResult) UnmarshalJSON(b []byte) error {
	type alias FidelityResult
	aux := struct {
		*alias
		Spearman *float64 `json:"spearman"`
		Pearson  *float64 `json:"pearson"`
	}{alias: (*alias)(f)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	f.Spearman, f.Pearson = math.NaN(), math.NaN()
	if aux.Spearman != nil {
		f.Spearman = *aux.Spearman
	}
	if aux.Pearson != nil {
		f.Pearson = *aux.Pearson
	}
	return nil
}
