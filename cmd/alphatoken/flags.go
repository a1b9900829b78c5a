package main

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/alphatoken/alphatoken/model"
)

// Flag checks. Every numeric flag is either validated here, with an error naming the flag and the
// allowed range, or documents in its help what 0 means; nothing is silently replaced. Each check
// returns nil or an error; checkFlags returns the first error.

func checkFlags(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// atLeast requires an integer flag ≥ lo.
func atLeast(name string, v, lo int) error {
	if v < lo {
		return fmt.Errorf("--%s must be ≥ %d, got %d", name, lo, v)
	}
	return nil
}

// zeroOrAtLeast requires 0 (whose meaning is given) or an integer ≥ lo.
func zeroOrAtLeast(name string, v, lo int, zero string) error {
	if v != 0 && v < lo {
		return fmt.Errorf("--%s must be ≥ %d, or 0 (%s), got %d", name, lo, zero, v)
	}
	return nil
}

// positiveFloat requires a finite float flag > 0.
func positiveFloat(name string, v float64) error {
	if !(v > 0) || math.IsInf(v, 0) {
		return fmt.Errorf("--%s must be a finite number > 0, got %v", name, v)
	}
	return nil
}

// nonNegativeFloat requires a finite float flag ≥ 0 (zero's meaning, if any, is in the help).
func nonNegativeFloat(name string, v float64) error {
	if !(v >= 0) || math.IsInf(v, 0) {
		return fmt.Errorf("--%s must be a finite number ≥ 0, got %v", name, v)
	}
	return nil
}

// inUnit requires a float flag in (0, 1].
func inUnit(name string, v float64) error {
	if !(v > 0 && v <= 1) {
		return fmt.Errorf("--%s must be in (0, 1], got %v", name, v)
	}
	return nil
}

// precisionFlag requires --dtype to name one of model.Precisions.
func precisionFlag(v string) error { return oneOf("dtype", v, model.PrecisionNames()...) }

// oneOf requires a string flag to be one of the allowed values.
func oneOf(name, v string, allowed ...string) error {
	if !slices.Contains(allowed, v) {
		return fmt.Errorf("--%s %q: use one of %s", name, v, strings.Join(allowed, ", "))
	}
	return nil
}

// blocksFlag checks --k against a model of n blocks: "--k 3 exceeds the model's 2 blocks: use --k 1..2".
func blocksFlag(k, n int) error {
	if k < 1 || k > n {
		what := "must be at least 1"
		if k > n {
			what = fmt.Sprintf("exceeds the model's %d blocks", n)
		}
		return fmt.Errorf("--k %d %s: use --k 1..%d", k, what, n)
	}
	return nil
}

// contextFlag checks a context-length flag against the model's context (0: the model's context).
func contextFlag(name string, v int, lm *model.LM) error {
	if v > lm.Config.MaxPositions {
		return fmt.Errorf("--%s %d exceeds the model's context (max_position_embeddings %d): use --%s 2..%d, or 0 for %d",
			name, v, lm.Config.MaxPositions, name, lm.Config.MaxPositions, lm.Config.MaxPositions)
	}
	return nil
}
