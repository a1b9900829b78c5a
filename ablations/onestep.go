package ablations

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train/optimizer"
	"github.com/pkg/errors"
	"gonum.org/v1/plot"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/diag"
	"github.com/alphatoken/alphatoken/methods"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/plots"
)

// The one-step test (issue 12, item 4): does a token's value predict what one step on it does?
// From a model θ, one training batch B and the validation set B_val, take ONE step on the top-ρ,
// bottom-ρ and a random ρ share of B's response tokens (the same k = floor(ρN+0.5) tokens, the same
// learning rate), with plain SGD and with the trainer's AdamW, and compare the actual change of
//
//	J_tgt = mean NLL of the B_val response tokens            (what the value claims to predict)
//	J_dec = mean NLL of the B_val *decision* tokens only     (a pass@1 proxy: minibench.ProgramByteTypes)
//
// with two first-order predictions: "full", ⟨∇J, Δθ⟩ over every parameter for the step's actual
// token-dependent update Δθ, and "Φ", the valuation's own −η·c/k·Σ_{p∈kept} Φ_tgt(p) (target terms,
// last K blocks only; c = 1 for SGD, c = (1−β1)/(1−β1^{s+1})·min(1, 1/‖g‖) for AdamW, with Φ of
// precondition adam and the trainer's clipping of the step's gradient g). Their gaps separate "the valuation is wrong" (Φ vs full), "first order is not enough"
// (full vs actual) and "validation NLL is not what pass@1 needs" (J_tgt vs J_dec).
//
// The step is computed on the host in float64 from the model's gradients: SGD θ − η g; AdamW with
// the trainer's settings (β1 0.9, β2 0.95, ε 1e-8, no weight decay, global-norm clipping at 1) from
// an optimizer state WARMED by Warm full-batch AdamW steps on other batches, after which θ is put
// back (so the state is a trained one's and θ the point under test). AdamW's update also moves θ by
// the old momentum whatever the tokens: the row "momentum only" (no token kept) measures that part,
// and the AdamW predictions and actual changes are reported net of it.

// OneStepOptions configures the test.
type OneStepOptions struct {
	Seed    uint64  // picks the batch and the random share
	SGDLR   float64 // η of the SGD step
	AdamLR  float64 // η of the AdamW step (default: the preset's SFT learning rate)
	Warm    int     // full AdamW steps that warm the optimizer state
	Batches int     // batches tested (each one step from the same θ); results are averaged
}

// OneStepRow is one (optimizer, selection) cell at one point, averaged over the batches.
type OneStepRow struct {
	Point     string  `json:"point"`
	Optimizer string  `json:"optimizer"` // sgd, adamw
	Selection string  `json:"selection"` // top, bottom, random (ranked by Φ, or Φ^adam for "… (adam Φ)")
	Kept      int     `json:"kept"`      // tokens kept per batch
	DecShare  float64 `json:"decision_share_pct"`
	ActualT   float64 `json:"actual_dJ_tgt"`
	FullT     float64 `json:"pred_full_dJ_tgt"`
	PhiT      float64 `json:"pred_phi_dJ_tgt"`
	ActualD   float64 `json:"actual_dJ_dec"`
	FullD     float64 `json:"pred_full_dJ_dec"`
}

// OneStepResult is the test at several points.
type OneStepResult struct {
	Preset  string         `json:"preset"`
	Options OneStepOptions `json:"options"`
	Rho     float64        `json:"rho"`
	Rows    []OneStepRow   `json:"rows"`
	Seconds float64        `json:"seconds"`
	Command string         `json:"command,omitempty"`
	Commit  string         `json:"commit"`
	Date    string         `json:"date"`
}

// oneStepper holds the graphs of the test for one model.
type oneStepper struct {
	lm     *model.LM
	names  []string // every parameter, ParamSpecs order
	grad   *gm.Exec // (tokens, targets, weights) -> masked mean NLL, ∂/∂ every parameter
	params [][]float64
}

func newOneStepper(lm *model.LM) (*oneStepper, error) {
	s := &oneStepper{lm: lm}
	for _, sp := range lm.Config.ParamSpecs() {
		if lm.Param(sp.Name) != nil {
			s.names = append(s.names, sp.Name)
		}
	}
	exec, err := model.NewStoreExec(lm.Backend, lm.Store, "one_step_gradient", func(_ *gm.Scope, g *Graph, in []*Node) []*Node {
		w := lm.Weights(g)
		out := model.Forward(lm.Config, w, in[0], model.ForwardOptions{})
		nll := model.TokenNLL(out.Logits, in[1])
		wt := ConvertDType(in[2], nll.DType())
		loss := Div(ReduceAllSum(Mul(nll, wt)), MaxScalar(ReduceAllSum(wt), 1))
		var nodes []*Node
		for _, n := range s.names {
			nodes = append(nodes, lm.Param(n).NodeValue(g))
		}
		return append([]*Node{loss}, Gradient(loss, nodes...)...)
	})
	if err != nil {
		return nil, err
	}
	s.grad = exec
	return s, s.save()
}

// save remembers the current weights as θ (restore puts them back).
func (s *oneStepper) save() error {
	s.params = make([][]float64, len(s.names))
	for i, n := range s.names {
		v, err := s.lm.Param(n).Value()
		if err != nil {
			return err
		}
		if s.params[i], err = model.TensorFloat64(v); err != nil {
			return err
		}
	}
	return nil
}

// set writes weights (float64, ParamSpecs order) into the model.
func (s *oneStepper) set(ws [][]float64) error {
	for i, n := range s.names {
		t, err := model.TensorFromFloat64(ws[i], s.lm.DType, s.lm.Param(n).Shape().Dimensions...)
		if err != nil {
			return err
		}
		if err := s.lm.Param(n).SetValue(t); err != nil {
			return err
		}
	}
	return nil
}

func (s *oneStepper) restore() error { return s.set(s.params) }

// lossGrad returns the weighted mean NLL of a batch under weights w [b, t] and its gradient.
func (s *oneStepper) lossGrad(b data.Batch, w [][]float32) (float64, [][]float64, error) {
	outs, err := s.grad.Call(b.Tokens, b.Targets, w)
	if err != nil {
		return 0, nil, err
	}
	vals := make([][]float64, len(outs))
	for i, o := range outs {
		if vals[i], err = model.TensorFloat64(o); err != nil {
			return 0, nil, err
		}
	}
	return vals[0][0], vals[1:], nil
}

func dot(a, b [][]float64) float64 {
	var s float64
	for i := range a {
		for j := range a[i] {
			s += a[i][j] * b[i][j]
		}
	}
	return s
}

// adamState is AdamW's state on the host (float64), with the trainer's settings.
type adamState struct {
	m, v          [][]float64
	step          int
	beta1, beta2  float64
	eps, clipNorm float64
}

func newAdamState(like [][]float64) *adamState {
	a := &adamState{beta1: 0.9, beta2: 0.95, eps: 1e-8, clipNorm: 1}
	for _, p := range like {
		a.m, a.v = append(a.m, make([]float64, len(p))), append(a.v, make([]float64, len(p)))
	}
	return a
}

// update returns the AdamW step Δθ for gradient g (nil: no gradient, the momentum alone) and the
// state after it, without changing a.
func (a *adamState) update(g [][]float64, lr float64) (delta [][]float64, next *adamState) {
	scale := 1.0
	if g != nil {
		if n := math.Sqrt(dot(g, g)); n > a.clipNorm {
			scale = a.clipNorm / (n + 1e-6)
		}
	}
	next = &adamState{step: a.step + 1, beta1: a.beta1, beta2: a.beta2, eps: a.eps, clipNorm: a.clipNorm}
	c1, c2 := 1-math.Pow(a.beta1, float64(next.step)), 1-math.Pow(a.beta2, float64(next.step))
	delta = make([][]float64, len(a.m))
	for i := range a.m {
		m, v, d := make([]float64, len(a.m[i])), make([]float64, len(a.m[i])), make([]float64, len(a.m[i]))
		for j := range m {
			gj := 0.0
			if g != nil {
				gj = scale * g[i][j]
			}
			m[j] = a.beta1*a.m[i][j] + (1-a.beta1)*gj
			v[j] = a.beta2*a.v[i][j] + (1-a.beta2)*gj*gj
			d[j] = -lr * (m[j] / c1) / (math.Sqrt(v[j]/c2) + a.eps)
		}
		next.m, next.v, delta[i] = append(next.m, m), append(next.v, v), d
	}
	return delta, next
}

func addScaled(p, d [][]float64, c float64) [][]float64 {
	out := make([][]float64, len(p))
	for i := range p {
		out[i] = make([]float64, len(p[i]))
		for j := range p[i] {
			out[i][j] = p[i][j] + c*d[i][j]
		}
	}
	return out
}

// OneStep runs the test at each point (a label and a model, which is copied: the test changes nothing
// of it).
func (r *Runner) OneStep(points []string, models []*model.LM, o OneStepOptions) (*OneStepResult, error) {
	if o.AdamLR <= 0 {
		o.AdamLR = r.Preset.SFT.LR
	}
	if o.Batches < 1 || o.Warm < 1 || !(o.SGDLR > 0) {
		return nil, errors.Errorf("ablations: one-step needs ≥ 1 batch, ≥ 1 warm-up step and an SGD lr > 0 (got %d, %d, %g)", o.Batches, o.Warm, o.SGDLR)
	}
	start := time.Now()
	res := &OneStepResult{Preset: r.Preset.Name, Options: o, Rho: r.Preset.Rho, Commit: Commit(), Date: time.Now().UTC().Format("2006-01-02")}
	classes, _, err := r.DecisionClasses(r.train)
	if err != nil {
		return nil, err
	}
	valClasses, _, err := r.DecisionClasses(r.jTgtExamples())
	if err != nil {
		return nil, err
	}
	val := r.jTgtExamples()
	valBatch := batchOf(val, seqIdx(len(val)), r.Preset.SFT.MaxLen)
	decW := valClasses.Rows(&valBatch)
	for i := range decW {
		for p := range decW[i] {
			decW[i][p] *= valBatch.Weights[i][p]
		}
	}
	for pi, m := range models {
		lm, err := m.Clone() // the test writes weights and optimizer state into its own copy
		if err != nil {
			return nil, err
		}
		rows, err := r.oneStepAt(points[pi], lm, o, classes, valBatch, decW)
		if err != nil {
			return nil, errors.WithMessagef(err, "ablations: one-step at %s", points[pi])
		}
		res.Rows = append(res.Rows, rows...)
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

func seqIdx(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

func batchOf(examples []data.Example, idx []int, maxLen int) data.Batch {
	longest := 0
	for _, i := range idx {
		longest = max(longest, len(examples[i].IDs))
	}
	return data.MakeBatch(examples, idx, len(idx), data.BucketLen(longest, 16, maxLen), 0)
}

func (r *Runner) oneStepAt(point string, lm *model.LM, o OneStepOptions, classes *methods.TokenTable, valBatch data.Batch, decW [][]float32) ([]OneStepRow, error) {
	st, err := newOneStepper(lm)
	if err != nil {
		return nil, err
	}
	defer func() { _ = st.restore() }()
	cfg, err := r.resolve(Row{Label: "alphatoken", Method: "alphatoken"}, 1)
	if err != nil {
		return nil, err
	}
	vc := *cfg.Valuation
	env := &methods.Env{LM: lm, Ref: r.Ref, Valuation: vc, Val: r.val, Options: cfg.Options, Steps: 1, BatchSize: cfg.SFT.Batch, MaxLen: cfg.SFT.MaxLen, Log: r.Log}
	if env.Fisher, _, err = r.Fisher(vc, cfg.FisherSeed); err != nil {
		return nil, err
	}
	plain, err := methods.NewValuer(env, "alphatoken")
	if err != nil {
		return nil, err
	}
	env.Valuation.Precondition = alphatoken.PrecondAdam
	pre, err := methods.NewValuer(env, "alphatoken")
	if err != nil {
		return nil, err
	}
	adamDT := dtypes.Float32
	if lm.DType == dtypes.Float64 {
		adamDT = dtypes.Float64
	}
	moments := alphatoken.AdamMoments{Scope: optimizer.AdamDefaultScope, Beta2: 0.95, Eps: 1e-8, DType: adamDT}
	if err := pre.UseAdam(moments); err != nil {
		return nil, err
	}
	valueExec := func(v *alphatoken.Valuer) (*gm.Exec, error) {
		return model.NewStoreExec(lm.Backend, lm.Store, "one_step_values", func(_ *gm.Scope, g *Graph, in []*Node) []*Node {
			ev := v.Build(lm.Weights(g), in[0], in[1], in[2])
			return []*Node{Add(ev.TgtDir, ev.TgtCau), alphatoken.Combine(ev, v.Config)}
		})
	}
	plainExec, err := valueExec(plain)
	if err != nil {
		return nil, err
	}
	preExec, err := valueExec(pre)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(o.Seed, 11))
	perm := rng.Perm(len(r.train))
	bs := cfg.SFT.Batch
	if (o.Warm+o.Batches)*bs > len(perm) {
		return nil, errors.Errorf("%d warm-up and %d test batches of %d need more than the %d training examples", o.Warm, o.Batches, bs, len(perm))
	}
	// Warm the AdamW state by full steps on batches the test does not use, then put θ back.
	adam := newAdamState(st.params)
	cur := st.params
	for w := range o.Warm {
		b := batchOf(r.train, perm[(o.Batches+w)*bs:(o.Batches+w+1)*bs], cfg.SFT.MaxLen)
		_, g, err := st.lossGrad(b, b.Weights)
		if err != nil {
			return nil, err
		}
		var d [][]float64
		d, adam = adam.update(g, o.AdamLR)
		cur = addScaled(cur, d, 1)
		if err := st.set(cur); err != nil {
			return nil, err
		}
	}
	if err := st.restore(); err != nil {
		return nil, err
	}
	// The warmed moments, where the preconditioned valuer reads them (GoMLX's layout).
	for i, n := range st.names {
		t, err := model.TensorFromFloat64(adam.v[i], adamDT, lm.Param(n).Shape().Dimensions...)
		if err != nil {
			return nil, err
		}
		if err := model.SetFrozen(lm.Store, "/"+optimizer.AdamDefaultScope+lm.Param(n).Path()+"_2nd_moment", t); err != nil {
			return nil, err
		}
	}
	stepT, _ := model.TensorFromFloat64([]float64{float64(adam.step)}, adamDT)
	if err := model.SetFrozen(lm.Store, "/"+optimizer.AdamDefaultScope+"/step", stepT); err != nil {
		return nil, err
	}
	for _, v := range []*alphatoken.Valuer{plain, pre} { // G at θ (ghost vectors for plain's ghost layers; matrices for pre)
		if _, err := v.RefreshValidationGradient(); err != nil {
			return nil, err
		}
	}
	j0, gradT, err := st.lossGrad(valBatch, valBatch.Weights)
	if err != nil {
		return nil, err
	}
	d0, gradD, err := st.lossGrad(valBatch, decW)
	if err != nil {
		return nil, err
	}
	momDelta, _ := adam.update(nil, o.AdamLR) // the momentum-only update (no token kept)
	cells := map[string]*OneStepRow{}
	var order []string
	add := func(opt, sel string, kept int, dec, aT, fT, pT, aD, fD float64) {
		key := opt + "|" + sel
		c, ok := cells[key]
		if !ok {
			c = &OneStepRow{Point: point, Optimizer: opt, Selection: sel, Kept: kept}
			cells[key], order = c, append(order, key)
		}
		f := 1 / float64(o.Batches)
		c.DecShare += f * dec
		c.ActualT, c.FullT, c.PhiT = c.ActualT+f*aT, c.FullT+f*fT, c.PhiT+f*pT
		c.ActualD, c.FullD = c.ActualD+f*aD, c.FullD+f*fD
	}
	measure := func(delta [][]float64) (float64, float64, error) {
		if err := st.set(addScaled(st.params, delta, 1)); err != nil {
			return 0, 0, err
		}
		jt, _, err := st.lossGrad(valBatch, valBatch.Weights)
		if err != nil {
			return 0, 0, err
		}
		jd, _, err := st.lossGrad(valBatch, decW)
		if err != nil {
			return 0, 0, err
		}
		return jt - j0, jd - d0, st.restore()
	}
	mT, mD, err := measure(momDelta)
	if err != nil {
		return nil, err
	}
	add("adamw", "momentum only", 0, 0, mT, dot(gradT, momDelta), 0, mD, dot(gradD, momDelta))
	c1 := (1 - adam.beta1) / (1 - math.Pow(adam.beta1, float64(adam.step+1)))
	for bi := range o.Batches {
		b := batchOf(r.train, perm[bi*bs:(bi+1)*bs], cfg.SFT.MaxLen)
		tv := b.T()
		vals := map[string][2][]float64{}
		for name, ex := range map[string]*gm.Exec{"plain": plainExec, "adam": preExec} {
			outs, err := ex.Call(b.Tokens, b.Targets, b.Weights)
			if err != nil {
				return nil, err
			}
			tgt, err := model.TensorFloat64(outs[0])
			if err != nil {
				return nil, err
			}
			comb, err := model.TensorFloat64(outs[1])
			if err != nil {
				return nil, err
			}
			vals[name] = [2][]float64{tgt, comb}
		}
		var valid []int
		cls := classes.Rows(&b)
		for row := range b.Weights {
			for p := range b.Weights[row] {
				if b.Weights[row][p] != 0 {
					valid = append(valid, row*tv+p)
				}
			}
		}
		k := alphatoken.KeepCount(r.Preset.Rho, len(valid))
		ranked := func(v []float64, desc bool) []int {
			s := slices.Clone(valid)
			slices.SortStableFunc(s, func(a, c int) int {
				if desc {
					return cmpF(v[c], v[a])
				}
				return cmpF(v[a], v[c])
			})
			return s[:k]
		}
		rnd := slices.Clone(valid)
		rng.Shuffle(len(rnd), func(i, j int) { rnd[i], rnd[j] = rnd[j], rnd[i] })
		sels := []struct {
			name string
			pos  []int
			by   string // whose Φ predicts
		}{
			{"top", ranked(vals["plain"][1], true), "plain"}, {"random", rnd[:k], "plain"}, {"bottom", ranked(vals["plain"][1], false), "plain"},
			{"top (adam Φ)", ranked(vals["adam"][1], true), "adam"}, {"bottom (adam Φ)", ranked(vals["adam"][1], false), "adam"},
		}
		for _, sel := range sels {
			w := make([][]float32, len(b.Weights))
			for i := range w {
				w[i] = make([]float32, tv)
			}
			var dec, sumPlain, sumAdam float64
			for _, q := range sel.pos {
				w[q/tv][q%tv] = 1
				dec += float64(cls[q/tv][q%tv])
				sumPlain += vals["plain"][0][q]
				sumAdam += vals["adam"][0][q]
			}
			_, g, err := st.lossGrad(b, w)
			if err != nil {
				return nil, err
			}
			decPct := 100 * dec / float64(len(sel.pos))
			if sel.by == "plain" { // SGD rows: ranked by the SGD values
				delta := addScaled(zerosLike(g), g, -o.SGDLR)
				aT, aD, err := measure(delta)
				if err != nil {
					return nil, err
				}
				add("sgd", sel.name, k, decPct, aT, dot(gradT, delta), -o.SGDLR*sumPlain/float64(k), aD, dot(gradD, delta))
			}
			delta, _ := adam.update(g, o.AdamLR)
			aT, aD, err := measure(delta)
			if err != nil {
				return nil, err
			}
			net := addScaled(delta, momDelta, -1) // the token-dependent part
			// AdamW rows, however ranked, are predicted with the preconditioned values (SPEC §4), scaled
			// as the trainer scales the gradient (global-norm clipping).
			clip := 1.0
			if n := math.Sqrt(dot(g, g)); n > adam.clipNorm {
				clip = adam.clipNorm / (n + 1e-6)
			}
			add("adamw", sel.name, k, decPct, aT-mT, dot(gradT, net), -o.AdamLR*c1*clip*sumAdam/float64(k), aD-mD, dot(gradD, net))
		}
	}
	var out []OneStepRow
	for _, key := range order {
		out = append(out, *cells[key])
	}
	return out, nil
}

func zerosLike(a [][]float64) [][]float64 {
	out := make([][]float64, len(a))
	for i := range a {
		out[i] = make([]float64, len(a[i]))
	}
	return out
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Markdown renders the result, one table per point.
func (res *OneStepResult) Markdown() string {
	var sb strings.Builder
	o := res.Options
	fmt.Fprintf(&sb, "### One-step test (preset %s, ρ %.2g)\n\n", res.Preset, res.Rho)
	fmt.Fprintf(&sb, "One step from the model at each point on k = floor(ρN+0.5) response tokens of a training batch: the top-ρ, "+
		"bottom-ρ (by Φ, or by the preconditioned Φ^adam) and a random ρ share. SGD: θ − η g, η = %g. AdamW: the trainer's "+
		"(β 0.9/0.95, ε 1e-8, clip 1), η = %g, from a state warmed by %d full-batch steps on other batches (θ put back); "+
		"AdamW changes are net of the momentum-only step (first row). Changes ×1e4 (nats/token), mean over %d batches (seed %d). "+
		"J_tgt: validation NLL of B_val; J_dec: NLL of its decision tokens only (pass@1 proxy). pred full = ⟨∇J, Δθ⟩ over every "+
		"parameter; pred Φ = −η·c/k·Σ Φ_tgt over the kept tokens (last K blocks; AdamW: Φ^adam, c = (1−β1)/(1−β1^(s+1))·min(1, 1/‖g‖), the trainer's clipping).\n\n",
		o.SGDLR, o.AdamLR, o.Warm, o.Batches, o.Seed)
	point := ""
	for _, r := range res.Rows {
		if r.Point != point {
			point = r.Point
			fmt.Fprintf(&sb, "\n**%s**\n\n| optimizer | kept tokens | k | decision share (%%) | ΔJ_tgt actual | pred full | pred Φ | ΔJ_dec actual | pred full |\n|---|---|---|---|---|---|---|---|---|\n", point)
		}
		fmt.Fprintf(&sb, "| %s | %s | %d | %.1f | %+.3f | %+.3f | %+.3f | %+.3f | %+.3f |\n", r.Optimizer, r.Selection, r.Kept, r.DecShare,
			1e4*r.ActualT, 1e4*r.FullT, 1e4*r.PhiT, 1e4*r.ActualD, 1e4*r.FullD)
	}
	fmt.Fprintf(&sb, "\nCommit %s, %s; %.0f s.\n", res.Commit, res.Date, res.Seconds)
	if res.Command != "" {
		fmt.Fprintf(&sb, "Regenerate: `%s`\n", res.Command)
	}
	return sb.String()
}

// CSV has one line per row.
func (res *OneStepResult) CSV() string {
	f := func(x float64) string { return fmt.Sprintf("%.6g", x) }
	var recs [][]string
	for _, r := range res.Rows {
		recs = append(recs, []string{r.Point, r.Optimizer, r.Selection, fmt.Sprint(r.Kept), f(r.DecShare), f(r.ActualT), f(r.FullT), f(r.PhiT), f(r.ActualD), f(r.FullD)})
	}
	return csvText([]string{"point", "optimizer", "selection", "kept", "decision_share_pct", "actual_dJ_tgt", "pred_full_dJ_tgt", "pred_phi_dJ_tgt", "actual_dJ_dec", "pred_full_dJ_dec"}, recs)
}

// OneStepFigure plots, for one optimizer (sgd or adamw), the actual change of J_tgt against the
// valuation's prediction Σ Φ: one panel per model point (their scales differ by orders of
// magnitude), one labelled dot per selection, with the correlations over the panel's dots.
func OneStepFigure(res *OneStepResult, optimizer string) (plots.Figure, error) {
	var points []string
	for _, r := range res.Rows {
		if !slices.Contains(points, r.Point) {
			points = append(points, r.Point)
		}
	}
	var panels []*plot.Plot
	for _, point := range points {
		var pred, act []float64
		var names []string
		for _, r := range res.Rows {
			if r.Kept > 0 && r.Optimizer == optimizer && r.Point == point {
				pred, act = append(pred, 1e4*r.PhiT), append(act, 1e4*r.ActualT)
				names = append(names, r.Selection)
			}
		}
		pts, err := plots.XYs(pred, act)
		if err != nil {
			return nil, errors.WithMessagef(err, "ablations: one-step figure, point %s", point)
		}
		sp, pe := spearmanPearson(pred, act)
		p, err := plots.ProxyScatter(point, pts, sp, pe)
		if err != nil {
			return nil, err
		}
		if err := plots.LabelPoints(p, pts, names); err != nil {
			return nil, err
		}
		p.X.Label.Text, p.Y.Label.Text = "predicted by Σ Φ over kept tokens", "actual ΔJ_tgt"
		panels = append(panels, p)
	}
	if len(panels) == 0 {
		return nil, errors.Errorf("ablations: one-step figure: no %s rows", optimizer)
	}
	return plots.NewPanels(fmt.Sprintf("One %s step from each model: actual ΔJ_tgt vs predicted −η·c/k·ΣΦ (×1e4 nats/token)", optimizer), plots.Grid(panels, 2)), nil
}

// spearmanPearson returns both correlations (NaN where undefined).
func spearmanPearson(x, y []float64) (float64, float64) {
	sp, err := diag.Spearman(x, y)
	if err != nil {
		sp = math.NaN()
	}
	pe, err := diag.Pearson(x, y)
	if err != nil {
		pe = math.NaN()
	}
	return sp, pe
}
