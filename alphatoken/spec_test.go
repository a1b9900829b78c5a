package alphatoken

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
)

// trainBatch pads the fixture's training examples to T.
func (fx *fixture) trainBatch(t int) data.Batch {
	idx := make([]int, len(fx.train))
	for i := range idx {
		idx[i] = i
	}
	return data.MakeBatch(fx.train, idx, len(idx), t, 0)
}

// components runs Valuer.Build and returns the four components [b·t] each.
func components(t *testing.T, v *Valuer, b data.Batch) [4][]float64 {
	exec := gm.MustNewExec(v.LM.Backend, v.LM.Store, func(scope *gm.Scope, tok, tgt, w *Node) []*Node {
		ev := v.Build(v.LM.Weights(tok.Graph()), tok, tgt, w)
		return []*Node{ev.TgtDir, ev.TgtCau, ev.PrxDir, ev.PrxCau}
	})
	res := exec.MustCall(b.Tokens, b.Targets, b.Weights)
	var out [4][]float64
	for i := range out {
		out[i] = f64(t, res[i])
	}
	return out
}

// bruteForce computes the four components from explicitly materialised per-token gradients
// (SPEC §7.2): D_p = e_p a_pᵀ with e_p from a separate backward pass of l_p alone through the
// unmodified model, and C_p built by explicit loops over heads, queries and window, both turned
// into [d_out, d_in] matrices and multiplied elementwise with G and P.
func bruteForce(t *testing.T, fx *fixture, cfg Config, b data.Batch) [4][]float64 {
	return bruteForceWith(t, fx, cfg, b, omegaOf(b), nil, nil)
}

// omegaOf is SFT's ω: the batch's response weights.
func omegaOf(b data.Batch) [][]float64 {
	omega := make([][]float64, len(b.Weights))
	for i, row := range b.Weights {
		omega[i] = make([]float64, len(row))
		for p, w := range row {
			omega[i][p] = float64(w)
		}
	}
	return omega
}

// bruteForceWith is bruteForce for per-token losses ω_p·l_p (e_p = ω_p ∂l_p/∂z_p, g = ∂(Σ ω l)/∂u)
// and, when obj is not nil, G the gradient of obj's J_tgt on its batch (else the SFT objective on
// fx.val). With den (per scored layer, row-major [d_out, d_in]), G and P are divided by it element-wise
// (Precondition adam: den = √v̂ + ε).
func bruteForceWith(t *testing.T, fx *fixture, cfg Config, b data.Batch, omega [][]float64, obj *Objective, den map[string][]float64) [4][]float64 {
	lm := fx.lm
	mc := lm.Config
	layers := ScoredLayers(mc, cfg.Blocks)
	first := mc.Layers - cfg.Blocks
	B, T := len(b.Tokens), b.T()
	weightOf := func(name string) []float64 { return f64(t, lm.Param(name).MustValue()) }

	// G^l = ∂J_tgt/∂W^l on the validation examples, directly.
	vidx := make([]int, len(fx.val))
	longest := 0
	for i := range vidx {
		vidx[i] = i
		longest = max(longest, len(fx.val[i].IDs))
	}
	vb := data.MakeBatch(fx.val, vidx, len(vidx), longest, 0)
	loss := MeanTokenLoss
	if obj != nil {
		vb, loss = obj.Batch, obj.Loss
	}
	gExec := gm.MustNewExec(lm.Backend, lm.Store, func(scope *gm.Scope, tok, tgt, w *Node) []*Node {
		wts := lm.Weights(tok.Graph())
		nll := model.TokenNLL(model.Forward(mc, wts, tok, model.ForwardOptions{}).Logits, tgt)
		j := loss(nll, w)
		var ws []*Node
		for _, l := range layers {
			ws = append(ws, wts.Blocks[l.Block].Linear[l.Kind])
		}
		return Gradient(j, ws...)
	})
	gRes := gExec.MustCall(vb.Tokens, vb.Targets, vb.Weights)
	G := map[string][]float64{}
	P := map[string][]float64{}
	for i, l := range layers {
		G[l.Name] = f64(t, gRes[i])
		w, wr := weightOf(l.Name), f64(t, fx.ref.Param(l.Name).MustValue())
		drift := make([]float64, len(w))
		for j := range w {
			drift[j] = w[j] - wr[j]
		}
		p := make([]float64, len(w))
		switch cfg.Fisher {
		case FisherDiag:
			f := f64(t, fx.fisher.Diag[l.Name])
			for j := range p {
				p[j] = f[j] * drift[j]
			}
		case FisherKFAC:
			a, s := f64(t, fx.fisher.A[l.Name]), f64(t, fx.fisher.S[l.Name])
			for o := range l.Out {
				for i2 := range l.In {
					var acc float64
					for o2 := range l.Out {
						for i3 := range l.In {
							acc += s[o*l.Out+o2] * drift[o2*l.In+i3] * a[i3*l.In+i2]
						}
					}
					p[o*l.In+i2] = acc
				}
			}
		}
		P[l.Name] = p
		if d := den[l.Name]; d != nil {
			for j := range p {
				G[l.Name][j] /= d[j]
				p[j] /= d[j]
			}
		}
	}
	frob := func(e, a, m []float64, out, in int) float64 {
		var s float64
		for o := range out {
			for i := range in {
				s += e[o] * a[i] * m[o*in+i]
			}
		}
		return s
	}

	// Activations, attention, and g = ∂L/∂u (L = Σ ω l) from the unmodified model.
	fwd := gm.MustNewExec(lm.Backend, lm.Store, func(scope *gm.Scope, tok, tgt, w *Node) []*Node {
		out := model.Forward(mc, lm.Weights(tok.Graph()), tok, model.ForwardOptions{TapBlocks: cfg.Blocks})
		nll := model.TokenNLL(out.Logits, tgt)
		loss := ReduceAllSum(Mul(nll, ConvertDType(w, nll.DType())))
		var us, res []*Node
		for _, bt := range out.Taps {
			us = append(us, bt.U)
		}
		for _, l := range layers {
			res = append(res, out.Taps[l.Block-first].Linear[l.Kind].A)
		}
		for _, bt := range out.Taps {
			res = append(res, bt.Probs)
		}
		return append(res, Gradient(loss, us...)...)
	})
	fr := fwd.MustCall(b.Tokens, b.Targets, omega)
	acts := make([][]float64, len(layers))
	for i := range layers {
		acts[i] = f64(t, fr[i])
	}
	probs := make([][]float64, cfg.Blocks)
	gus := make([][]float64, cfg.Blocks)
	for i := range cfg.Blocks {
		probs[i] = f64(t, fr[len(layers)+i])
		gus[i] = f64(t, fr[len(layers)+cfg.Blocks+i])
	}

	// Per-token backward passes for e_p.
	perTok := gm.MustNewExec(lm.Backend, lm.Store, func(scope *gm.Scope, tok, tgt, sel *Node) []*Node {
		out := model.Forward(mc, lm.Weights(tok.Graph()), tok, model.ForwardOptions{TapBlocks: cfg.Blocks})
		nll := model.TokenNLL(out.Logits, tgt)
		l := ReduceAllSum(Mul(nll, ConvertDType(sel, nll.DType())))
		var zs []*Node
		for _, ly := range layers {
			zs = append(zs, out.Taps[ly.Block-first].Linear[ly.Kind].Z)
		}
		return Gradient(l, zs...)
	})

	var res [4][]float64
	for i := range res {
		res[i] = make([]float64, B*T)
	}
	nh, nk, e := mc.Heads, mc.KVHeads, mc.HeadDim
	grp := nh / nk
	for bi := range B {
		for p := range T {
			if omega[bi][p] == 0 {
				continue
			}
			pos := bi*T + p
			if cfg.Direct {
				sel := make([][]float64, B)
				for r := range sel {
					sel[r] = make([]float64, T)
				}
				sel[bi][p] = omega[bi][p]
				es := perTok.MustCall(b.Tokens, b.Targets, sel)
				for li, l := range layers {
					eAll := f64(t, es[li])
					ep := eAll[pos*l.Out : (pos+1)*l.Out]
					ap := acts[li][pos*l.In : (pos+1)*l.In]
					if cfg.Adaptation {
						res[0][pos] += frob(ep, ap, G[l.Name], l.Out, l.In)
					}
					if cfg.Stability && cfg.Fisher != FisherNone {
						res[2][pos] += frob(ep, ap, P[l.Name], l.Out, l.In)
					}
				}
			}
			c := p + 1
			if !cfg.Causal || c > T-1 {
				continue
			}
			for blk := range cfg.Blocks {
				li := blk*int(model.NumLinearKinds) + int(model.VProj)
				l := layers[li]
				et := make([]float64, nk*e) // explicit Σ_h Σ_r A^h_{r,c} g^h_r, by KV head
				for h := range nh {
					kv, gi := h/grp, h%grp
					for r := c; r <= min(c+cfg.Window-1, T-1); r++ {
						a := probs[blk][((bi*nh+h)*T+r)*T+c]
						for d := range e {
							et[kv*e+d] += a * gus[blk][((bi*nk+kv)*grp*T+gi*T+r)*e+d]
						}
					}
				}
				xc := acts[li][(bi*T+c)*l.In : (bi*T+c+1)*l.In]
				if cfg.Adaptation {
					res[1][pos] += frob(et, xc, G[l.Name], l.Out, l.In)
				}
				if cfg.Stability && cfg.Fisher != FisherNone {
					res[3][pos] += frob(et, xc, P[l.Name], l.Out, l.In)
				}
			}
		}
	}
	return res
}

var componentNames = [4]string{"tgt_dir", "tgt_cau", "prx_dir", "prx_cau"}

// TestComponentsAgainstMaterialisedGradients: SPEC §7.1–7.3 — each component equals the
// brute-force inner product of explicitly materialised per-token gradients (float64), for the
// ghost and the materialised forms, a short and a long causal window, diagonal and K-FAC Fisher.
func TestComponentsAgainstMaterialisedGradients(t *testing.T) {
	cases := []struct {
		arch   model.Arch
		fisher FisherKind
		window int
		ghost  GhostMode
	}{
		{model.Llama, FisherDiag, 3, GhostNever},
		{model.Llama, FisherDiag, 3, GhostAlways},
		{model.Qwen3, FisherKFAC, 32, GhostNever},
		{model.Qwen2, FisherKFAC, 2, GhostAlways},
		{model.Gemma3, FisherDiag, 3, GhostNever},
		{model.Gemma3, FisherKFAC, 32, GhostAlways},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%s/W%d/%s", tc.arch, tc.fisher, tc.window, tc.ghost), func(t *testing.T) {
			fx := newFixture(t, tc.arch, tc.fisher, 2)
			cfg := DefaultConfig()
			cfg.Blocks, cfg.Window, cfg.Fisher, cfg.Ghost = 2, tc.window, tc.fisher, tc.ghost
			v, err := NewValuer(fx.lm, fx.ref, fx.fisher, fx.val, cfg, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.RefreshValidationGradient(); err != nil {
				t.Fatal(err)
			}
			b := fx.trainBatch(12)
			got := components(t, v, b)
			want := bruteForce(t, fx, cfg, b)
			for i := range got {
				if e := relErr(got[i], want[i]); e > 1e-9 || math.IsNaN(e) {
					t.Errorf("%s: relative error %.3g against materialised gradients", componentNames[i], e)
				}
				var norm float64
				for _, x := range want[i] {
					norm += x * x
				}
				if norm == 0 {
					t.Errorf("%s is identically zero: the test would prove nothing", componentNames[i])
				}
			}
		})
	}
}

// TestGhostEqualsMaterialised: SPEC §7.3 on the same batch, in float32 too.
func TestGhostEqualsMaterialised(t *testing.T) {
	for _, arch := range []model.Arch{model.Llama, model.Gemma3} {
		fx := newFixture(t, arch, FisherDiag, 3)
		var outs [2][4][]float64
		for i, mode := range []GhostMode{GhostNever, GhostAlways} {
			cfg := DefaultConfig()
			cfg.Ghost = mode
			v, err := NewValuer(fx.lm, fx.ref, fx.fisher, fx.val, cfg, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.RefreshValidationGradient(); err != nil {
				t.Fatal(err)
			}
			outs[i] = components(t, v, fx.trainBatch(10))
		}
		for c := range 2 { // the target terms are the ones with two forms
			if e := relErr(outs[1][c], outs[0][c]); e > 1e-10 {
				t.Errorf("%s %s: ghost vs materialised relative error %.3g", arch, componentNames[c], e)
			}
		}
	}
}

// TestValuePropagationExactForWV: SPEC §7.4 — with W ≥ T the causal errors of ALL positions
// (prompt positions included) add up to ∂L/∂W_V exactly: Σ_c ẽ_c x_cᵀ = ∂L/∂W_V.
func TestValuePropagationExactForWV(t *testing.T) {
	for _, arch := range []model.Arch{model.Llama, model.Qwen2, model.Qwen3, model.Gemma3} {
		fx := newFixture(t, arch, FisherDiag, 2)
		lm, mc := fx.lm, fx.lm.Config
		b := fx.trainBatch(10)
		exec := gm.MustNewExec(lm.Backend, lm.Store, func(scope *gm.Scope, tok, tgt, w *Node) []*Node {
			wts := lm.Weights(tok.Graph())
			out := model.Forward(mc, wts, tok, model.ForwardOptions{TapBlocks: 2})
			nll := model.TokenNLL(out.Logits, tgt)
			loss := ReduceAllSum(Mul(nll, ConvertDType(w, nll.DType())))
			var wrt []*Node
			for _, bt := range out.Taps {
				wrt = append(wrt, bt.U)
			}
			for _, bt := range out.Taps {
				wrt = append(wrt, wts.Blocks[bt.Block].Linear[model.VProj])
			}
			grads := Gradient(loss, wrt...)
			var res []*Node
			for i, bt := range out.Taps {
				et := CausalErrors(bt.Probs, grads[i], mc.KVHeads, 10) // W = T
				x := bt.Linear[model.VProj].A
				sum := DotGeneral(flatten2(et), []int{0}, nil, flatten2(x), []int{0}, nil) // Σ_c ẽ_c x_cᵀ
				res = append(res, sum, grads[len(out.Taps)+i])
			}
			return res
		})
		res := exec.MustCall(b.Tokens, b.Targets, b.Weights)
		for i := 0; i < len(res); i += 2 {
			if e := relErr(f64(t, res[i]), f64(t, res[i+1])); e > 1e-12 {
				t.Errorf("%s block %d: Σ_c C_c vs ∂L/∂W_V relative error %.3g", arch, i/2, e)
			}
		}
	}
}

// TestSelect: SPEC §7.5 — top/bottom/random keep exactly floor(ρN+0.5) tokens, one threshold over the
// batch, ties by position; the graph agrees with the host twin.
func TestSelect(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	backend := testBackend(t)
	for trial := range 12 {
		B, T := 3, 7
		values := make([][]float64, B)
		noise := make([][]float32, B)
		valid := make([][]bool, B)
		var flatV, flatN []float64
		var flatOK []bool
		for i := range B {
			values[i], noise[i], valid[i] = make([]float64, T), make([]float32, T), make([]bool, T)
			for j := range T {
				values[i][j] = float64(rng.IntN(5)) // many ties
				noise[i][j] = rng.Float32()
				valid[i][j] = rng.IntN(4) != 0
				flatV, flatN, flatOK = append(flatV, values[i][j]), append(flatN, float64(noise[i][j])), append(flatOK, valid[i][j])
			}
		}
		rho := []float64{0.5, 0.3, 1, 0.01}[trial%4]
		for _, sel := range []Selection{SelectTop, SelectBottom, SelectRandom} {
			got := MustExecOnce(backend, func(v, ok, nz *Node) *Node {
				return Select(v, ok, nz, rho, sel)
			}, values, valid, noise)
			gotFlat := got.Value().([][]bool)
			want := SelectHost(flatV, flatOK, flatN, rho, sel)
			n, kept := 0, 0
			for i := range B {
				for j := range T {
					if gotFlat[i][j] != want[i*T+j] {
						t.Fatalf("trial %d %s ρ=%g: graph and host masks differ at (%d,%d)", trial, sel, rho, i, j)
					}
					if flatOK[i*T+j] {
						n++
					}
					if gotFlat[i][j] {
						kept++
						if !valid[i][j] {
							t.Fatalf("a padding position was kept")
						}
					}
				}
			}
			if kept != KeepCount(rho, n) || kept != max(1, int(math.Floor(rho*float64(n)+0.5))) {
				t.Fatalf("kept %d of %d with ρ=%g", kept, n, rho)
			}
		}
	}
	// Ties: equal values keep the earliest positions.
	keep := SelectHost([]float64{1, 1, 1, 1}, []bool{true, true, true, true}, nil, 0.5, SelectTop)
	if !slices.Equal(keep, []bool{true, true, false, false}) {
		t.Fatalf("tie-breaking: %v", keep)
	}
}

// TestSelectExtremes: the graph's radix select (KthLargest) against the host twin's sort on values
// that stress the order-preserving keys: signs, ±0 (equal, so tied by position), ±Inf, subnormals,
// huge magnitudes and ties, in float32 and float64, over 600 positions with padding.
func TestSelectExtremes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	backend := testBackend(t)
	special := []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), 5e-324, -5e-324, 1e-40, -1e-40,
		3.4e38, -3.4e38, 1e300, -1e300, 1, -1, 1}
	for _, dtype := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		for trial := range 6 {
			B, T := 4, 150
			values := make([][]float64, B)
			valid := make([][]bool, B)
			var flatV []float64
			var flatOK []bool
			for i := range B {
				values[i], valid[i] = make([]float64, T), make([]bool, T)
				for j := range T {
					v := special[rng.IntN(len(special))]
					if rng.IntN(2) == 0 {
						v = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(20)-10))
					}
					if dtype == dtypes.Float32 {
						v = float64(float32(v)) // what the graph sees
					}
					values[i][j], valid[i][j] = v, rng.IntN(5) != 0
					flatV, flatOK = append(flatV, v), append(flatOK, valid[i][j])
				}
			}
			rho := []float64{0.5, 0.05, 0.97, 1, 0.001, 0.3}[trial]
			for _, sel := range []Selection{SelectTop, SelectBottom} {
				got := MustExecOnce(backend, func(v, ok *Node) *Node {
					v = ConvertDType(v, dtype)
					return Select(v, ok, v, rho, sel)
				}, values, valid).Value().([][]bool)
				want := SelectHost(flatV, flatOK, nil, rho, sel)
				for i := range B {
					for j := range T {
						if got[i][j] != want[i*T+j] {
							t.Fatalf("%s trial %d %s ρ=%g: graph and host masks differ at (%d,%d), value %g",
								dtype, trial, sel, rho, i, j, values[i][j])
						}
					}
				}
			}
		}
	}
}

// TestNormalize: graph and host normalisation agree; constant components contribute 0.
func TestNormalize(t *testing.T) {
	backend := testBackend(t)
	x := [][]float64{{1, 2, 3, 100}, {4, 5, 6, -7}}
	ok := [][]bool{{true, true, true, false}, {true, true, true, true}}
	got := f64(t, MustExecOnce(backend, func(x, ok *Node) *Node { return Normalize(x, ok) }, x, ok))
	want := NormalizeHost([]float64{1, 2, 3, 100, 4, 5, 6, -7}, []bool{true, true, true, false, true, true, true, true})
	if e := relErr(got, want); e > 1e-12 {
		t.Fatalf("graph %v host %v", got, want)
	}
	var mean, ss float64
	for i, v := range want {
		if i != 3 {
			mean += v / 7
			ss += v * v / 7
		}
	}
	if math.Abs(mean) > 1e-12 || math.Abs(ss-1) > 1e-12 || want[3] != 0 {
		t.Fatalf("not standardised: mean %g, mean square %g, padding %g", mean, ss, want[3])
	}
	constant := NormalizeHost([]float64{3, 3, 3}, []bool{true, true, true})
	if !slices.Equal(constant, []float64{0, 0, 0}) {
		t.Fatalf("a constant component must contribute 0, got %v", constant)
	}
}

// TestRankNormalize: graph and host centred ranks agree, ties share their average rank, padding is
// 0, and Combine/CombineHost apply each normalisation the same way.
func TestRankNormalize(t *testing.T) {
	backend := testBackend(t)
	x := [][]float64{{3, 1, 2, 100}, {2, 5, -7, 2}}
	ok := [][]bool{{true, true, true, false}, {true, true, true, true}}
	flat := []float64{3, 1, 2, 100, 2, 5, -7, 2}
	valid := []bool{true, true, true, false, true, true, true, true}
	got := f64(t, MustExecOnce(backend, func(x, ok *Node) *Node { return RankNormalize(x, ok) }, x, ok))
	want := RankNormalizeHost(flat, valid)
	// Valid values -7 < 1 < 2 = 2 = 2 < 3 < 5: ranks 1, 2, 4 (three-way tie), 6, 7 of N = 7.
	ranks := []float64{6, 2, 4, 0, 4, 7, 1, 4}
	for i, r := range ranks {
		exp := 0.0
		if valid[i] {
			exp = (r - 4) / 7
		}
		if math.Abs(want[i]-exp) > 1e-15 || math.Abs(got[i]-exp) > 1e-12 {
			t.Fatalf("position %d: host %g, graph %g, want %g", i, want[i], got[i], exp)
		}
	}
	// Combine in the graph equals CombineHost for every normalisation.
	tgt := [][]float64{{0.5, -1, 2, 9}, {3, 3, 0.25, -2}}
	prx := [][]float64{{1e-3, 4e-3, -2e-3, 7}, {0, 1e-3, 1e-3, 5e-3}}
	for _, norm := range Normalizations {
		cfg := DefaultConfig()
		cfg.Normalize = norm
		g := f64(t, MustExecOnce(backend, func(tg, px, ok *Node) *Node {
			zero := ZerosLike(tg)
			return Combine(&Evaluation{TgtDir: tg, TgtCau: zero, PrxDir: px, PrxCau: zero, Valid: ok}, cfg)
		}, tgt, prx, ok))
		h := CombineHost([]float64{0.5, -1, 2, 9, 3, 3, 0.25, -2}, []float64{1e-3, 4e-3, -2e-3, 7, 0, 1e-3, 1e-3, 5e-3}, valid, cfg)
		for i := range h {
			if valid[i] && math.Abs(g[i]-h[i]) > 1e-12*(1+math.Abs(h[i])) {
				t.Fatalf("%s: position %d: graph %g, host %g", norm, i, g[i], h[i])
			}
		}
	}
}

// TestMaskedGradient: SPEC §7.5 — the gradient of the in-graph masked loss equals the gradient of
// the explicitly masked loss Σ m l / Σ m built from a mask chosen on the host.
func TestMaskedGradient(t *testing.T) {
	fx := newFixture(t, model.Llama, FisherDiag, 2)
	cfg := DefaultConfig()
	cfg.Blocks = 2
	v, err := NewValuer(fx.lm, fx.ref, fx.fisher, fx.val, cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.RefreshValidationGradient(); err != nil {
		t.Fatal(err)
	}
	b := fx.trainBatch(10)
	lm := fx.lm
	// In-graph: values, mask, masked loss, gradient w.r.t. every weight; also the mask itself.
	graphExec := gm.MustNewExec(lm.Backend, lm.Store, func(scope *gm.Scope, tok, tgt, w *Node) []*Node {
		ev := v.Build(lm.Weights(tok.Graph()), tok, tgt, w)
		mask := Select(Combine(ev, cfg), ev.Valid, ZerosLike(w), DefaultRho, SelectTop)
		loss := Div(ReduceAllSum(Mul(ev.NLL, StopGradient(ConvertDType(mask, ev.NLL.DType())))),
			ReduceAllSum(ConvertDType(mask, ev.NLL.DType())))
		return append([]*Node{mask}, scope.BuildTrainableVariablesGradientsGraph(loss)...)
	})
	res := graphExec.MustCall(b.Tokens, b.Targets, b.Weights)
	mask := res[0].Value().([][]bool)
	explicit := make([][]float64, len(mask))
	kept := 0
	for i := range mask {
		explicit[i] = make([]float64, len(mask[i]))
		for j := range mask[i] {
			if mask[i][j] {
				explicit[i][j] = 1
				kept++
			}
		}
	}
	n := 0
	for i := range b.Weights {
		for _, w := range b.Weights[i] {
			if w != 0 {
				n++
			}
		}
	}
	if kept != KeepCount(DefaultRho, n) {
		t.Fatalf("kept %d of %d", kept, n)
	}
	explicitExec := gm.MustNewExec(lm.Backend, lm.Store, func(scope *gm.Scope, tok, tgt, m *Node) []*Node {
		nll := model.TokenNLL(model.Forward(lm.Config, lm.Weights(tok.Graph()), tok, model.ForwardOptions{}).Logits, tgt)
		loss := Div(ReduceAllSum(Mul(nll, m)), ReduceAllSum(m))
		return scope.BuildTrainableVariablesGradientsGraph(loss)
	})
	want := explicitExec.MustCall(b.Tokens, b.Targets, explicit)
	for i := range want {
		if e := relErr(f64(t, res[1+i]), f64(t, want[i])); e > 1e-12 {
			t.Errorf("gradient %d: masked-loss gradient differs from the explicit one by %.3g", i, e)
		}
	}
}

// TestFisherPerSequence: the diagonal Fisher is the mean of squared PER-SEQUENCE gradients (not
// per-token), independent of the batch size; K-FAC factors match their definitions.
func TestFisherPerSequence(t *testing.T) {
	fx := newFixture(t, model.Llama, FisherDiag, 2)
	ref := fx.ref
	seqs := fx.train
	f1, err := FisherFromSequences(ref, seqs, FisherOptions{Kind: FisherDiag, Blocks: 2, BatchSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	f2, err := FisherFromSequences(ref, seqs, FisherOptions{Kind: FisherDiag, Blocks: 2, BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	layers := ScoredLayers(ref.Config, 2)
	// Per-sequence gradients, one backward pass each.
	want := map[string][]float64{}
	for _, ex := range seqs {
		b := data.MakeBatch([]data.Example{ex}, []int{0}, 1, len(ex.IDs), 0)
		grads := gm.MustExecOnceN(ref.Backend, ref.Store, func(scope *gm.Scope, tok, tgt, w *Node) []*Node {
			wts := ref.Weights(tok.Graph())
			nll := model.TokenNLL(model.Forward(ref.Config, wts, tok, model.ForwardOptions{}).Logits, tgt)
			ll := Neg(ReduceAllSum(Mul(nll, ConvertDType(w, nll.DType()))))
			var ws []*Node
			for _, l := range layers {
				ws = append(ws, wts.Blocks[l.Block].Linear[l.Kind])
			}
			return Gradient(ll, ws...)
		}, b.Tokens, b.Targets, b.Weights)
		for i, l := range layers {
			g := f64(t, grads[i])
			if want[l.Name] == nil {
				want[l.Name] = make([]float64, len(g))
			}
			for j := range g {
				want[l.Name][j] += g[j] * g[j] / float64(len(seqs))
			}
		}
	}
	for _, l := range layers {
		if e := relErr(f64(t, f1.Diag[l.Name]), want[l.Name]); e > 1e-10 {
			t.Errorf("%s: Fisher vs mean squared per-sequence gradient: %.3g", l.Name, e)
		}
		if e := relErr(f64(t, f2.Diag[l.Name]), f64(t, f1.Diag[l.Name])); e > 1e-12 {
			t.Errorf("%s: Fisher depends on the batch size: %.3g", l.Name, e)
		}
	}
	// K-FAC: batch-size invariance and symmetry.
	k1, err := FisherFromSequences(ref, seqs, FisherOptions{Kind: FisherKFAC, Blocks: 2, BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := FisherFromSequences(ref, seqs, FisherOptions{Kind: FisherKFAC, Blocks: 2, BatchSize: 3})
	for _, l := range layers {
		a, s := f64(t, k1.A[l.Name]), f64(t, k1.S[l.Name])
		if e := relErr(a, f64(t, k2.A[l.Name])) + relErr(s, f64(t, k2.S[l.Name])); e > 1e-12 {
			t.Errorf("%s: K-FAC depends on the batch size", l.Name)
		}
		for i := range l.In {
			for j := range l.In {
				if math.Abs(a[i*l.In+j]-a[j*l.In+i]) > 1e-14 {
					t.Fatalf("%s.A is not symmetric", l.Name)
				}
			}
		}
	}
}

// TestFisherFileAndErrors: save/load round trip, and the bad inputs of the issue.
func TestFisherFileAndErrors(t *testing.T) {
	fx := newFixture(t, model.Llama, FisherKFAC, 2)
	path := t.TempDir() + "/fisher.safetensors"
	if err := fx.fisher.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := LoadFisher(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Kind != FisherKFAC || back.Check(fx.cfg, 2) != nil {
		t.Fatalf("round trip: kind %s, check %v", back.Kind, back.Check(fx.cfg, 2))
	}
	if err := back.Check(fx.cfg, 3); err == nil || !strings.Contains(err.Error(), "covers blocks 1..2 (made with K = 2)") ||
		!strings.Contains(err.Error(), "use --k 1..2") || !strings.Contains(err.Error(), path) {
		t.Fatalf("K beyond the Fisher's blocks: want an error naming the blocks the file covers, got %v", err)
	}
	cfg := DefaultConfig()
	cfg.Fisher = FisherKFAC
	cfg.Blocks = 2
	wrong := newFixture(t, model.Llama, FisherDiag, 2).fisher
	if _, err := NewValuer(fx.lm, fx.ref, wrong, fx.val, cfg, 0); err == nil || !strings.Contains(err.Error(), "kfac") {
		t.Fatalf("kind mismatch: %v", err)
	}
	checks := map[string]func(c *Config){
		"unknown normalisation":  func(c *Config) { c.Normalize = "minmax" },
		"causal window W":        func(c *Config) { c.Window = 0 },
		"exceeds the model's 3":  func(c *Config) { c.Blocks = 4 },
		"λ must be":              func(c *Config) { c.Lambda = -1 },
		"unknown Fisher kind":    func(c *Config) { c.Fisher = "full" },
		"at least one of the di": func(c *Config) { c.Direct, c.Causal = false, false },
	}
	for want, mutate := range checks {
		c := cfg
		mutate(&c)
		if _, err := NewValuer(fx.lm, fx.ref, fx.fisher, fx.val, c, 0); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want error containing %q, got %v", want, err)
		}
	}
	noResp := []data.Example{{IDs: []int{1, 2, 3}, PromptLen: 3, Source: "val.jsonl:1"}}
	if _, err := NewValuer(fx.lm, fx.ref, fx.fisher, noResp, cfg, 0); err == nil || !strings.Contains(err.Error(), "no response tokens") {
		t.Errorf("validation without response tokens: %v", err)
	}
}
