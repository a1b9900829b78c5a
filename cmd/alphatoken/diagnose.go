package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gomlx/compute"

	"github.com/alphatoken/alphatoken/ablations"
	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/internal/atomicfile"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/plots"
)

func init() {
	register("diagnose", "SPEC §8 diagnostics and figures: value-propagation, fisher-proxy, coverage, stability, tradeoff, sensitivity, kept-types, one-step, value-dynamics, dpo-twins, dpo-components", runDiagnose)
}

var diagnoseKinds = []string{"value-propagation", "fisher-proxy", "coverage", "stability", "tradeoff", "sensitivity", "kept-types", "one-step", "value-dynamics", "dpo-twins", "dpo-components"}

// dpoTwinsRows are the rows of diagnose dpo-twins: the ranking suite's masks, the two objective
// variants that learn, and ConfPO's confidence mask (plain DPO keeps every twin in both branches).
var dpoTwinsRows = []ablations.DPORow{{Label: "Random-ρ", Method: "random"},
	{Label: "Top-ρ (AlphaToken)", Method: "alphatoken"}, {Label: "Bottom-ρ", Method: "bottom"},
	{Label: "Stability-only", Method: "stability-only"}, {Label: "Causal-only", Method: "causal-only"}, {Label: "ConfPO", Method: "confpo"}}

// keptTypesRows are the rows of diagnose kept-types: the main and ranking suites' selection methods.
var keptTypesRows = []ablations.Row{{Label: "Full FT", Method: "full"}, {Label: "Random-ρ", Method: "random"},
	{Label: "Bottom-ρ", Method: "bottom"}, {Label: "AlphaToken", Method: "alphatoken"},
	{Label: "AlphaToken, z-score", Method: "alphatoken", Overrides: ablations.Overrides{Normalize: ptr("zscore")}}}

func ptr[T any](v T) *T { return &v }

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
	seedList := fs.String("seeds", "", "tradeoff, sensitivity: comma-separated run seeds (mean ± 95% t-interval over them; default --seed)")
	runMethod := fs.String("model", "alphatoken", "which run's model is diagnosed (value-propagation, coverage): reference, full, random, alphatoken")
	pairs := fs.Int("pairs", 4000, "value-propagation: sampled (query, key) pairs")
	examples := fs.Int("examples", 24, "fisher-proxy, coverage: target training examples scored")
	steps := fs.Int("steps", 0, "kept-types, value-dynamics: SFT steps of each retrained run (default: the preset's, i.e. the suite's run)")
	window := fs.Int("window", 25, "kept-types, dpo-twins: steps per window of the decision share / one-sided twin share")
	points := fs.String("points", "reference,full", "one-step: the models stepped from, comma-separated: reference, or a method whose run (at --seed) gives its final model")
	sgdLR := fs.Float64("sgd-lr", 0.002, "one-step: η of the SGD step")
	adamLR := fs.Float64("adam-lr", 0, "one-step: η of the AdamW step (default: the preset's SFT learning rate)")
	warm := fs.Int("warm", 5, "one-step: full-batch AdamW steps that warm the optimizer state (θ is put back after)")
	every := fs.Int("every", 25, "value-dynamics: steps between snapshots of the probe batch's values")
	probe := fs.Int("probe", 16, "value-dynamics: training examples in the fixed probe batch")
	normalize := fs.String("normalize", "", "value-dynamics: the AlphaToken run's combination (none, zscore, rank; default the preset's)")
	testPairs := fs.Int("test-pairs", 32, "dpo-components: held-out test pairs valued")
	batches := fs.Int("batches", 4, "one-step: training batches, one step each from the same model; results are averaged")
	from := fs.String("from", "", "tradeoff, sensitivity, value-propagation, one-step: redraw the figures from the numbers saved in DIR "+
		"(the suites' tables <suite>.json, or value_propagation.json) instead of running anything")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !slices.Contains(diagnoseKinds, kind) {
		return fmt.Errorf("diagnose needs a diagnostic first, one of %s; got %q", strings.Join(diagnoseKinds, ", "), kind)
	}
	if err := checkFlags(atLeast("pairs", *pairs, 1), atLeast("examples", *examples, 1), atLeast("steps", *steps, 0), atLeast("window", *window, 1),
		atLeast("warm", *warm, 1), atLeast("every", *every, 1), atLeast("probe", *probe, 1), atLeast("batches", *batches, 1), atLeast("test-pairs", *testPairs, 1), positiveFloat("sgd-lr", *sgdLR), nonNegativeFloat("adam-lr", *adamLR)); err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join("runs", "diagnose", *preset)
	}
	if *from != "" {
		return redraw(kind, *from, *out, *runMethod, *seed)
	}
	announce(*out, *cache)
	backend, err := model.NewBackend(*backendSpec)
	if err != nil {
		return err
	}
	if kind == "dpo-twins" {
		return dpoTwins(backend, *preset, *cache, *out, *seed, *window, args)
	}
	if kind == "dpo-components" {
		return dpoComponents(backend, *preset, *cache, *out, *seed, *testPairs, args)
	}
	r, err := ablations.NewRunner(backend, *preset, *cache, os.Stderr)
	if err != nil {
		return err
	}
	row := func(method string) ablations.Row { return ablations.Row{Label: method, Method: method} }
	save := func(name string, fig plots.Figure, w, h float64, numbers any) error {
		return saveFigure(*out, name, fig, w, h, numbers)
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
		return drawValuePropagation(*out, *runMethod, *seed, vp)
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
	case "kept-types":
		res, err := r.KeptTypes(keptTypesRows, *seed, *steps, *window)
		if err != nil {
			return err
		}
		res.Command = "alphatoken diagnose kept-types " + strings.Join(args, " ")
		fmt.Print(res.Markdown())
		if err := atomicfile.WriteBytes(filepath.Join(*out, "kept_types.md"), []byte(res.Markdown())); err != nil {
			return err
		}
		if err := atomicfile.WriteBytes(filepath.Join(*out, "kept_types.csv"), []byte(res.CSV())); err != nil {
			return err
		}
		fig, err := ablations.KeptTypesFigure(res)
		if err != nil {
			return err
		}
		return save("kept_types", fig, 8, 4.8, res)
	case "value-dynamics":
		vrow := ablations.Row{Label: "AlphaToken", Method: "alphatoken"}
		if *normalize != "" {
			if !slices.Contains(alphatoken.Normalizations, alphatoken.Normalization(*normalize)) {
				return fmt.Errorf("--normalize %q: use none, zscore or rank", *normalize)
			}
			vrow.Label, vrow.Normalize = "AlphaToken, "+*normalize, normalize
		}
		res, err := r.ValueDynamics(vrow, *seed, *steps, *every, *probe)
		if err != nil {
			return err
		}
		res.Command = "alphatoken diagnose value-dynamics " + strings.Join(args, " ")
		fmt.Print(res.Markdown())
		if err := atomicfile.WriteBytes(filepath.Join(*out, "value_dynamics.md"), []byte(res.Markdown())); err != nil {
			return err
		}
		if err := atomicfile.WriteBytes(filepath.Join(*out, "value_dynamics.csv"), []byte(res.CSV())); err != nil {
			return err
		}
		fig, err := ablations.ValueDynamicsFigure(res)
		if err != nil {
			return err
		}
		return save("value_dynamics", fig, 8, 4.8, res)
	case "one-step":
		var labels []string
		var models []*model.LM
		for _, p := range strings.Split(*points, ",") {
			lm, _, err := r.RunModel(row(strings.TrimSpace(p)), *seed)
			if err != nil {
				return err
			}
			label := "reference"
			if p != "reference" {
				label = fmt.Sprintf("%s final model (seed %d)", p, *seed)
			}
			labels, models = append(labels, label), append(models, lm)
		}
		res, err := r.OneStep(labels, models, ablations.OneStepOptions{Seed: uint64(*seed), SGDLR: *sgdLR, AdamLR: *adamLR, Warm: *warm, Batches: *batches})
		if err != nil {
			return err
		}
		res.Command = "alphatoken diagnose one-step " + strings.Join(args, " ")
		fmt.Print(res.Markdown())
		if err := atomicfile.WriteBytes(filepath.Join(*out, "one_step.md"), []byte(res.Markdown())); err != nil {
			return err
		}
		if err := atomicfile.WriteBytes(filepath.Join(*out, "one_step.csv"), []byte(res.CSV())); err != nil {
			return err
		}
		return drawOneStep(*out, res)
	case "tradeoff", "sensitivity":
		suites := map[string][]string{"tradeoff": {"main", "ranking"}, "sensitivity": {"sensitivity"}}[kind]
		seeds := []int{*seed}
		if *seedList != "" {
			if seeds, err = parseSeeds(*seedList); err != nil {
				return err
			}
		}
		r.OneSeed = len(seeds) == 1 // a one-seed figure shows means only (its title says so)
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
		return drawTables(kind, *out, tables)
	}
	return fmt.Errorf("unknown diagnostic %q (%s)", kind, strings.Join(diagnoseKinds, ", "))
}

// saveFigure writes out/name.{png,svg} and the numbers drawn as out/name.json.
func saveFigure(out, name string, fig plots.Figure, w, h float64, numbers any) error {
	if err := plots.Save(fig, w, h, filepath.Join(out, name)); err != nil {
		return err
	}
	b, err := json.MarshalIndent(numbers, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(out, name+".json"), b); err != nil {
		return err
	}
	logf("wrote %s/%s.{png,svg,json}", out, name)
	return nil
}

func drawValuePropagation(out, runMethod string, seed int, vp *ablations.ValuePropagationResult) error {
	fig, err := ablations.ValuePropagationFigure(fmt.Sprintf("Value propagation, last %d blocks (%s model, seed %d)", vp.Blocks, runMethod, seed), vp)
	if err != nil {
		return err
	}
	return saveFigure(out, "value_propagation", fig, 7.5, 5, vp)
}

// drawTables draws the trade-off (with the training curves: the unmasked loss, and J_tgt when the
// runs logged it) or the sensitivity figure from the suites' tables.
func drawTables(kind, out string, tables []*ablations.Table) error {
	preset := tables[0].Preset.Name
	if kind == "sensitivity" {
		fig, err := ablations.SensitivityFigure(fmt.Sprintf("Sensitivity (MiniBench %s)", preset), tables[0])
		if err != nil {
			return err
		}
		return saveFigure(out, "sensitivity", fig, 12, 7, tables[0].Rows)
	}
	fig, err := ablations.TradeOffFigure(fmt.Sprintf("Adaptation vs retention (MiniBench %s)", preset), tables...)
	if err != nil {
		return err
	}
	if err := saveFigure(out, "tradeoff", fig, 7, 5.2, tables[0].Rows); err != nil {
		return err
	}
	curves, bands, err := ablations.CurvesFigure("Training curves (main table)", tables[0], ablations.CurveFullLoss)
	if err != nil {
		return err
	}
	if err := saveFigure(out, "training_curves", curves, 7, 4.7, bands); err != nil {
		return err
	}
	if len(ablations.CurveBands(tables[0], ablations.CurveJTgt)) == 0 {
		logf("the main table's runs logged no J_tgt: no jtgt_curves figure")
		return nil
	}
	jt, bands, err := ablations.CurvesFigure("Target validation loss J_tgt during training (main table)", tables[0], ablations.CurveJTgt)
	if err != nil {
		return err
	}
	return saveFigure(out, "jtgt_curves", jt, 7, 4.7, bands)
}

// redraw draws a figure again from the numbers a run of diagnose or ablate saved, without a model.
func redraw(kind, from, out, runMethod string, seed int) error {
	switch kind {
	case "tradeoff", "sensitivity":
		suites := map[string][]string{"tradeoff": {"main", "ranking"}, "sensitivity": {"sensitivity"}}[kind]
		var tables []*ablations.Table
		for _, name := range suites {
			t, err := ablations.LoadTable(filepath.Join(from, name+".json"))
			if err != nil {
				return err
			}
			tables = append(tables, t)
		}
		return drawTables(kind, out, tables)
	case "value-propagation":
		path := filepath.Join(from, "value_propagation.json")
		var vp ablations.ValuePropagationResult
		if err := readSaved(path, &vp); err != nil {
			return err
		}
		if len(vp.Pairs) == 0 {
			return fmt.Errorf("--from: %s holds no pairs", path)
		}
		return drawValuePropagation(out, runMethod, seed, &vp) // the file does not record them: --model and --seed say
	case "one-step":
		path := filepath.Join(from, "one_step_sgd.json") // both files hold the whole result
		var res ablations.OneStepResult
		if err := readSaved(path, &res); err != nil {
			return err
		}
		if len(res.Rows) == 0 {
			return fmt.Errorf("--from: %s holds no rows", path)
		}
		return drawOneStep(out, &res)
	}
	return fmt.Errorf("--from: diagnose %s has no saved numbers to redraw (only tradeoff, sensitivity, value-propagation, one-step)", kind)
}

// readSaved reads the numbers a figure was drawn from (its .json) into v.
func readSaved(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("--from: %s: %w", path, err)
	}
	return nil
}

// drawOneStep draws the one-step figures (SGD and AdamW), one panel per model point.
func drawOneStep(out string, res *ablations.OneStepResult) error {
	points := map[string]bool{}
	for _, r := range res.Rows {
		points[r.Point] = true
	}
	h := 2.8 * float64((len(points)+1)/2)
	for _, opt := range []string{"sgd", "adamw"} {
		fig, err := ablations.OneStepFigure(res, opt)
		if err != nil {
			return err
		}
		if err := saveFigure(out, "one_step_"+opt, fig, 9, h+0.6, res); err != nil {
			return err
		}
	}
	return nil
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

// dpoComponents runs diagnose dpo-components: the scale of AlphaToken-DPO's four components at the
// warm-start and at the end of the cached AlphaToken run, and how often the stability term changes
// a keep decision.
func dpoComponents(backend compute.Backend, preset, cache, out string, seed, pairs int, args []string) error {
	d, err := ablations.NewDPORunner(backend, preset, cache, os.Stderr)
	if err != nil {
		return err
	}
	res, err := d.Components(seed, pairs)
	if err != nil {
		return err
	}
	res.Command = "alphatoken diagnose dpo-components " + strings.Join(args, " ")
	fmt.Print(res.Markdown())
	return res.Write(out)
}

// dpoTwins runs diagnose dpo-twins: how each DPO mask treats the pairs' shared response prefix.
func dpoTwins(backend compute.Backend, preset, cache, out string, seed, window int, args []string) error {
	d, err := ablations.NewDPORunner(backend, preset, cache, os.Stderr)
	if err != nil {
		return err
	}
	res, err := d.Twins(dpoTwinsRows, seed, window)
	if err != nil {
		return err
	}
	res.Command = "alphatoken diagnose dpo-twins " + strings.Join(args, " ")
	fmt.Print(res.Markdown())
	if err := atomicfile.WriteBytes(filepath.Join(out, "dpo_twins.md"), []byte(res.Markdown())); err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(out, "dpo_twins.csv"), []byte(res.CSV())); err != nil {
		return err
	}
	fig, err := ablations.TwinsFigure(res)
	if err != nil {
		return err
	}
	return saveFigure(out, "dpo_twins", fig, 8, 4.8, res)
}
