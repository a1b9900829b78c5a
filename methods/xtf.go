package methods

import (
	"math"
	"sort"

	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
)

// xtf, explainable token-level noise filtering (Yang et al., ICLR 2026, arXiv 2602.14536; no code
// was published; described from two secondary notes). Three attributes of every response
// token O_k, all from the base model π_0 by teacher forcing on prompt + response, offline:
//
//	reasoning importance  S_RI = attention the token's position receives
//	knowledge novelty     S_KN = 1 − p_π0(O_k | I, O_<k)
//	task relevance        S_TR = 1 − minmax(D(E(O_k), V_dom))
//
// with E the context-free embedding row of the token id and V_dom the mean embedding of the
// dataset. A token that misses ANY attribute is noise and loses its loss:
//
//	RI: S_RI < Q1 − (Q3 − Q1)          (an IQR outlier test)
//	KN: S_KN < 0.05                     (π_0 already assigns p > 0.95)
//	TR: S_TR in the class with the second-lowest mean of a Multi-Otsu split
//	    (the lowest class — spaces, placeholders — is skipped, as the paper says)
//
// The rest keep their loss: a data-dependent keep ratio (logged every step as kept/tokens).
//
// Unknown from those notes, and the best guesses implemented here:
//   - how A is aggregated: the LAST block's attention, averaged over heads, received by the
//     token's position c = p+1 from every real query row r ≥ c (itself included, so the last
//     token is defined), averaged over those rows;
//   - D and Normalize: cosine distance to V_dom, min-max over the dataset's response tokens;
//     V_dom is the mean embedding of the response tokens (counted with multiplicity);
//   - the number of Otsu classes: 3 (on a 256-bin histogram of S_TR);
//   - where quantiles and Otsu run: over the whole training set's response tokens.
//
// Budget-matched (no ranking exists in the paper; also a guess): the ρ share of each batch with
// the fewest failed tests, and within a count the higher mean percentile of S_RI and S_KN:
// score = (#tests passed) + 0.99 · (pct_RI + pct_KN)/2.

func init() {
	Register(Info{Name: "xtf", Selects: true, Threshold: true,
		Summary: "XTF: drop tokens missing any attribute under π_0 (attention IQR outlier, p > 0.95, Multi-Otsu embedding class) (offline)",
		Build:   newXTF})
}

func newXTF(env *Env) (train.Method, error) {
	base, err := frozenCopy(env)
	if err != nil {
		return nil, err
	}
	sc := fixedMask
	if env.Options.BudgetMatched {
		sc = perBatch
	}
	return offlineSelective(env, "xtf", sc, func(examples []data.Example) (*TokenTable, error) {
		attrs, err := xtfAttributes(env, base, examples)
		if err != nil {
			return nil, err
		}
		keep, score := XTFFilter(attrs.ri, attrs.kn, attrs.tr)
		tt := newTable("xtf", examples)
		for j, at := range attrs.at {
			v := score[j]
			if sc == fixedMask {
				v = 0
				if keep[j] {
					v = 1
				}
			}
			tt.Values[at[0]][at[1]] = float32(v)
		}
		return tt, nil
	}), nil
}

// xtfAttrs are the three attributes of every response token, in the order of at (example, label
// position).
type xtfAttrs struct {
	at         [][2]int
	ri, kn, tr []float64
}

// xtfAttributes runs π_0 over the examples once (with the last block's attention) and computes the
// three attributes.
func xtfAttributes(env *Env, base *model.LM, examples []data.Example) (*xtfAttrs, error) {
	a := &xtfAttrs{}
	lens := make([]int, len(examples))
	for i := range examples {
		lens[i] = len(examples[i].IDs)
	}
	err := passOutputs(env, "xtf: attributes under π_0", base, examples, func(_ *gm.Scope, g *Graph, in []*Node) []*Node {
		out := model.Forward(base.Config, base.Weights(g), in[0], model.ForwardOptions{TapBlocks: 1})
		return []*Node{model.TokenNLL(out.Logits, in[1]), AttentionReceived(out.Taps[0].Probs, in[3])}
	}, func(b *data.Batch) []any {
		real := make([][]float32, len(b.Tokens))
		for r := range real {
			real[r] = make([]float32, b.T())
			if i := b.Index[r]; i >= 0 {
				for p := range min(lens[i], b.T()) {
					real[r][p] = 1
				}
			}
		}
		return []any{real}
	}, func(b *data.Batch, outs [][]float64) {
		t := b.T()
		for r, i := range b.Index {
			if i < 0 {
				continue
			}
			for _, p := range examples[i].LabelPositions() {
				c := p + 1 // the token's own position
				a.at = append(a.at, [2]int{i, p})
				a.kn = append(a.kn, 1-math.Exp(-outs[0][r*t+p]))
				a.ri = append(a.ri, outs[1][r*t+c]/float64(lens[i]-c)) // mean over the query rows r ≥ c
			}
		}
	})
	if err != nil {
		return nil, err
	}
	// Task relevance from the embedding table: cosine distance of each token's row to V_dom.
	emb, err := base.Param("model.embed_tokens.weight").Value()
	if err != nil {
		return nil, err
	}
	table, err := model.TensorFloat64(emb)
	if err != nil {
		return nil, err
	}
	d := base.Config.Hidden
	row := func(id int) []float64 { return table[id*d : (id+1)*d] }
	mean := make([]float64, d)
	for _, at := range a.at {
		for j, v := range row(examples[at[0]].IDs[at[1]+1]) {
			mean[j] += v / float64(len(a.at))
		}
	}
	dist := make([]float64, len(a.at))
	for j, at := range a.at {
		dist[j] = 1 - cosine(row(examples[at[0]].IDs[at[1]+1]), mean)
	}
	lo, hi := minMax(dist)
	a.tr = make([]float64, len(dist))
	for j, v := range dist {
		if hi > lo {
			a.tr[j] = 1 - (v-lo)/(hi-lo)
		} else {
			a.tr[j] = 1
		}
	}
	return a, nil
}

// AttentionReceived is, for every key column c of each row, Σ_r Ā_{r,c} over the real query rows
// (real [b, t]: 1 at real positions), Ā the head-averaged attention probs [b, h, t, s]. Causal
// attention makes the rows r < c contribute 0, so dividing by the number of real rows r ≥ c gives
// the mean attention the position receives.
func AttentionReceived(probs, real *Node) *Node {
	mean := ReduceMean(probs, 1) // [b, t(query r), s(key c)]
	return ReduceSum(Mul(mean, InsertAxes(ConvertDType(real, mean.DType()), -1)), 1)
}

// XTFFilter applies XTF's three tests to the attributes of a set of tokens and returns the keep
// flags (no test failed) and the budget-matched score (#passed + 0.99·mean percentile of RI, KN).
func XTFFilter(ri, kn, tr []float64) (keep []bool, score []float64) {
	n := len(ri)
	q1, q3 := quantile(ri, 0.25), quantile(ri, 0.75)
	riLimit := q1 - (q3 - q1)
	t1, t2 := MultiOtsu3(tr)
	pctRI, pctKN := percentiles(ri), percentiles(kn)
	keep, score = make([]bool, n), make([]float64, n)
	for j := range n {
		passed := 0
		if !(ri[j] < riLimit) {
			passed++
		}
		if !(kn[j] < 0.05) {
			passed++
		}
		if tr[j] < t1 || tr[j] >= t2 { // not the class with the second-lowest mean
			passed++
		}
		keep[j] = passed == 3
		score[j] = float64(passed) + 0.99*(pctRI[j]+pctKN[j])/2
	}
	return keep, score
}

// MultiOtsu3 splits values into three classes by the two thresholds that maximise the
// between-class variance of a 256-bin histogram (Multi-Otsu, as scikit-image's
// threshold_multiotsu with classes=3): class 0 is v < t1, class 1 is t1 ≤ v < t2, class 2 v ≥ t2.
// The thresholds are bin edges (the upper edge of each lower class's last bin, where scikit-image
// reports that bin's centre), so every value falls in the class of its bin. Constant values put
// everything in class 2 (t1 = t2 = the value).
func MultiOtsu3(values []float64) (t1, t2 float64) {
	lo, hi := minMax(values)
	if !(hi > lo) {
		return lo, lo
	}
	const bins = 256
	width := (hi - lo) / bins
	var hist [bins]float64
	for _, v := range values {
		hist[min(int((v-lo)/width), bins-1)]++
	}
	centre := func(i int) float64 { return lo + (float64(i)+0.5)*width }
	// Prefix sums of counts and of count·centre.
	var w, m [bins + 1]float64
	for i := range bins {
		w[i+1] = w[i] + hist[i]
		m[i+1] = m[i] + hist[i]*centre(i)
	}
	class := func(a, b int) float64 { // Σ n·μ² contribution of bins [a, b)
		if n := w[b] - w[a]; n > 0 {
			mu := (m[b] - m[a]) / n
			return n * mu * mu
		}
		return 0
	}
	best := -1.0
	for i := 1; i < bins-1; i++ { // class 0 = bins [0, i), class 1 = [i, j), class 2 = [j, bins)
		for j := i + 1; j < bins; j++ {
			if v := class(0, i) + class(i, j) + class(j, bins); v > best {
				best, t1, t2 = v, centre(i-1), centre(j-1)
			}
		}
	}
	return t1 + width/2, t2 + width/2
}

// quantile is the linear-interpolation quantile (NumPy's default) of values.
func quantile(values []float64, q float64) float64 {
	s := append([]float64(nil), values...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (pos-float64(i))*(s[i+1]-s[i])
}

// percentiles maps each value to its rank share in [0, 1] (ties share the average rank).
func percentiles(values []float64) []float64 {
	n := len(values)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return values[idx[a]] < values[idx[b]] })
	out := make([]float64, n)
	for lo := 0; lo < n; {
		hi := lo
		for hi+1 < n && values[idx[hi+1]] == values[idx[lo]] {
			hi++
		}
		for _, i := range idx[lo : hi+1] {
			if n > 1 {
				out[i] = float64(lo+hi) / 2 / float64(n-1)
			}
		}
		lo = hi + 1
	}
	return out
}

func minMax(values []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range values {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	return lo, hi
}

func cosine(a, b []float64) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * b[i]
		aa += a[i] * a[i]
		bb += b[i] * b[i]
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}
