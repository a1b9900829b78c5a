package methods

import (
	"math"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
)

// graphRun compiles fn (no model variables needed, but on lm's store) and returns its outputs.
func graphRun(t testing.TB, lm *model.LM, fn func(in []*Node) []*Node, args ...any) []any {
	t.Helper()
	exec, err := model.NewStoreExec(lm.Backend, lm.Store, "hand", func(_ *gm.Scope, _ *Graph, in []*Node) []*Node { return fn(in) })
	if err != nil {
		t.Fatal(err)
	}
	res, err := exec.Call(args...)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]any, len(res))
	for i, r := range res {
		out[i] = r.Value()
	}
	return out
}

func maskString(row []bool, valid []float32) string {
	s := ""
	for p, k := range row {
		if valid[p] == 0 {
			continue
		}
		if k {
			s += "1"
		} else {
			s += "0"
		}
	}
	return s
}

// TestConfPOHand: confidences exp(−l): the kept tokens are those below the response's mean
// confidence; a response whose tokens are all equally confident keeps none, and its pair is
// dropped.
func TestConfPOHand(t *testing.T) {
	lm := tinyLM(t, 1)
	// Two pairs: rows 0, 1 chosen; rows 2, 3 rejected. Response positions 1–4.
	nll := [][]float64{
		{0, 0.1, 2.0, 0.5, 3.0, 0}, // c = .905 .135 .607 .050, mean .424: keep l > 0.858 → 0101
		{0, 1, 1, 1, 1, 0},         // all equal: none (pair 1 dropped)
		{0, 0.2, 0.3, 4.0, 0, 0},   // c = .819 .741 .018, mean .526: keep l > 0.642 → 001
		{0, 0.5, 0.1, 0.1, 0.7, 0}, // c = .607 .905 .905 .497, mean .728: keep l > 0.317 → 1001
	}
	w := [][]float32{{0, 1, 1, 1, 1, 0}, {0, 1, 1, 1, 1, 0}, {0, 1, 1, 1, 0, 0}, {0, 1, 1, 1, 1, 0}}
	res := graphRun(t, lm, func(in []*Node) []*Node {
		valid := NotEqual(in[1], ZerosLike(in[1]))
		keep := ConfPOMask(in[0], valid)
		return []*Node{keep, nonEmptyPairs(keep, in[1])}
	}, nll, w)
	keep := res[0].([][]bool)
	want := []string{"0101", "0000", "001", "1001"}
	for r := range keep {
		if got := maskString(keep[r], w[r]); got != want[r] {
			t.Errorf("row %d: kept %s, want %s", r, got, want[r])
		}
	}
	if pairs := res[1].([]bool); !pairs[0] || pairs[1] {
		t.Errorf("pairs kept %v, want [true false] (pair 1's chosen branch is empty)", pairs)
	}
}

// TestSePOHand: oracle rewards r; chosen rows keep their top ⌊0.3·T⌋ (at least 1) by r, rejected
// rows their bottom ⌊0.3·T⌋ by r.
func TestSePOHand(t *testing.T) {
	lm := tinyLM(t, 1)
	r := [][]float64{
		{0, 0.5, -1, 2, 0.1, 3, -2, 1, 0}, // chosen, T=7: k=2 → top 3, 2 → positions of 3 and 2
		{0, -1, 2, -3, 0.5, 4, 0, 0, 0},   // rejected, T=5: k=1 → bottom −3
	}
	w := [][]float32{{0, 1, 1, 1, 1, 1, 1, 1, 0}, {0, 1, 1, 1, 1, 1, 0, 0, 0}}
	k := sepoRowCounts(0.3, w)
	if k[0] != 2 || k[1] != 1 {
		t.Fatalf("counts %v, want [2 1]", k)
	}
	res := graphRun(t, lm, func(in []*Node) []*Node {
		valid := NotEqual(in[1], ZerosLike(in[1]))
		return []*Node{SelectPerRow(SePOScore(in[0]), valid, in[2])}
	}, r, w, k)
	keep := res[0].([][]bool)
	if got := maskString(keep[0], w[0]); got != "0010100" {
		t.Errorf("chosen kept %s, want 0010100 (r = 2 and 3)", got)
	}
	if got := maskString(keep[1], w[1]); got != "00100" {
		t.Errorf("rejected kept %s, want 00100 (r = −3)", got)
	}
}

// TestTIDPOWeightsHand: w = λ·I/ΣI + (1−λ)·exp(−½((t−μ)/σ)²), μ = (T−1)/2, σ = T/4.
func TestTIDPOWeightsHand(t *testing.T) {
	lm := tinyLM(t, 1)
	imp := [][]float64{{0, 1, 3, 0, 0, 0}}
	w := [][]float32{{0, 1, 1, 1, 1, 0}}
	res := graphRun(t, lm, func(in []*Node) []*Node {
		return []*Node{TIDPOWeights(in[0], NotEqual(in[1], ZerosLike(in[1])), 0.7)}
	}, imp, w)
	got := res[0].([][]float64)[0]
	// T = 4: μ = 1.5, σ = 1.
	want := []float64{0, 0.7*0.25 + 0.3*math.Exp(-1.125), 0.7*0.75 + 0.3*math.Exp(-0.125), 0.3 * math.Exp(-0.125), 0.3 * math.Exp(-1.125), 0}
	for p := range want {
		if math.Abs(got[p]-want[p]) > 1e-12 {
			t.Errorf("w = %v, want %v", got, want)
			break
		}
	}
}

// TestTIDPOImportance: the importance of a response token is ‖∂L_target/∂e‖₁ of its input
// embedding; with every token distinct in a single row it equals the L1 norm of the gradient of
// L_target with respect to that token's row of the embedding table (an independent route).
func TestTIDPOImportance(t *testing.T) {
	lm := tinyLM(t, 9)
	ex := []data.Example{{IDs: []int{1, 'a', 'b', 'c', 'd', 'e', 'f'}, PromptLen: 3}}
	b := data.MakeBatch(ex, []int{0}, 1, 8, 0)
	exec, err := model.NewStoreExec(lm.Backend, lm.Store, "imp", func(_ *gm.Scope, g *Graph, in []*Node) []*Node {
		w := lm.Weights(g)
		valid := NotEqual(in[2], ZerosLike(in[2]))
		imp := TIDPOImportance(lm.Config, w, in[0], valid)
		out := model.Forward(lm.Config, w, in[0], model.ForwardOptions{})
		last := Slice(out.Logits, AxisElem(0), AxisElem(6)) // final position: the last token
		return []*Node{ConvertDType(imp, dtypes.Float64), ConvertDType(Gradient(ReduceAllMax(last), w.Embed)[0], dtypes.Float64)}
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := exec.Call(b.Tokens, b.Targets, b.Weights)
	if err != nil {
		t.Fatal(err)
	}
	imp, _ := model.TensorFloat64(res[0])
	gEmb, _ := model.TensorFloat64(res[1])
	d := lm.Config.Hidden
	for _, p := range ex[0].LabelPositions() {
		tok := ex[0].IDs[p+1]
		var want float64
		for j := range d {
			want += math.Abs(gEmb[tok*d+j])
		}
		if math.Abs(imp[p]-want) > 1e-5*want || want == 0 {
			t.Errorf("position %d (token %q): importance %g, ‖∂L/∂E[token]‖₁ %g", p, rune(tok), imp[p], want)
		}
	}
	if imp[0] != 0 || imp[1] != 0 {
		t.Errorf("prompt positions have importance %v", imp[:2])
	}
}

// TestTIDPOTripletAtStart: at the first step the policy is the reference, so every log-ratio is
// 0: the triplet term is its margin α and the loss is log 2 + γ·α.
func TestTIDPOTripletAtStart(t *testing.T) {
	lm := tinyLM(t, 4)
	env := testDPOEnv(t, lm, 1)
	m, err := BuildDPO("ti-dpo", env)
	if err != nil {
		t.Fatal(err)
	}
	tr := runDPO(t, lm, m, reversalPairs(8), 1, 1, "", "")
	r := tr.History[0]
	if math.Abs(r.Metrics["triplet"]-0.5) > 1e-6 || math.Abs(r.Loss-(math.Ln2+0.1*0.5)) > 1e-5 {
		t.Errorf("triplet %v, loss %v; want 0.5 and log 2 + 0.05", r.Metrics["triplet"], r.Loss)
	}
}
