package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/alphatoken/alphatoken/ablations"
	"github.com/alphatoken/alphatoken/model"
)

func init() {
	register("calibrate", "fix a MiniBench regime: its reference model and Full FT only, over reference and SFT seeds (95% intervals)", runCalibrate)
}

// runCalibrate runs ablations.Calibrate: by construction it trains no token-selection method, so
// a design calibrated with it was not tuned towards one (issue 12's honesty rule).
func runCalibrate(args []string) error {
	fs, backendSpec := newFlags("calibrate", "[flags]")
	preset := fs.String("preset", "mini-adapt", "MiniBench preset: "+strings.Join(ablations.PresetNames(), ", "))
	patch := fs.String("patch", "", `JSON merged into the preset to try a variant, e.g. '{"pretrain":{"steps":800}}'`)
	refSeeds := fs.String("ref-seeds", "1", "comma-separated pre-training seeds of the reference model")
	seeds := fs.String("seeds", "1", "comma-separated SFT seeds (Full FT runs once per reference seed and SFT seed)")
	out := fs.String("out", "", "directory for calibration.{md,json} (default: print only)")
	name := fs.String("name", "calibration", "file name (without extension) under --out")
	cache := fs.String("cache", defaultCache(), "cache of reference models and runs (reused and resumed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start := time.Now()
	p, err := ablations.PresetByName(*preset)
	if err != nil {
		return err
	}
	if p, err = ablations.PatchPreset(p, *patch); err != nil {
		return err
	}
	rs, err := parseSeeds(*refSeeds)
	if err != nil {
		return fmt.Errorf("--ref-seeds: %w", err)
	}
	ss, err := parseSeeds(*seeds)
	if err != nil {
		return err
	}
	backend, err := model.NewBackend(*backendSpec)
	if err != nil {
		return err
	}
	c, err := ablations.Calibrate(backend, p, rs, ss, *cache, os.Stderr)
	if err != nil {
		return err
	}
	c.Patch = *patch
	c.Command = strings.TrimSpace("alphatoken calibrate " + shellJoin(args))
	fmt.Fprintf(os.Stdout, "\n%s\n", c.Markdown())
	if *out != "" {
		if err := c.Write(*out, *name); err != nil {
			return err
		}
		logf("wrote %s.{md,json}", filepath.Join(*out, *name))
	}
	logf("done in %s", time.Since(start).Round(time.Second))
	return nil
}

// shellJoin quotes the arguments that need it, so the recorded command can be pasted back.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'{}[]$*?;&|<>()\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
