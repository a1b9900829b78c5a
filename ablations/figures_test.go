package ablations

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alphatoken/alphatoken/plots"
)

// syntheticTable is a two-row table over seeds 1–3 with J_tgt curves (every 25 steps) and scores.
func syntheticTable() *Table {
	t := &Table{Suite: &Suite{Name: "main", Title: "t", Paired: "Random-ρ"}, Seeds: []int{1, 2, 3}}
	for ri, label := range []string{"Full FT", "Random-ρ"} {
		m := []string{"full", "random"}[ri]
		row := TableRow{Label: label, Method: m, Row: Row{Label: label, Method: m}}
		var tg, rt []float64
		for _, seed := range t.Seeds {
			run := &RunResult{Config: RunConfig{Seed: uint64(seed)}, Scores: &Scores{Target: float64(30 + 10*ri + seed), Retention: float64(20 - ri + seed)}}
			for step := 24; step < 300; step += 25 {
				run.Curve = append(run.Curve, CurvePoint{Step: step, JTgt: 2/(1+float64(step)/100) + 0.05*float64(seed+ri)})
			}
			row.Runs = append(row.Runs, run)
			tg, rt = append(tg, run.Scores.Target), append(rt, run.Scores.Retention)
		}
		row.Target, row.Retention = statOf(tg), statOf(rt)
		t.Rows = append(t.Rows, row)
	}
	return t
}

// TestFiguresWithIntervals: the trade-off figure says its bars are 95% t-intervals over the seeds;
// the J_tgt curves carry a band; both render. ALPHATOKEN_FIGURES=DIR keeps the PNGs for a look.
func TestFiguresWithIntervals(t *testing.T) {
	tab := syntheticTable()
	if got := seedsNote([]int{1, 2, 3, 4, 5}); got != "mean ± 95% t-interval over seeds 1–5" {
		t.Errorf("seedsNote: %q", got)
	}
	if got := seedsNote([]int{1}); !strings.Contains(got, "no interval") {
		t.Errorf("seedsNote one seed: %q", got)
	}
	if e := errOf(tab.Rows[0].Target); math.Abs(e-4.303*1/math.Sqrt(3)) > 1e-3 {
		t.Errorf("error bar %v, want the 95%% t half-width 4.303·1/√3", e)
	}
	to, err := TradeOffFigure("Adaptation vs retention", tab)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(to.Title.Text, "95% t-interval over seeds 1–3") {
		t.Errorf("trade-off title %q", to.Title.Text)
	}
	jt, err := JTgtCurvesFigure("J_tgt over training", tab)
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("ALPHATOKEN_FIGURES")
	for name, f := range map[string]plots.Figure{"tradeoff": to, "jtgt_curves": jt} {
		png, err := plots.PNG(f, 7, 4.5)
		if err != nil || len(png) < 1000 {
			t.Fatalf("%s: %d bytes, %v", name, len(png), err)
		}
		if dir != "" {
			_ = os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
		}
	}
	tab.Rows[1].Runs[0].Curve = nil // a run without J_tgt: its row has no step that every run logged
	tab.Rows[0].Runs[0].Curve = nil
	if _, err := JTgtCurvesFigure("J_tgt", tab); err == nil {
		t.Error("no curves: want an error")
	}
}
