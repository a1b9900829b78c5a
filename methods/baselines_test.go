package methods

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
)

// Hand-built cases: hand-made NLLs (and, through a model with a zero LM head and a zero query
// projection, known ℓ_θ = ln V and uniform attention A[r,c] = 1/(r+1)) give masks worked out by
// hand in the comments.

// two examples: prompt 3 + response 4 (label positions 2…5), prompt 2 + response 5 (1…5); N = 9.
func twoExamples() []data.Example { return handExamples([2]int{3, 4}, [2]int{2, 5}) }

func checkMask(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: kept %v, want %v", what, got, want)
	}
}

// TestLowPPLAndSTM: low-ppl keeps the ρ lowest NLLs of the batch; STM keeps PPL ≤ 2.5 (ℓ ≤ 0.916),
// a data-dependent share; budget-matched STM is low-ppl.
func TestLowPPLAndSTM(t *testing.T) {
	lm := tinyLM(t, 2)
	exs := twoExamples()
	nll := handTable(t, exs, []float32{0.1, 2.0, 0.5, 3.0}, []float32{1.0, 0.2, 4.0, 0.3, 2.5})
	// ρ = 0.5 of N = 9: k = 5, the NLLs 0.1, 0.2, 0.3, 0.5 and 1.0.
	m := build(t, "low-ppl", testEnv(t, lm, 10))
	if err := m.useTable(lowPPLScores(nll, exs), exs); err != nil {
		t.Fatal(err)
	}
	mask, _ := keptMask(t, m, lm, exs, nil, 0)
	checkMask(t, "low-ppl", labelMask(exs, nil, mask), []string{"1010", "11010"})
	// STM: 1.0 > ln 2.5 is dropped too: 4 of 9 kept.
	m = build(t, "stm", testEnv(t, lm, 10))
	if err := m.useTable(stmKeep(nll, exs, 2.5), exs); err != nil {
		t.Fatal(err)
	}
	mask, _ = keptMask(t, m, lm, exs, nil, 0)
	checkMask(t, "stm", labelMask(exs, nil, mask), []string{"1010", "01010"})
	env := testEnv(t, lm, 10)
	env.Options.BudgetMatched = true
	m = build(t, "stm", env)
	if err := m.useTable(lowPPLScores(nll, exs), exs); err != nil {
		t.Fatal(err)
	}
	mask, _ = keptMask(t, m, lm, exs, nil, 0)
	checkMask(t, "stm budget-matched", labelMask(exs, nil, mask), []string{"1010", "11010"})
}

// TestTokenCleaning: the global top 60% of the whole set by ℓ_π0 − ℓ_ref, so a batch keeps what
// the global threshold gives it; budget-matched takes the top ρ of the batch.
func TestTokenCleaning(t *testing.T) {
	lm := tinyLM(t, 3)
	exs := handExamples([2]int{3, 4}, [2]int{2, 5}, [2]int{2, 3})
	s := [][]float32{{3, -1, 2, 0}, {5, 1, -2, 4, 0.5}, {6, -3, 7}}
	lRef := handTable(t, exs, []float32{1, 1, 1, 1}, []float32{2, 2, 2, 2, 2}, []float32{0, 0, 0})
	l0 := newTable("ℓ_π0", exs)
	for i := range exs {
		for j, p := range exs[i].LabelPositions() {
			l0.Values[i][p] = s[i][j] + lRef.Values[i][p]
		}
	}
	// N = 12, k = floor(0.6·12 + 0.5) = 7: the scores 7, 6, 5, 4, 3, 2, 1 over the whole set.
	m := build(t, "token-cleaning", testEnv(t, lm, 10))
	if err := m.useTable(tokenCleaningScores(l0, lRef, exs), exs); err != nil {
		t.Fatal(err)
	}
	mask, _ := keptMask(t, m, lm, exs, []int{0, 1}, 0)
	checkMask(t, "token-cleaning (batch of examples 0, 1)", labelMask(exs, []int{0, 1}, mask), []string{"1010", "11010"})
	mask, _ = keptMask(t, m, lm, exs, []int{2}, 0)
	checkMask(t, "token-cleaning (batch of example 2)", labelMask(exs, []int{2}, mask), []string{"101"})
	// Budget-matched at ρ = 0.4 on the batch {0, 1}: k = floor(3.6 + 0.5) = 4, the scores 5, 4, 3, 2.
	env := testEnv(t, lm, 10)
	env.Options.Rho, env.Options.BudgetMatched = 0.4, true
	m = build(t, "token-cleaning", env)
	if err := m.useTable(tokenCleaningScores(l0, lRef, exs), exs); err != nil {
		t.Fatal(err)
	}
	mask, _ = keptMask(t, m, lm, exs, []int{0, 1}, 0)
	checkMask(t, "token-cleaning budget-matched", labelMask(exs, []int{0, 1}, mask), []string{"1010", "10010"})
}

// TestRho1: with ℓ_θ = ln V for every token the excess loss ranks by −ℓ_RM; the top 60% of the
// batch keep their loss.
func TestRho1(t *testing.T) {
	lm := uniformLM(t)
	exs := twoExamples()
	m := build(t, "rho1", testEnv(t, lm, 10))
	lRM := handTable(t, exs, []float32{1, 4, 2, 3}, []float32{0.5, 6, 5, 1.5, 2.5})
	m.inputs[0].(*lazyTable).tt = lRM
	// k = floor(0.6·9 + 0.5) = 5: ℓ_RM 0.5, 1, 1.5, 2, 2.5.
	mask, score := keptMask(t, m, lm, exs, nil, 0)
	checkMask(t, "rho1", labelMask(exs, nil, mask), []string{"1010", "10011"})
	lnV := math.Log(float64(lm.Config.VocabSize))
	for i, ex := range exs {
		for _, p := range ex.LabelPositions() {
			if want := lnV - float64(lRM.Values[i][p]); !near(score[i][p], want) {
				t.Fatalf("example %d position %d: excess loss %v, want ln V − ℓ_RM = %v", i, p, score[i][p], want)
			}
		}
	}
}

// TestSSToken: γ·minmax(ℓ_his − ℓ_θ) + (1−γ)·(prompt attention of row p+1), per sequence top ⌈0.6T⌉,
// attention only during the warm-up; budget-matched ranks the batch.
func TestSSToken(t *testing.T) {
	lm := uniformLM(t)
	exs := twoExamples()
	his := handTable(t, exs, []float32{0, 4, 2, 1}, []float32{3, 0, 5, 1, 4})
	// Uniform attention: row r puts PL/(r+1) on the prompt; the token at label p reads row p+1.
	// Example 0 (PL 3): attention 3/4, 3/5, 3/6, 3/7; minmax(ℓ_his) 0, 1, ½, ¼;
	//   score ½·mm + ½·attn = 0.375, 0.8, 0.5, 0.339 → top ⌈2.4⌉ = 3: positions 1, 2, 0.
	// Example 1 (PL 2): attention 2/3, 2/4, 2/5, 2/6, 2/7; minmax 0.6, 0, 1, 0.2, 0.8;
	//   score 0.633, 0.25, 0.7, 0.267, 0.543 → top 3: positions 2, 0, 4.
	want := [][]float64{{0.375, 0.8, 0.5, 0.125 + 1.5/7}, {0.3 + 1.0/3, 0.25, 0.7, 0.1 + 1.0/6, 0.4 + 1.0/7}}
	m := build(t, "sstoken", testEnv(t, lm, 10)) // warm-up: 0.2 × 10 = 2 steps with γ = 0
	m.inputs[0].(*lazyTable).tt = his
	mask, score := keptMask(t, m, lm, exs, nil, 5)
	checkMask(t, "sstoken", labelMask(exs, nil, mask), []string{"1110", "10101"})
	for i, ex := range exs {
		for j, p := range ex.LabelPositions() {
			if !near(score[i][p], want[i][j]) {
				t.Fatalf("example %d label %d: score %v, want %v", i, j, score[i][p], want[i][j])
			}
		}
	}
	mask, score = keptMask(t, m, lm, exs, nil, 1) // warm-up: attention only, the earliest rows win
	checkMask(t, "sstoken warm-up", labelMask(exs, nil, mask), []string{"1110", "11100"})
	if !near(score[0][2], 0.75) || !near(score[1][5], 2.0/7) {
		t.Fatalf("warm-up scores %v %v", score[0][2], score[1][5])
	}
	env := testEnv(t, lm, 10)
	env.Options.BudgetMatched = true
	m = build(t, "sstoken", env)
	m.inputs[0].(*lazyTable).tt = his
	mask, _ = keptMask(t, m, lm, exs, nil, 5) // k = 5 of 9: 0.8, 0.7, 0.633, 0.543, 0.5
	checkMask(t, "sstoken budget-matched", labelMask(exs, nil, mask), []string{"0110", "10101"})
}

// TestXTF: the three tests on hand-made attributes; Multi-Otsu finds three clusters; the
// attention-received attribute of a uniform-attention model is the mean of 1/(r+1) over r ≥ c.
func TestXTF(t *testing.T) {
	var tr []float64
	for i := range 10 {
		tr = append(tr, 0.01*float64(i)/9, 0.5+0.02*float64(i)/9, 0.95+0.05*float64(i)/9)
	}
	t1, t2 := MultiOtsu3(tr)
	if !(t1 > 0.01 && t1 < 0.5 && t2 > 0.52 && t2 < 0.95) {
		t.Fatalf("Multi-Otsu thresholds %v, %v", t1, t2)
	}
	// 8 tokens: RI ~1 except token 2 (an outlier below Q1 − IQR), KN high except token 4 (p > 0.95),
	// TR in the low (tokens 0, 1), middle (5, 6) or high (the rest) cluster: the middle is noise.
	ri := []float64{1.0, 1.1, 0.1, 0.9, 1.05, 1.0, 0.95, 1.2}
	kn := []float64{0.5, 0.7, 0.6, 0.3, 0.01, 0.8, 0.4, 0.9}
	trv := []float64{0.0, 0.02, 0.97, 0.99, 0.98, 0.5, 0.51, 1.0}
	keep, score := XTFFilter(ri, kn, trv)
	if want := []bool{true, true, false, true, false, false, false, true}; !slices.Equal(keep, want) {
		t.Fatalf("kept %v, want %v", keep, want)
	}
	if !(score[0] >= 3 && score[2] < 3 && score[2] >= 2 && score[5] < 3) {
		t.Fatalf("budget scores %v", score)
	}
	if q := quantile([]float64{4, 1, 3, 2}, 0.25); q != 1.75 {
		t.Fatalf("quantile %v", q)
	}
	lm := uniformLM(t)
	exs := twoExamples()
	env := testEnv(t, lm, 10)
	env.info, _ = Lookup("xtf")
	a, err := xtfAttributes(env, lm, exs)
	if err != nil {
		t.Fatal(err)
	}
	j := 0
	for i, ex := range exs {
		n := len(ex.IDs)
		for _, p := range ex.LabelPositions() {
			c, want := p+1, 0.0
			for r := c; r < n; r++ {
				want += 1 / float64(r+1) / float64(n-c)
			}
			if a.at[j] != [2]int{i, p} || !near(a.ri[j], want) || !near(a.kn[j], 1-1/float64(lm.Config.VocabSize)) {
				t.Fatalf("token %d (%v): RI %v want %v, KN %v", j, a.at[j], a.ri[j], want, a.kn[j])
			}
			j++
		}
	}
}

// TestSoftWeights: w = N·softmax(z/τ) averages 1 over the valid tokens, grows with the value, is
// 0 elsewhere, and tends to 1 everywhere as τ grows.
func TestSoftWeights(t *testing.T) {
	backend := testBackend(t)
	vals := [][]float64{{1, 2, 3, 100}, {-1, 0.5, 2, 2}}
	valid := [][]bool{{true, true, true, false}, {true, true, true, true}}
	for _, tau := range []float64{0.5, 1, 1e6} {
		w := MustExecOnce(backend, func(v, ok *Node) *Node { return SoftWeights(v, ok, tau) }, vals, valid).Value().([][]float64)
		flat := []float64{w[0][0], w[0][1], w[0][2], w[1][0], w[1][1], w[1][2], w[1][3]}
		var sum float64
		for _, x := range flat {
			sum += x
		}
		if !near(sum, 7) || w[0][3] != 0 {
			t.Fatalf("τ=%g: Σw = %v over 7 tokens, padding %v", tau, sum, w[0][3])
		}
		// Values −1 < 0.5 < 1 < 2 = 2 = 2 < 3.
		if !(w[1][0] < w[1][1] && w[1][1] < w[0][0] && w[0][0] < w[0][1] && near(w[0][1], w[1][2]) && near(w[1][2], w[1][3]) && w[1][3] < w[0][2]) && tau < 1e6 {
			t.Fatalf("τ=%g: weights not monotone in the value: %v", tau, w)
		}
		if tau == 1e6 && math.Abs(w[0][0]-1) > 1e-4 {
			t.Fatalf("large τ: weights %v, want ≈1", w)
		}
	}
	// Hand value at τ = 1: z-scores of (1, 2, 3, −1, 0.5, 2, 2), mean 9.5/7.
	z := alphatoken.NormalizeHost([]float64{1, 2, 3, -1, 0.5, 2, 2}, []bool{true, true, true, true, true, true, true})
	var den float64
	for _, x := range z {
		den += math.Exp(x)
	}
	w := MustExecOnce(backend, func(v, ok *Node) *Node { return SoftWeights(v, ok, 1) }, vals, valid).Value().([][]float64)
	if want := 7 * math.Exp(z[2]) / den; !near(w[0][2], want) {
		t.Fatalf("w = %v, want %v", w[0][2], want)
	}
}

// TestFrozenNLL: the offline pass equals the model's scorer (an independent code path), and the
// cache returns the same table.
func TestFrozenNLL(t *testing.T) {
	lm := tinyLM(t, 5)
	exs := copyTask(11)
	env := testEnv(t, lm, 10)
	env.info, _ = Lookup("low-ppl")
	env.Cache = filepath.Join(t.TempDir(), "offline")
	tt, err := frozenNLL(env, "test", lm, exs)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := model.NewScorer(lm)
	if err != nil {
		t.Fatal(err)
	}
	seqs, starts := make([][]int, len(exs)), make([]int, len(exs))
	for i, ex := range exs {
		seqs[i], starts[i] = ex.IDs, ex.PromptLen
	}
	ll, _, err := sc.LogLikelihoods(seqs, starts, 4)
	if err != nil {
		t.Fatal(err)
	}
	for i, ex := range exs {
		var sum float64
		for _, p := range ex.LabelPositions() {
			sum += float64(tt.Values[i][p])
		}
		if math.Abs(sum+ll[i]) > 1e-4*math.Abs(ll[i]) {
			t.Fatalf("example %d: Σℓ %v, scorer %v", i, sum, -ll[i])
		}
	}
	again, err := frozenNLL(env, "test", lm, exs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range exs {
		if !slices.Equal(again.Values[i], tt.Values[i]) {
			t.Fatalf("cached table differs at example %d", i)
		}
	}
}
