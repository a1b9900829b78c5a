package ablations

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/dpo"
	"github.com/alphatoken/alphatoken/methods"
)

// DPO suites live beside the SFT ones, as ablations/suites/dpo_<name>.json (`alphatoken ablate-dpo
// --suite <name>`); SuiteNames leaves them out.

// dpoSuitePrefix marks a builtin DPO suite's file.
const dpoSuitePrefix = "dpo_"

// WarmStartMethod is the row of the SFT warm-start (no DPO: π = π_ref).
const WarmStartMethod = "warm-start"

// DPORow is one line of a DPO table: a DPO method with overrides, run once per seed.
type DPORow struct {
	Label  string `json:"label"`
	Method string `json:"method"` // a registered DPO method (methods.DPONames), or "warm-start"
	Overrides
	Threshold   dpo.Threshold   `json:"dpo_threshold,omitempty"`   // separate (default), shared
	Coefficient dpo.Coefficient `json:"dpo_coefficient,omitempty"` // unmasked (default), masked
	// Calibration overrides of the preset's DPO settings (the calibration suite varies them; the
	// method tables never do).
	Steps *int     `json:"steps,omitempty"`
	LR    *float64 `json:"lr,omitempty"`
	Beta  *float64 `json:"beta,omitempty"`
}

// DPOSuite is one DPO table.
type DPOSuite struct {
	Name  string   `json:"name"`
	Title string   `json:"title"`
	Note  string   `json:"note,omitempty"`
	Rows  []DPORow `json:"rows"`
	// Baseline labels the row that the relative-time column divides by (optional).
	Baseline string `json:"baseline,omitempty"`
	// Compare labels the row every other trained row is compared with, seed by seed: the paired
	// difference (row − Compare) of Overall, preference and retention with its 95% interval.
	Compare string `json:"compare,omitempty"`
}

// DPOSuiteNames lists the builtin DPO suites (ablations/suites/dpo_*.json) without the prefix.
func DPOSuiteNames() []string {
	entries, _ := builtinSuites.ReadDir("suites")
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutPrefix(e.Name(), dpoSuitePrefix); ok {
			names = append(names, strings.TrimSuffix(n, ".json"))
		}
	}
	return names
}

// LoadDPOSuite reads a DPO suite by builtin name (main, ranking, …) or from a .json file. Unknown
// fields are errors naming the field and its line; unknown methods, thresholds and coefficients
// are errors naming the row.
func LoadDPOSuite(nameOrPath string) (*DPOSuite, error) {
	var raw []byte
	var src string
	var err error
	if strings.HasSuffix(nameOrPath, ".json") || strings.ContainsRune(nameOrPath, os.PathSeparator) {
		src = nameOrPath
		raw, err = os.ReadFile(nameOrPath)
	} else {
		src = filepath.Join("ablations", "suites", dpoSuitePrefix+nameOrPath+".json")
		raw, err = builtinSuites.ReadFile("suites/" + dpoSuitePrefix + nameOrPath + ".json")
		if err != nil {
			return nil, errors.Errorf("ablations: unknown DPO suite %q (builtin: %s; or give a .json file)", nameOrPath, strings.Join(DPOSuiteNames(), ", "))
		}
	}
	if err != nil {
		return nil, errors.Wrapf(err, "ablations: reading DPO suite %s", src)
	}
	var s DPOSuite
	if err := decodeStrict(raw, src, "DPO suite", &s); err != nil {
		return nil, err
	}
	if err := s.validate(src); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *DPOSuite) validate(src string) error {
	if s.Name == "" {
		return errors.Errorf("%s: a suite needs a \"name\"", src)
	}
	if len(s.Rows) == 0 {
		return errors.Errorf("%s: suite %q has no rows", src, s.Name)
	}
	labels := map[string]bool{}
	for i, r := range s.Rows {
		if r.Label == "" {
			s.Rows[i].Label = r.Method
			r.Label = r.Method
		}
		if labels[r.Label] {
			return errors.Errorf("%s: two rows are labelled %q", src, r.Label)
		}
		labels[r.Label] = true
		if r.Method == WarmStartMethod {
			continue
		}
		if _, err := methods.LookupDPO(r.Method); err != nil {
			return errors.Errorf("%s: row %d (%q): unknown DPO method %q (known: %s, %s)", src, i+1, r.Label, r.Method,
				WarmStartMethod, strings.Join(methods.DPONames(), ", "))
		}
		if r.Threshold != "" && r.Threshold != dpo.Separate && r.Threshold != dpo.Shared {
			return errors.Errorf("%s: row %q: unknown dpo_threshold %q (separate, shared)", src, r.Label, r.Threshold)
		}
		if r.Coefficient != "" && r.Coefficient != dpo.Unmasked && r.Coefficient != dpo.Masked {
			return errors.Errorf("%s: row %q: unknown dpo_coefficient %q (unmasked, masked)", src, r.Label, r.Coefficient)
		}
		if r.Fisher != nil && *r.Fisher != "none" && *r.Fisher != "diag" && *r.Fisher != "kfac" {
			return errors.Errorf("%s: row %q: unknown fisher %q (none, diag, kfac)", src, r.Label, *r.Fisher)
		}
		if r.Normalize != nil && !slices.Contains(alphatoken.Normalizations, alphatoken.Normalization(*r.Normalize)) {
			return errors.Errorf("%s: row %q: unknown normalize %q (none, zscore, rank)", src, r.Label, *r.Normalize)
		}
		if (r.Steps != nil && *r.Steps <= 0) || (r.LR != nil && !(*r.LR > 0)) || (r.Beta != nil && !(*r.Beta > 0)) {
			return errors.Errorf("%s: row %q: steps, lr and beta must be positive", src, r.Label)
		}
		if err := methods.CheckDPOOptions(r.Method, Row{Overrides: r.Overrides}.options(0.5)); err != nil {
			return errors.Errorf("%s: row %q: %v", src, r.Label, err)
		}
	}
	for _, ref := range []struct{ field, label string }{{"baseline", s.Baseline}, {"compare", s.Compare}} {
		if ref.label != "" && !labels[ref.label] {
			return errors.Errorf("%s: %q names no row (%q)", src, ref.field, ref.label)
		}
	}
	return nil
}
