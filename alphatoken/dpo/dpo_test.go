package dpo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
)

var backendOnce compute.Backend

func testBackend(t testing.TB) compute.Backend {
	t.Helper()
	if backendOnce == nil {
		b, err := model.NewBackend("")
		if err != nil {
			t.Fatal(err)
		}
		backendOnce = b
	}
	return backendOnce
}

// fixture: a tiny float64 policy drifted from its reference, and n preference pairs.
type fixture struct {
	lm, ref  *model.LM
	examples []data.Example // flattened: chosen, rejected, …
	batch    data.Batch     // all pairs, chosen half then rejected half
	refNLL   [][]float64    // per example
}

func tinyConfig() *model.Config {
	return &model.Config{Arch: model.Llama, VocabSize: 37, Hidden: 16, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 4,
		Intermediate: 24, RMSNormEps: 1e-5, RoPETheta: 10000, MaxPositions: 64, BOSTokenID: -1, PadTokenID: 0,
		DType: "float64"}
}

func newFixture(t *testing.T, nPairs int) *fixture {
	t.Helper()
	cfg := tinyConfig()
	ref, err := model.New(testBackend(t), cfg, dtypes.Float64, 3)
	if err != nil {
		t.Fatal(err)
	}
	lm, err := ref.Clone()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for _, s := range cfg.ParamSpecs() {
		v := lm.Param(s.Name)
		vals, _ := model.TensorFloat64(v.MustValue())
		for i := range vals {
			vals[i] += 0.5 * model.InitStd * rng.NormFloat64()
		}
		tt, _ := model.TensorFromFloat64(vals, dtypes.Float64, s.Shape...)
		if err := v.SetValue(tt); err != nil {
			t.Fatal(err)
		}
	}
	var pairs []data.Pair
	for i := range nPairs {
		prompt := randIDs(rng, 2+rng.IntN(3), cfg.VocabSize)
		mk := func(n int) data.Example {
			ids := append(append([]int(nil), prompt...), randIDs(rng, n, cfg.VocabSize)...)
			return data.Example{IDs: ids, PromptLen: len(prompt), Source: fmt.Sprintf("pairs.jsonl:%d", i+1)}
		}
		pairs = append(pairs, data.Pair{Chosen: mk(2 + rng.IntN(5)), Rejected: mk(2 + rng.IntN(5))})
	}
	fx := &fixture{lm: lm, ref: ref, examples: Examples(pairs)}
	idx := make([]int, nPairs)
	for i := range idx {
		idx[i] = i
	}
	fx.batch = Batch(fx.examples, idx, nPairs, 12, 0)
	rows := hostNLL(t, ref, fx.batch)
	fx.refNLL = make([][]float64, len(fx.examples))
	for r, ei := range fx.batch.Index {
		fx.refNLL[ei] = rows[r]
	}
	return fx
}

func randIDs(rng *rand.Rand, n, vocab int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = 1 + rng.IntN(vocab-1)
	}
	return out
}

// run compiles fn over lm's store and returns its outputs as float64 slices.
func run(t testing.TB, lm *model.LM, fn func(g *Graph, in []*Node) []*Node, args ...any) [][]float64 {
	t.Helper()
	exec, err := model.NewStoreExec(lm.Backend, lm.Store, "test", func(_ *gm.Scope, g *Graph, in []*Node) []*Node { return fn(g, in) })
	if err != nil {
		t.Fatal(err)
	}
	res, err := exec.Call(args...)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]float64, len(res))
	for i, r := range res {
		if out[i], err = model.TensorFloat64(r); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// hostNLL is lm's per-position loss on b, [rows][t].
func hostNLL(t testing.TB, lm *model.LM, b data.Batch) [][]float64 {
	flat := run(t, lm, func(g *Graph, in []*Node) []*Node {
		return []*Node{model.TokenNLL(model.Forward(lm.Config, lm.Weights(g), in[0], model.ForwardOptions{}).Logits, in[1])}
	}, b.Tokens, b.Targets)[0]
	out := make([][]float64, len(b.Tokens))
	for r := range out {
		out[r] = flat[r*b.T() : (r+1)*b.T()]
	}
	return out
}

// lossAndGrads builds loss(nll) on the fixture's batch and returns its value and the gradient of
// every parameter, concatenated.
func (fx *fixture) lossAndGrads(t testing.TB, loss func(nll, ref, weights *Node, extra []*Node) *Node, extra ...any) (float64, []float64) {
	t.Helper()
	specs := fx.lm.Config.ParamSpecs()
	b := fx.batch
	args := append([]any{b.Tokens, b.Targets, b.Weights, Rows(fx.refNLL, &b)}, extra...)
	res := run(t, fx.lm, func(g *Graph, in []*Node) []*Node {
		nll := model.TokenNLL(model.Forward(fx.lm.Config, fx.lm.Weights(g), in[0], model.ForwardOptions{}).Logits, in[1])
		l := loss(nll, in[3], in[2], in[4:])
		var params []*Node
		for _, s := range specs {
			params = append(params, fx.lm.Param(s.Name).NodeValue(g))
		}
		return append([]*Node{l}, Gradient(l, params...)...)
	}, args...)
	var grads []float64
	for _, r := range res[1:] {
		grads = append(grads, r...)
	}
	return res[0][0], grads
}

func relErr(got, want []float64) float64 {
	var num, den float64
	for i := range got {
		num = math.Max(num, math.Abs(got[i]-want[i]))
		den = math.Max(den, math.Abs(want[i]))
	}
	return num / math.Max(den, 1e-300)
}

// host holds the fixture's DPO arithmetic done on the host: per-token log-ratios h, aggregation
// weights a, δ per pair.
type host struct {
	n     int
	h, a  [][]float64
	delta []float64
}

func (fx *fixture) host(t testing.TB, c Config) host {
	b := fx.batch
	nll := hostNLL(t, fx.lm, b)
	ref := Rows(fx.refNLL, &b)
	hs := host{n: len(b.Tokens) / 2}
	for r := range nll {
		var cnt float64
		for _, w := range b.Weights[r] {
			cnt += float64(w)
		}
		h, a := make([]float64, b.T()), make([]float64, b.T())
		for p := range h {
			h[p] = ref[r][p] - nll[r][p]
			a[p] = float64(b.Weights[r][p])
			if c.Loss == LossIPO {
				a[p] /= cnt
			}
		}
		hs.h, hs.a = append(hs.h, h), append(hs.a, a)
	}
	for i := range hs.n {
		var d float64
		for p := range hs.h[i] {
			d += hs.a[i][p]*hs.h[i][p] - hs.a[hs.n+i][p]*hs.h[hs.n+i][p]
		}
		hs.delta = append(hs.delta, d)
	}
	return hs
}

// hostLoss is ℓ(δ) and w = −ℓ'(δ)/β, from the formulas of TRL's dpo_trainer.py.
func hostLoss(c Config, d float64) (loss, w float64) {
	switch c.Loss {
	case LossSigmoid:
		return math.Log1p(math.Exp(-c.Beta * d)), 1 / (1 + math.Exp(c.Beta*d))
	case LossHinge:
		if c.Beta*d < 1 {
			return 1 - c.Beta*d, 1
		}
		return 0, 0
	case LossIPO:
		return (d - 1/(2*c.Beta)) * (d - 1/(2*c.Beta)), -2 * (d - 1/(2*c.Beta)) / c.Beta
	}
	panic(c.Loss)
}

func configs() []Config {
	var out []Config
	for _, l := range LossTypes {
		c := DefaultConfig()
		c.Loss = l
		out = append(out, c)
	}
	// hinge with a large β, so some pairs sit past the margin (w = 0).
	out = append(out, Config{Beta: 4, Loss: LossHinge, Threshold: Separate, Coefficient: Unmasked})
	return out
}

// randomKeep is a keep mask over the response positions of b, about half of them.
func randomKeep(b data.Batch, seed uint64) [][]float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([][]float64, len(b.Weights))
	for r, row := range b.Weights {
		out[r] = make([]float64, len(row))
		for p, w := range row {
			if w != 0 && rng.Float64() < 0.5 {
				out[r][p] = 1
			}
		}
	}
	return out
}

// TestPlainLossMatchesHost: the graph's DPO loss equals TRL's formulas on host log-ratios, for
// every loss type; the pair weight is −ℓ'(δ)/β.
func TestPlainLossMatchesHost(t *testing.T) {
	fx := newFixture(t, 3)
	for _, c := range configs() {
		hs := fx.host(t, c)
		var want float64
		var wantW []float64
		for _, d := range hs.delta {
			l, w := hostLoss(c, d)
			want += l / float64(hs.n)
			wantW = append(wantW, w)
		}
		got, _ := fx.lossAndGrads(t, func(nll, ref, weights *Node, _ []*Node) *Node { return c.Plain(nll, ref, weights) })
		if math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
			t.Errorf("%s β=%g: loss %.15g, host %.15g", c.Loss, c.Beta, got, want)
		}
		b := fx.batch
		res := run(t, fx.lm, func(g *Graph, in []*Node) []*Node {
			nll := model.TokenNLL(model.Forward(fx.lm.Config, fx.lm.Weights(g), in[0], model.ForwardOptions{}).Logits, in[1])
			omega, w := c.TokenWeights(nll, in[3], in[2])
			// −ℓ'(δ)/β by autodiff of the pair loss
			delta := Logit(LogRatios(nll, in[3]), c.Agg(in[2], nll.DType()))
			d := Gradient(ReduceAllSum(c.PairLoss(delta)), delta)[0]
			return []*Node{omega, w, DivScalar(Neg(d), c.Beta)}
		}, b.Tokens, b.Targets, b.Weights, Rows(fx.refNLL, &b))
		if e := relErr(res[1], wantW); e > 1e-12 {
			t.Errorf("%s β=%g: w %v, host %v", c.Loss, c.Beta, res[1], wantW)
		}
		if e := relErr(res[2], wantW); e > 1e-12 {
			t.Errorf("%s β=%g: w %v is not −ℓ'(δ)/β = %v", c.Loss, c.Beta, wantW, res[2])
		}
		// ω = +w·a on chosen rows, −w·a on rejected rows.
		for r := range b.Weights {
			sign, pair := 1.0, r
			if r >= hs.n {
				sign, pair = -1, r-hs.n
			}
			for p := range b.T() {
				want := sign * wantW[pair] * hs.a[r][p]
				if got := res[0][r*b.T()+p]; math.Abs(got-want) > 1e-12 {
					t.Fatalf("%s: ω[%d][%d] = %g, want %g", c.Loss, r, p, got, want)
				}
			}
		}
	}
}

// TestMaskedGradient: SPEC §6/§7.5 — for every loss type, the masked loss's gradient equals (1) the
// gradient of the explicitly masked loss β·(1/n)Σ w·(Σ m a l_w − Σ m a l_l) with the coefficient w
// computed on the host (detached), and (2) the gradient of ℓ(δ) restricted to the kept tokens (the
// unkept tokens' log-ratios held constant); its value is the unmasked DPO loss.
func TestMaskedGradient(t *testing.T) {
	fx := newFixture(t, 3)
	b := fx.batch
	for _, c := range configs() {
		hs := fx.host(t, c)
		keep := randomKeep(b, 5)
		ws := make([]float64, hs.n)
		for i, d := range hs.delta {
			_, ws[i] = hostLoss(c, d)
		}
		real := []bool{true, true, true}
		gotL, got := fx.lossAndGrads(t, func(nll, ref, weights *Node, ex []*Node) *Node {
			l, _ := c.MaskedLoss(nll, ref, weights, ex[0], ex[1])
			return l
		}, keep, real)
		plainL, _ := fx.lossAndGrads(t, func(nll, ref, weights *Node, _ []*Node) *Node { return c.Plain(nll, ref, weights) })
		if math.Abs(gotL-plainL) > 1e-12 {
			t.Errorf("%s: masked loss value %.15g, unmasked DPO loss %.15g", c.Loss, gotL, plainL)
		}
		// (1) explicit: coefficient and aggregation weights as host constants.
		coef := make([][]float64, len(b.Weights))
		for r := range coef {
			coef[r] = make([]float64, b.T())
			sign, pair := 1.0, r
			if r >= hs.n {
				sign, pair = -1, r-hs.n
			}
			for p := range coef[r] {
				coef[r][p] = sign * c.Beta * ws[pair] * hs.a[r][p] * keep[r][p] / float64(hs.n)
			}
		}
		_, explicit := fx.lossAndGrads(t, func(nll, _, _ *Node, ex []*Node) *Node {
			return ReduceAllSum(Mul(nll, ex[0]))
		}, coef)
		if e := relErr(got, explicit); e > 1e-10 {
			t.Errorf("%s β=%g: masked gradient vs explicit masked loss: relative error %.3g", c.Loss, c.Beta, e)
		}
		// (2) ℓ(δ) with the unkept tokens' h behind a stop-gradient.
		_, restricted := fx.lossAndGrads(t, func(nll, ref, weights *Node, ex []*Node) *Node {
			h := LogRatios(nll, ref)
			k := ex[0]
			h = Add(Mul(h, k), Mul(StopGradient(h), OneMinus(k)))
			return MeanOver(c.PairLoss(Logit(h, c.Agg(weights, h.DType()))), RealPairs(weights))
		}, keep)
		if e := relErr(got, restricted); e > 1e-10 {
			t.Errorf("%s β=%g: masked gradient vs DPO gradient restricted to kept tokens: relative error %.3g", c.Loss, c.Beta, e)
		}
		var norm float64
		for _, x := range got {
			norm += x * x
		}
		if norm == 0 && c.Beta < 1 {
			t.Errorf("%s: zero gradient, the test proves nothing", c.Loss)
		}
	}
}

// TestAllKeptIsPlainDPO: with every token kept, the masked loss and its gradient equal plain DPO.
func TestAllKeptIsPlainDPO(t *testing.T) {
	fx := newFixture(t, 3)
	b := fx.batch
	all := make([][]float64, len(b.Weights))
	for r, row := range b.Weights {
		all[r] = make([]float64, len(row))
		for p, w := range row {
			all[r][p] = float64(w)
		}
	}
	for _, c := range configs() {
		for _, coef := range []Coefficient{Unmasked, Masked} {
			c.Coefficient = coef
			gotL, got := fx.lossAndGrads(t, func(nll, ref, weights *Node, ex []*Node) *Node {
				l, _ := c.MaskedLoss(nll, ref, weights, ex[0], RealPairs(weights))
				return l
			}, all)
			wantL, want := fx.lossAndGrads(t, func(nll, ref, weights *Node, _ []*Node) *Node { return c.Plain(nll, ref, weights) })
			if math.Abs(gotL-wantL) > 1e-12 || relErr(got, want) > 1e-10 {
				t.Errorf("%s/%s: all kept: loss %.15g vs %.15g, gradient relative error %.3g", c.Loss, coef, gotL, wantL, relErr(got, want))
			}
		}
	}
}

// TestMaskedCoefficient: --dpo-coefficient masked is the DPO loss of the masked sequences: ℓ(δ_m)
// with δ_m summing only the kept tokens' log-ratios (host), and pairs with real false dropped.
func TestMaskedCoefficient(t *testing.T) {
	fx := newFixture(t, 3)
	b := fx.batch
	keep := randomKeep(b, 9)
	for _, c := range configs() {
		c.Coefficient = Masked
		hs := fx.host(t, c)
		real := []bool{true, false, true}
		var want float64
		for i := range hs.n {
			if !real[i] {
				continue
			}
			var d float64
			for p := range hs.h[i] {
				d += keep[i][p]*hs.a[i][p]*hs.h[i][p] - keep[hs.n+i][p]*hs.a[hs.n+i][p]*hs.h[hs.n+i][p]
			}
			l, _ := hostLoss(c, d)
			want += l / 2
		}
		got, _ := fx.lossAndGrads(t, func(nll, ref, weights *Node, ex []*Node) *Node {
			l, _ := c.MaskedLoss(nll, ref, weights, ex[0], ex[1])
			return l
		}, keep, real)
		if math.Abs(got-want) > 1e-12*math.Max(1, want) {
			t.Errorf("%s β=%g: masked-logit loss %.15g, host %.15g", c.Loss, c.Beta, got, want)
		}
	}
}

// TestSelectBranches: separate thresholds keep floor(ρN+0.5) of each branch's tokens (the top
// values within the branch), shared keeps floor(ρN+0.5) of all.
func TestSelectBranches(t *testing.T) {
	fx := newFixture(t, 4)
	b := fx.batch
	rng := rand.New(rand.NewPCG(3, 3))
	values := make([][]float64, len(b.Weights))
	for r := range values {
		values[r] = make([]float64, b.T())
		for p := range values[r] {
			values[r][p] = rng.NormFloat64()
			if r >= len(values)/2 {
				values[r][p] += 10 // rejected tokens all above chosen ones: shared keeps mostly rejected
			}
		}
	}
	noise := make([][]float32, len(b.Weights))
	for r := range noise {
		noise[r] = make([]float32, b.T())
	}
	for _, th := range []Threshold{Separate, Shared} {
		for _, rho := range []float64{0.3, 0.5} {
			kc, kr := KeepCounts(rho, b.Weights, th)
			res := run(t, fx.lm, func(g *Graph, in []*Node) []*Node {
				valid := NotEqual(in[1], ZerosLike(in[1]))
				return []*Node{ConvertDType(Select(in[0], valid, in[2], in[3], in[4], th, alphatoken.SelectTop), dtypes.Float64)}
			}, values, b.Weights, noise, kc, kr)[0]
			half := len(res) / 2
			var nc, kept [2]int
			for i, k := range res {
				br := 0
				if i >= half {
					br = 1
				}
				if b.Weights[i/b.T()][i%b.T()] != 0 {
					nc[br]++
				}
				if k != 0 {
					kept[br]++
				}
			}
			if th == Separate {
				if kept[0] != alphatoken.KeepCount(rho, nc[0]) || kept[1] != alphatoken.KeepCount(rho, nc[1]) {
					t.Errorf("separate ρ=%g: kept %v of %v", rho, kept, nc)
				}
				if kept[0] == 0 {
					t.Errorf("separate: no chosen token kept although rejected values are larger")
				}
			} else {
				if kept[0]+kept[1] != alphatoken.KeepCount(rho, nc[0]+nc[1]) || kept[0] != max(0, alphatoken.KeepCount(rho, nc[0]+nc[1])-nc[1]) {
					t.Errorf("shared ρ=%g: kept %v of %v", rho, kept, nc)
				}
			}
		}
	}
}

// TestTwinCounts: the shared prefix of each pair's responses and the fork after it, and how a
// mask treats them, on a hand-made batch of two pairs.
func TestTwinCounts(t *testing.T) {
	fx := newFixture(t, 2)
	targets := [][]int32{
		{1, 2, 3, 4, 5, 0}, {7, 7, 7, 0, 0, 0}, // chosen rows
		{1, 2, 3, 9, 5, 0}, {7, 7, 7, 7, 0, 0}, // rejected rows: pair 0 differs at 3, pair 1's chosen ends at 3
	}
	weights := [][]float32{
		{0, 1, 1, 1, 1, 0}, {0, 1, 1, 0, 0, 0},
		{0, 1, 1, 1, 1, 0}, {0, 1, 1, 1, 0, 0},
	}
	// Twins: positions 1 and 2 of both pairs (4). Pair 0 keeps 1 in both rows, 2 in the rejected row
	// only, and 3 (not a twin) in the chosen row; pair 1 keeps 1 and 2 in the chosen row only.
	keep := [][]float32{
		{0, 1, 0, 1, 0, 0}, {0, 1, 1, 0, 0, 0},
		{0, 1, 1, 0, 0, 0}, {0, 0, 0, 0, 0, 0},
	}
	res := run(t, fx.lm, func(g *Graph, in []*Node) []*Node {
		c := CountTwins(in[0], in[1], NotEqual(in[2], ZerosLike(in[2])), ConvertDType(in[1], dtypes.Float64))
		return []*Node{ConvertDType(Twins(in[0], in[1]), dtypes.Float64), c.Twins, c.TwinsKeptChosen, c.TwinsKeptRejected, c.OneSided,
			ConvertDType(Forks(in[0], in[1]), dtypes.Float64), c.Forks, c.ForksKeptChosen, c.ForksKeptRejected}
	}, targets, weights, keep)
	wantTwins := []float64{0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0}
	for i, w := range wantTwins {
		if res[0][i] != w {
			t.Fatalf("Twins = %v, want %v", res[0], wantTwins)
		}
	}
	if got := []float64{res[1][0], res[2][0], res[3][0], res[4][0]}; got[0] != 4 || got[1] != 3 || got[2] != 2 || got[3] != 3 {
		t.Fatalf("twins, kept chosen, kept rejected, one-sided = %v, want [4 3 2 3]", got)
	}
	// Forks: pair 0 at position 3 (kept in the chosen row only); pair 1's rows part at 3 where the
	// chosen response has ended, so it has no fork.
	wantForks := []float64{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}
	for i, w := range wantForks {
		if res[5][i] != w {
			t.Fatalf("Forks = %v, want %v", res[5], wantForks)
		}
	}
	if got := []float64{res[6][0], res[7][0], res[8][0]}; got[0] != 1 || got[1] != 1 || got[2] != 0 {
		t.Fatalf("forks, kept chosen, kept rejected = %v, want [1 1 0]", got)
	}
}
