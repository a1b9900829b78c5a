package main

import (
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
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, strings.Split(v, ",")...); return nil }

func runAblate(args []string) error {
	fs, backendSpec := newFlags("ablate", "--suite NAME|FILE.json [--suite ...] [flags]")
	var suites stringList
	fs.Var(&suites, "suite", "suite name ("+strings.Join(ablations.SuiteNames(), ", ")+", or all) or a suite .json file; repeatable")
	preset := fs.String("preset", "mini", "MiniBench preset: "+strings.Join(ablations.PresetNames(), ", ")+" (the -adapt presets: the adapt regime)")
	seeds := fs.String("seeds", "1", "comma-separated seeds (each trained row runs once per seed)")
	out := fs.String("out", "", "directory for the tables (default runs/ablate/<preset>; the committed tables are regenerated with --out ablations/results/<preset>)")
	cache := fs.String("cache", defaultCache(), cacheUsage)
	steps := fs.Int("steps", 0, "SFT steps of every run instead of the preset's (quick smoke runs; cached apart)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *steps < 0 {
		return fmt.Errorf("--steps must be ≥ 0, got %d", *steps)
	}
	if len(suites) == 0 {
		return fmt.Errorf("--suite is required (%s, all)", strings.Join(ablations.SuiteNames(), ", "))
	}
	if *out == "" {
		*out = filepath.Join("runs", "ablate", *preset)
	}
	return ablate(*backendSpec, suites, *preset, *seeds, *out, *cache, *steps, "alphatoken ablate "+strings.Join(args, " "))
}

func runDemo(args []string) error {
	fs, backendSpec := newFlags("demo", "[flags]")
	out := fs.String("out", filepath.Join("runs", "demo"), "directory for the tables")
	cache := fs.String("cache", defaultCache(), cacheUsage)
	seeds := fs.String("seeds", "1", "comma-separated seeds")
	preset := fs.String("preset", "mini", "MiniBench preset: "+strings.Join(ablations.PresetNames(), ", "))
	if err := fs.Parse(args); err != nil {
		return err
	}
	return ablate(*backendSpec, []string{"main", "ranking"}, *preset, *seeds, *out, *cache, 0, "alphatoken demo "+strings.Join(args, " "))
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

func ablate(backendSpec string, suites []string, preset, seedList, out, cache string, steps int, command string) error {
	start := time.Now()
	seeds, err := parseSeeds(seedList)
	if err != nil {
		return err
	}
	if len(suites) == 1 && suites[0] == "all" {
		suites = ablations.SuiteNames()
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
	r, err := ablations.NewRunner(backend, preset, cache, os.Stderr)
	if err != nil {
		return err
	}
	r.Steps = steps
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
