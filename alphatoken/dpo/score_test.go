package dpo

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/model"
)

// TestScorePairs: Score's components are those of Build with ω = ±w·a computed on the host (the
// valuation itself is checked against materialised gradients in package alphatoken), its J_tgt
// is the host DPO loss of the validation pairs, every token carries its pair, branch and the
// pair's w, and each branch keeps floor(ρN+0.5) of its tokens (separate) or the set does (shared).
func TestScorePairs(t *testing.T) {
	fx := newFixture(t, 4)
	val := newFixture(t, 2) // other pairs (same weights): the validation set
	for _, c := range []Config{DefaultConfig(), {Beta: 0.3, Loss: LossIPO, Threshold: Shared, Coefficient: Unmasked}} {
		obj, err := Objective(c, val.examples, val.refNLL, 32, 64, 0)
		if err != nil {
			t.Fatal(err)
		}
		vc := alphatoken.DefaultConfig()
		vc.Blocks, vc.Window, vc.Fisher, vc.Stability = 2, 4, alphatoken.FisherNone, false
		v, err := alphatoken.NewValuerFor(fx.lm, nil, nil, obj, vc, 0)
		if err != nil {
			t.Fatal(err)
		}
		scores, err := Score(v, c, fx.examples, fx.refNLL, alphatoken.ScoreOptions{BatchSize: 4, Rho: 0.5})
		if err != nil {
			t.Fatal(err)
		}
		// J_tgt against the host.
		j, err := v.RefreshValidationGradient()
		if err != nil {
			t.Fatal(err)
		}
		vh := val.host(t, c)
		var want float64
		for _, d := range vh.delta {
			l, _ := hostLoss(c, d)
			want += l / float64(vh.n)
		}
		if math.Abs(j-want) > 1e-12 {
			t.Errorf("%s: J_tgt %.15g, host %.15g", c.Loss, j, want)
		}
		// Components against Build with host ω.
		hs := fx.host(t, c)
		b := fx.batch
		omega := make([][]float64, len(b.Weights))
		ws := make([]float64, hs.n)
		for i, d := range hs.delta {
			_, ws[i] = hostLoss(c, d)
		}
		for r := range omega {
			omega[r] = make([]float64, b.T())
			sign, pair := 1.0, r
			if r >= hs.n {
				sign, pair = -1, r-hs.n
			}
			for p := range omega[r] {
				omega[r][p] = sign * ws[pair] * hs.a[r][p]
			}
		}
		exec, err := model.NewStoreExec(fx.lm.Backend, fx.lm.Store, "build", func(_ *gm.Scope, g *Graph, in []*Node) []*Node {
			ev := v.Build(fx.lm.Weights(g), in[0], in[1], in[2])
			return []*Node{ev.TgtDir, ev.TgtCau}
		})
		if err != nil {
			t.Fatal(err)
		}
		res, err := exec.Call(b.Tokens, b.Targets, omega)
		if err != nil {
			t.Fatal(err)
		}
		dir, _ := model.TensorFloat64(res[0])
		cau, _ := model.TensorFloat64(res[1])
		count, kept := map[string]int{}, map[string]int{}
		for _, s := range scores {
			row := s.Pair
			if s.Branch == "rejected" {
				row += hs.n
			}
			j := row*b.T() + s.Pos
			if math.Abs(s.DirTgt-dir[j]) > 1e-12*(1+math.Abs(dir[j])) || math.Abs(s.CauTgt-cau[j]) > 1e-12*(1+math.Abs(cau[j])) {
				t.Fatalf("%s: pair %d %s pos %d: components %g %g, Build with host ω %g %g", c.Loss, s.Pair, s.Branch, s.Pos, s.DirTgt, s.CauTgt, dir[j], cau[j])
			}
			if math.Abs(s.W-ws[s.Pair]) > 1e-12 {
				t.Fatalf("%s: pair %d: w %g, host %g", c.Loss, s.Pair, s.W, ws[s.Pair])
			}
			count[s.Branch]++
			if s.Kept {
				kept[s.Branch]++
			}
		}
		if c.Threshold == Separate {
			for _, br := range []string{"chosen", "rejected"} {
				if kept[br] != alphatoken.KeepCount(0.5, count[br]) {
					t.Errorf("%s: kept %d of %d", br, kept[br], count[br])
				}
			}
		} else if kept["chosen"]+kept["rejected"] != alphatoken.KeepCount(0.5, count["chosen"]+count["rejected"]) {
			t.Errorf("shared: kept %v of %v", kept, count)
		}
	}
}
