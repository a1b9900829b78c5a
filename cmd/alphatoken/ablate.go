package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/alphatoken/alphatoken/ablations"
	"github.com/alphatoken/alphatoken/model"
)

func init() {
	register("ablate", "run ablation suites on MiniBench and write the tables (Markdown, CSV, JSON)", runAblate)
	register("demo", "the README's main job: MiniBench mini preset, main table and ranking test, one seed", runDemo)
	register("report", "regenerate ablation tables from cached runs only (an error names a missing run, unless --train)", runReport)
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, strings.Split(v, ",")...); return nil }

// suiteFlags are the flags ablate and report share.
type suiteFlags struct {
	suites                    stringList
	preset, seeds, out, cache *string
	steps                     *int
}

func addSuiteFlags(fs *flag.FlagSet, presetHelp, seedsHelp, outHelp, stepsHelp string) *suiteFlags {
	f := &suiteFlags{}
	fs.Var(&f.suites, "suite", "suite name ("+strings.Join(ablations.SuiteNames(), ", ")+", or all) or a suite .json file; repeatable")
	f.preset = fs.String("preset", "mini", "MiniBench preset: "+strings.Join(ablations.PresetNames(), ", ")+presetHelp)
	f.seeds = fs.String("seeds", "1,2,3,4,5", seedsHelp)
	f.out = fs.String("out", "", outHelp)
	f.cache = fs.String("cache", defaultCache(), cacheUsage)
	f.steps = fs.Int("steps", 0, stepsHelp)
	return f
}

// check validates the parsed flags and fills the default --out.
func (f *suiteFlags) check() error {
	if *f.steps < 0 {
		return fmt.Errorf("--steps must be ≥ 0, got %d", *f.steps)
	}
	if len(f.suites) == 0 {
		return fmt.Errorf("--suite is required (%s, all)", strings.Join(ablations.SuiteNames(), ", "))
	}
	if *f.out == "" {
		*f.out = filepath.Join("runs", "ablate", *f.preset)
	}
	return nil
}

func runAblate(args []string) error {
	fs, backendSpec := newFlags("ablate", "--suite NAME|FILE.json [--suite ...] [flags]")
	f := addSuiteFlags(fs, " (the -adapt presets: the adapt regime)",
		"comma-separated seeds (each trained row runs once per seed; at least 2, or --one-seed)",
		"directory for the tables (default runs/ablate/<preset>; the committed tables are regenerated with --out ablations/results/<preset>)",
		"SFT steps of every run instead of the preset's (quick smoke runs; cached apart)")
	oneSeed := fs.Bool("one-seed", false, "allow a single seed: the tables show means only, marked as a demonstration (otherwise fewer than 2 seeds is an error: intervals need 2)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	return ablate(*backendSpec, f.suites, *f.preset, *f.seeds, *f.out, *f.cache, *f.steps, ablateMode{oneSeed: *oneSeed}, "alphatoken ablate "+strings.Join(args, " "))
}

// runReport is ablate over cached runs only: it regenerates tables (with their intervals and paired
// differences) without training, unless --train.
func runReport(args []string) error {
	fs, backendSpec := newFlags("report", "--preset P --suite NAME [--suite ...] --seeds 1,2,3,4,5 --out DIR")
	f := addSuiteFlags(fs, "", "comma-separated seeds (at least 2: every cell is a mean with its 95% interval)",
		"directory for the tables (default runs/ablate/<preset>)", "SFT steps of the runs, if they were trained with ablate --steps")
	trainMissing := fs.Bool("train", false, "train the runs missing from the cache instead of failing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	return ablate(*backendSpec, f.suites, *f.preset, *f.seeds, *f.out, *f.cache, *f.steps, ablateMode{cacheOnly: !*trainMissing}, "alphatoken report "+strings.Join(args, " "))
}

// ablateMode: oneSeed allows a single seed (means only); cacheOnly refuses to train.
type ablateMode struct{ oneSeed, cacheOnly bool }

func runDemo(args []string) error {
	fs, backendSpec := newFlags("demo", "[flags]")
	out := fs.String("out", filepath.Join("runs", "demo"), "directory for the tables")
	cache := fs.String("cache", defaultCache(), cacheUsage)
	seeds := fs.String("seeds", "1", "comma-separated seeds")
	preset := fs.String("preset", "mini", "MiniBench preset: "+strings.Join(ablations.PresetNames(), ", "))
	if err := fs.Parse(args); err != nil {
		return err
	}
	return ablate(*backendSpec, []string{"main", "ranking"}, *preset, *seeds, *out, *cache, 0, ablateMode{oneSeed: true}, "alphatoken demo "+strings.Join(args, " "))
}

// cacheUsage documents the run cache for -h.
const cacheUsage = "cache of reference models, Fisher files and runs, reused and resumed (default $ALPHATOKEN_CACHE, else .cache/alphatoken under the current directory)"

// defaultCache is $ALPHATOKEN_CACHE, else .cache/alphatoken under the current directory (where the
// notebooks, run from the repository, find the same cache).
func defaultCache() string {
	if c := os.Getenv("ALPHATOKEN_CACHE"); c != "" {
		return c
	}
	return filepath.Join(".cache", "alphatoken")
}

func ablate(backendSpec string, suites []string, preset, seedList, out, cache string, steps int, mode ablateMode, command string) error {
	start := time.Now()
	seeds, err := parseSeeds(seedList)
	if err != nil {
		return err
	}
	if len(suites) == 1 && suites[0] == "all" {
		suites = ablations.SuiteNames()
	}
	if len(seeds) < 2 && !mode.oneSeed {
		return fmt.Errorf("--seeds %s: every cell is a mean with its 95%% interval over seeds, which needs at least 2 (pass --one-seed for means only, a demonstration)", seedList)
	}
	if _, err := ablations.PresetByName(preset); err != nil {
		return err
	}
	var loaded []*ablations.Suite
	for _, name := range suites { // validate every suite before any training
		s, err := ablations.LoadSuite(name)
		if err != nil {
			return err
		}
		loaded = append(loaded, s)
	}
	backend, err := model.NewBackend(backendSpec)
	if err != nil {
		return err
	}
	announce(out, cache)
	newRunner := ablations.NewRunner
	if mode.cacheOnly {
		newRunner = ablations.NewCachedRunner
	}
	r, err := newRunner(backend, preset, cache, os.Stderr)
	if err != nil {
		return err
	}
	r.Steps, r.OneSeed = steps, mode.oneSeed
	var tables []*ablations.Table
	for _, s := range loaded {
		t, err := r.RunSuite(s, seeds)
		if err != nil {
			return err
		}
		t.Command = strings.TrimSpace(command)
		if err := t.Write(out); err != nil {
			return err
		}
		fmt.Fprintf(os.Stdout, "\n%s\n", t.Markdown())
		logf("wrote %s/%s.{md,csv,json}", out, s.Name)
		tables = append(tables, t)
	}
	if len(tables) > 1 { // runs shared between the tables are counted once
		fmt.Fprintf(os.Stdout, "All %d tables: %s", len(tables), ablations.TablesCompute(tables...))
	}
	logf("done in %s", time.Since(start).Round(time.Second))
	return nil
}

// parseSeeds reads a --seeds list such as "1,2,3".
func parseSeeds(list string) ([]int, error) {
	var seeds []int
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("--seeds: %q is not an integer", s)
		}
		seeds = append(seeds, n)
	}
	return seeds, nil
}

// announce prints where a command writes and which run cache it uses (absolute paths).
func announce(out, cache string) {
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	logf("writing to %s; run cache %s (--cache, $ALPHATOKEN_CACHE)", abs(out), abs(cache))
}
