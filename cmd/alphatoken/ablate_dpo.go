package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/alphatoken/alphatoken/ablations"
	"github.com/alphatoken/alphatoken/internal/atomicfile"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/plots"
)

func init() {
	register("ablate-dpo", "run DPO suites on the preference MiniBench and write the tables, the trade-off figure and the cost table", runAblateDPO)
}

// dpoTableSuites are the method tables `--suite all` runs (the calibration suite is run by name).
var dpoTableSuites = []string{"main", "ranking", "objectives", "thresholds", "coefficient"}

func runAblateDPO(args []string) error {
	fs, backendSpec := newFlags("ablate-dpo", "--suite NAME|FILE.json [--suite ...] [flags]")
	var suites stringList
	fs.Var(&suites, "suite", "DPO suite ("+strings.Join(ablations.DPOSuiteNames(), ", ")+"; all: "+strings.Join(dpoTableSuites, ", ")+") or a suite .json file; repeatable")
	preset := fs.String("preset", "mini", "MiniBench preset with a DPO stage: "+strings.Join(dpoPresetNames(), ", "))
	seeds := fs.String("seeds", "1,2,3,4,5", "comma-separated seeds, at least 2 (each trained row runs once per seed; tables give 95% t-intervals)")
	out := fs.String("out", "", "directory for the tables and figures (default runs/ablate-dpo/<preset>; the committed ones are regenerated with --out ablations/results/<preset>-dpo)")
	cache := fs.String("cache", defaultCache(), cacheUsage)
	steps := fs.Int("steps", 0, "DPO steps of every run instead of the preset's (quick smoke runs; cached apart; 0: the preset's)")
	figures := fs.Bool("figures", true, "draw the trade-off figure (preference vs retention) from every DPO table in --out")
	cost := fs.Bool("cost", false, "also measure the cost table: every main-table method's step in one run (cost.{md,csv,json})")
	costRounds := fs.Int("cost-rounds", 3, "cost: interleaved rounds (4 steps per method each)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (suites are given with --suite)", fs.Arg(0))
	}
	if err := checkFlags(zeroOrAtLeast("steps", *steps, 1, "the preset's"), atLeast("cost-rounds", *costRounds, 1)); err != nil {
		return err
	}
	if len(suites) == 0 && !*cost {
		return fmt.Errorf("--suite is required (%s, all), or --cost", strings.Join(ablations.DPOSuiteNames(), ", "))
	}
	dp, err := ablations.DPOPresetByName(*preset)
	if err != nil {
		return err
	}
	seedList, err := parseSeeds(*seeds)
	if err != nil {
		return err
	}
	if err := ablations.CheckSeeds(seedList); err != nil {
		return fmt.Errorf("--seeds: %w", err)
	}
	if len(suites) == 1 && suites[0] == "all" {
		suites = slices.Clone(dpoTableSuites)
	}
	var loaded []*ablations.DPOSuite
	for _, name := range suites { // every suite is validated before any training
		s, err := ablations.LoadDPOSuite(name)
		if err != nil {
			return err
		}
		if err := ablations.CheckCalibrated(dp, *preset, s); err != nil {
			return err
		}
		loaded = append(loaded, s)
	}
	if *out == "" {
		*out = filepath.Join("runs", "ablate-dpo", *preset)
	}
	command := strings.TrimSpace("alphatoken ablate-dpo " + strings.Join(args, " "))
	start := time.Now()
	backend, err := model.NewBackend(*backendSpec)
	if err != nil {
		return err
	}
	announce(*out, *cache)
	r, err := ablations.NewDPORunner(backend, *preset, *cache, os.Stderr)
	if err != nil {
		return err
	}
	r.DPOSteps = *steps
	for _, s := range loaded {
		t, err := r.RunDPOSuite(s, seedList)
		if err != nil {
			return err
		}
		t.Command = command
		if err := t.Write(*out); err != nil {
			return err
		}
		fmt.Fprintf(os.Stdout, "\n%s\n", t.Markdown())
		logf("wrote %s/%s.{md,csv,json}", *out, s.Name)
	}
	if *figures && len(loaded) > 0 {
		if err := dpoFigures(*out); err != nil {
			return err
		}
	}
	if *cost {
		main, err := ablations.LoadDPOSuite("main")
		if err != nil {
			return err
		}
		c, err := r.MeasureDPOCost(main.Rows, *costRounds, 4)
		if err != nil {
			return err
		}
		c.Command = command
		if err := c.Write(*out); err != nil {
			return err
		}
		fmt.Fprintf(os.Stdout, "\n%s\n", c.Markdown())
		logf("wrote %s/cost.{md,csv,json}", *out)
	}
	logf("done in %s", time.Since(start).Round(time.Second))
	return nil
}

func dpoPresetNames() []string {
	var names []string
	for n := range ablations.DPOPresets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// dpoFigureSuites are the tables the trade-off figure draws: the threshold and coefficient tables'
// variants are small changes of AlphaToken-DPO whose points would sit on its own; their tables say it.
var dpoFigureSuites = []string{"main", "ranking", "objectives"}

// dpoFigures draws the trade-off figure from the method tables present in dir (figures/tradeoff)
// and the held-out pair curves of the main table (figures/pair_curves).
func dpoFigures(dir string) error {
	var tables []*ablations.DPOTable
	for _, name := range dpoFigureSuites {
		p := filepath.Join(dir, name+".json")
		if _, err := os.Stat(p); err != nil {
			continue
		}
		t, err := ablations.LoadDPOTable(p)
		if err != nil {
			return err
		}
		tables = append(tables, t)
	}
	if len(tables) == 0 {
		return nil
	}
	figDir := filepath.Join(dir, "figures")
	save := func(name string, fig plots.Figure, numbers any) error {
		if err := plots.Save(fig, 7, 5, filepath.Join(figDir, name)); err != nil {
			return err
		}
		b, err := json.MarshalIndent(numbers, "", "  ")
		if err != nil {
			return err
		}
		if err := atomicfile.WriteBytes(filepath.Join(figDir, name+".json"), append(b, '\n')); err != nil {
			return err
		}
		logf("wrote %s/%s.{png,svg,json}", figDir, name)
		return nil
	}
	fig, err := ablations.DPOTradeOffFigure("DPO on the preference MiniBench", tables...)
	if err != nil {
		return err
	}
	if err := save("tradeoff", fig, ablations.DPOTradeOffPoints(tables...)); err != nil {
		return err
	}
	if tables[0].Suite.Name == "main" {
		curves, err := ablations.DPOCurvesFigure("Held-out pair reward accuracy during DPO", tables[0])
		if err == nil {
			return save("pair_curves", curves, map[string]any{"table": "main", "seeds": tables[0].Seeds})
		}
		logf("no pair curves: %v", err)
	}
	return nil
}
