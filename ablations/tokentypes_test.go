package ablations

import (
	"math"
	"strings"
	"testing"
)

// TestKeptTypes: on the tiny test preset, the decision classes match the rule on each response's
// text; Random-ρ keeps about ρ of the tokens; every share is a percentage; Full FT's line is the
// batches' share and comes first; the outputs render.
func TestKeptTypes(t *testing.T) {
	r := testRunner(t)
	classes, share, err := r.DecisionClasses(r.TrainExamples())
	if err != nil {
		t.Fatal(err)
	}
	if !(share > 0.05 && share < 0.6) {
		t.Fatalf("decision share of the training data %.3f: the rule marks too few or too many tokens", share)
	}
	ex := r.TrainExamples()[0]
	resp := r.Tok.Decode(ex.Response())
	var marked strings.Builder
	for j := range ex.Response() {
		if classes.Values[0][ex.PromptLen+j-1] == 1 {
			marked.WriteString(r.Tok.Decode([]int{ex.Response()[j]}))
		}
	}
	if !strings.HasPrefix(resp, "def f(x):") || strings.ContainsAny(marked.String(), "\n :()") {
		t.Fatalf("decision tokens %q of %q", marked.String(), resp)
	}
	res, err := r.KeptTypes([]Row{{Label: "Full FT", Method: "full"}, {Label: "Random-ρ", Method: "random"},
		{Label: "AlphaToken", Method: "alphatoken"}}, 1, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Series) != 3 || res.Series[0].Method != "full" || len(res.Series[1].Steps) != 2 {
		t.Fatalf("series: %+v", res.Series)
	}
	for _, s := range res.Series {
		for i, d := range s.Decision {
			if !(d >= 0 && d <= 100) || math.IsNaN(d) {
				t.Fatalf("%s window %d: share %v", s.Label, i, d)
			}
		}
	}
	for _, k := range res.Series[1].Kept {
		if math.Abs(k-50) > 5 {
			t.Fatalf("Random-ρ kept %v%% of the tokens, want ≈ 50", k)
		}
	}
	if _, err := KeptTypesFigure(res); err != nil {
		t.Fatal(err)
	}
	if md := res.Markdown(); !strings.Contains(md, "| AlphaToken |") || !strings.Contains(res.CSV(), "Random-ρ,random,4,") {
		t.Fatalf("outputs:\n%s\n%s", md, res.CSV())
	}
	if _, err := r.KeptTypes([]Row{{Label: "Full FT", Method: "full"}}, 1, 2, 1); err == nil {
		t.Fatal("Full FT alone: want an error (its share comes from another run's batches)")
	}
}
