package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/alphatoken/alphatoken/ablations"
	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/internal/atomicfile"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/plots"
)

func init() {
	register("diagnose", "SPEC §8 diagnostics and figures: value-propagation, fisher-proxy, coverage, stability, tradeoff, sensitivity", runDiagnose)
}

var diagnoseKinds = []string{"value-propagation", "fisher-proxy", "coverage", "stability", "tradeoff", "sensitivity"}

func runDiagnose(args []string) error {
	kind := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		kind, args = args[0], args[1:]
	}
	fs, backendSpec := newFlags("diagnose", "<"+strings.Join(diagnoseKinds, "|")+"> [flags]")
	preset := fs.String("preset", "mini", "MiniBench preset whose reference model and runs are used (trained if not cached): "+strings.Join(ablations.PresetNames(), ", "))
	out := fs.String("out", "", "output directory (default runs/diagnose/<preset>; the committed figures are regenerated with --out ablations/results/<preset>/figures)")
	cache := fs.String("cache", defaultCache(), cacheUsage)
	seed := fs.Int("seed", 1, "run seed / sampling seed")
	seedList := fs.String("seeds", "", "tradeoff, sensitivity: comma-separated run seeds (mean ± std over them; default --seed)")
	runMethod := fs.String("model", "alphatoken", "which run's model is diagnosed (value-propagation, coverage): reference, full, random, alphatoken")
	pairs := fs.Int("pairs", 4000, "value-propagation: sampled (query, key) pairs")
	examples := fs.Int("examples", 24, "fisher-proxy, coverage: target training examples scored")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !slices.Contains(diagnoseKinds, kind) {
		return fmt.Errorf("diagnose needs a diagnostic first, one of %s; got %q", strings.Join(diagnoseKinds, ", "), kind)
	}
	if err := checkFlags(atLeast("pairs", *pairs, 1), atLeast("examples", *examples, 1)); err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join("runs", "diagnose", *preset)
	}
	announce(*out, *cache)
	backend, err := model.NewBackend(*backendSpec)
	if err != nil {
		return err
	}
	r, err := ablations.NewRunner(backend, *preset, *cache, os.Stderr)
	if err != nil {
		return err
	}
	row := func(method string) ablations.Row { return ablations.Row{Label: method, Method: method} }
	save := func(name string, fig plots.Figure, w, h float64, numbers any) error {
		if err := plots.Save(fig, w, h, filepath.Join(*out, name)); err != nil {
			return err
		}
		b, err := json.MarshalIndent(numbers, "", "  ")
		if err != nil {
			return err
		}
		if err := atomicfile.WriteBytes(filepath.Join(*out, name+".json"), b); err != nil {
			return err
		}
		logf("wrote %s/%s.{png,svg,json}", *out, name)
		return nil
	}
	switch kind {
	case "value-propagation":
		lm, res, err := r.RunModel(row(*runMethod), *seed)
		if err != nil {
			return err
		}
		vp, err := r.ValuePropagation(lm, res.Dir, *pairs, uint64(*seed))
		if err != nil {
			return err
		}
		fmt.Printf("value propagation (%s model, last %d blocks, %d pairs): low-risk share %.3f (A ≤ %.2g or |v−u| ≤ %.3g); "+
			"the low-risk pairs carry %.3f of the omitted score-path mass\n", *runMethod, vp.Blocks, len(vp.Pairs),
			vp.LowRiskShare, vp.AThreshold, vp.DevThreshold, vp.OmittedShare)
		fig, err := ablations.ValuePropagationFigure(fmt.Sprintf("Value propagation, last %d blocks (%s model)", vp.Blocks, *runMethod), vp)
		if err != nil {
			return err
		}
		return save("value_propagation", fig, 7, 5, vp)
	case "fisher-proxy":
		lm, _, err := r.RunModel(row("full"), *seed) // a model drifted from the reference
		if err != nil {
			return err
		}
		var results []*ablations.FidelityResult
		for _, k := range []alphatoken.FisherKind{alphatoken.FisherDiag, alphatoken.FisherKFAC, alphatoken.FisherNone} {
			fr, err := r.FisherFidelity(lm, k, *examples, uint64(*seed))
			if err != nil {
				return err
			}
			fmt.Printf("%-5s Fisher: Spearman %.3f, Pearson %.3f, top-ρ overlap %.3f (random %.2f) over %d tokens\n",
				k, fr.Spearman, fr.Pearson, fr.AtRho, fr.Rho, len(fr.Oracle))
			results = append(results, fr)
		}
		scatter, overlap, bars, err := ablations.FidelityFigures(results)
		if err != nil {
			return err
		}
		if err := save("fisher_proxy_scatter", scatter, 6, 5, results[0]); err != nil {
			return err
		}
		if err := save("fisher_proxy_overlap", overlap, 6, 4.5, results); err != nil {
			return err
		}
		return save("fisher_proxy_kinds", bars, 5, 4, summarise(results))
	case "coverage":
		lm, _, err := r.RunModel(row(*runMethod), *seed)
		if err != nil {
			return err
		}
		cov, err := r.Coverage(lm, *examples, 16, uint64(*seed))
		if err != nil {
			return err
		}
		for _, m := range cov.Methods {
			fmt.Printf("%-20s reaches %.2f of %d k-means clusters\n", m, cov.Coverage[m], cov.Clusters)
		}
		fig, err := ablations.CoverageFigure("Token coverage: t-SNE of response-token hidden states", cov)
		if err != nil {
			return err
		}
		return save("coverage", fig, 12, 4.3, cov)
	case "stability":
		models := map[string]*model.LM{}
		labels := map[string]string{"full": "Full FT", "random": "Random-ρ", "alphatoken": "AlphaToken"}
		var order []string
		for _, m := range []string{"full", "random", "alphatoken"} {
			lm, _, err := r.RunModel(row(m), *seed)
			if err != nil {
				return err
			}
			models[labels[m]] = lm
			order = append(order, labels[m])
		}
		st, err := r.Stability(models, order, 64)
		if err != nil {
			return err
		}
		for _, m := range order {
			fmt.Printf("%-12s CKA per layer: %s\n", m, fmtFloats(st.CKA[m]))
		}
		fig, err := ablations.StabilityFigure("Representation stability on HellaSwag-role probes (linear CKA vs reference)", st)
		if err != nil {
			return err
		}
		return save("stability", fig, 6, 4.5, st)
	case "tradeoff", "sensitivity":
		suites := map[string][]string{"tradeoff": {"main", "ranking"}, "sensitivity": {"sensitivity"}}[kind]
		seeds := []int{*seed}
		if *seedList != "" {
			if seeds, err = parseSeeds(*seedList); err != nil {
				return err
			}
		}
		var tables []*ablations.Table
		for _, name := range suites {
			s, err := ablations.LoadSuite(name)
			if err != nil {
				return err
			}
			t, err := r.RunSuite(s, seeds)
			if err != nil {
				return err
			}
			tables = append(tables, t)
		}
		if kind == "tradeoff" {
			fig, err := ablations.TradeOffFigure(fmt.Sprintf("Adaptation vs retention (MiniBench %s)", *preset), tables...)
			if err != nil {
				return err
			}
			if err := save("tradeoff", fig, 7, 5, tables[0].Rows); err != nil {
				return err
			}
			curves, err := ablations.CurvesFigure("Training curves (main table)", tables[0])
			if err != nil {
				return err
			}
			return save("training_curves", curves, 7, 4.5, nil)
		}
		fig, err := ablations.SensitivityFigure(fmt.Sprintf("Sensitivity (MiniBench %s)", *preset), tables[0])
		if err != nil {
			return err
		}
		return save("sensitivity", fig, 12, 7, tables[0].Rows)
	}
	return fmt.Errorf("unknown diagnostic %q (%s)", kind, strings.Join(diagnoseKinds, ", "))
}

func summarise(rs []*ablations.FidelityResult) []map[string]any {
	var out []map[string]any
	for _, r := range rs {
		sp := any(r.Spearman)
		if math.IsNaN(r.Spearman) {
			sp = nil
		}
		out = append(out, map[string]any{"kind": r.Kind, "spearman": sp, "overlap_at_rho": r.AtRho, "tokens": len(r.Oracle)})
	}
	return out
}

func fmtFloats(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.3f", x)
	}
	return strings.Join(parts, " ")
}
