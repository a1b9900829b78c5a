package ablations

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/methods"
)

// Overrides change the selection and valuation settings of one run relative to the preset
// (nil: keep).
type Overrides struct {
	Rho         *float64 `json:"rho,omitempty"`
	Lambda      *float64 `json:"lambda,omitempty"`
	Window      *int     `json:"window,omitempty"`
	K           *int     `json:"k,omitempty"`
	ValExamples *int     `json:"val_examples,omitempty"`
	ValRefresh  *int     `json:"val_refresh,omitempty"`
	Fisher      *string  `json:"fisher,omitempty"`    // none, diag, kfac
	Normalize   *string  `json:"normalize,omitempty"` // none, zscore, rank
	// Precondition adam makes the values predict the trainer's AdamW step (SPEC §4); none: SGD.
	Precondition *string `json:"precondition,omitempty"`
	// RhoSchedule moves the keep ratio from RhoStart (default 1) to ρ over training.
	RhoSchedule *string  `json:"rho_schedule,omitempty"` // constant, linear, cosine
	RhoStart    *float64 `json:"rho_start,omitempty"`
	// BudgetMatched makes a baseline keep ρ with AlphaToken's scope instead of its native setting.
	BudgetMatched bool `json:"budget_matched,omitempty"`
	// Params sets method parameters by name (see `alphatoken train-sft -h`).
	Params map[string]float64 `json:"params,omitempty"`
}

// Row is one line of a table: a method with overrides, run once per seed.
type Row struct {
	Label  string `json:"label"`
	Method string `json:"method"` // a registered method (package methods), or "reference" (the model before SFT)
	Overrides
}

// valuation is the preset's valuation settings v with the row's overrides applied.
func (o Overrides) valuation(v alphatoken.Config) alphatoken.Config {
	set := func(dst *int, src *int) {
		if src != nil {
			*dst = *src
		}
	}
	if o.Lambda != nil {
		v.Lambda = *o.Lambda
	}
	set(&v.Window, o.Window)
	set(&v.Blocks, o.K)
	set(&v.ValExamples, o.ValExamples)
	set(&v.ValRefresh, o.ValRefresh)
	if o.Fisher != nil {
		v.Fisher = alphatoken.FisherKind(*o.Fisher)
	}
	if o.Normalize != nil {
		v.Normalize = alphatoken.Normalization(*o.Normalize)
	}
	if o.Precondition != nil {
		v.Precondition = "" // none: the configuration (and its run's cache key) without the extension
		if *o.Precondition == string(alphatoken.PrecondAdam) {
			v.Precondition = alphatoken.PrecondAdam
		}
	}
	return v
}

// options are the row's selection options on top of the preset's ρ.
func (r Row) options(presetRho float64) methods.Options {
	o := methods.Options{Rho: presetRho, BudgetMatched: r.BudgetMatched, Params: r.Params}
	if r.Rho != nil {
		o.Rho = *r.Rho
	}
	if r.RhoSchedule != nil && *r.RhoSchedule != string(methods.ScheduleConstant) {
		o.Schedule, o.RhoStart = methods.Schedule(*r.RhoSchedule), 1
		if r.RhoStart != nil {
			o.RhoStart = *r.RhoStart
		}
	}
	return o
}

// Sweep varies one parameter around the preset's defaults (the sensitivity table).
type Sweep struct {
	Param  string    `json:"param"` // rho, lambda, window, k, val_examples, val_refresh
	Method string    `json:"method"`
	Values []float64 `json:"values"`
}

// Suite is one table: rows (or sweeps that expand into rows), run for every seed.
type Suite struct {
	Name   string  `json:"name"`
	Title  string  `json:"title"`
	Note   string  `json:"note,omitempty"`
	Rows   []Row   `json:"rows,omitempty"`
	Sweeps []Sweep `json:"sweeps,omitempty"`
	// Baseline labels the row that the "relative time" column divides by (optional).
	Baseline string `json:"baseline,omitempty"`
	// Paired labels the row every other trained row is compared with, seed by seed: the table's
	// "Δ target" and "Δ overall" columns (mean and 95% interval of the paired differences).
	Paired string `json:"paired,omitempty"`
}

//go:embed suites/*.json
var builtinSuites embed.FS

// SuiteNames lists the SFT suites shipped in ablations/suites (the DPO suites, dpo_*.json, are
// DPOSuiteNames').
func SuiteNames() []string {
	entries, _ := builtinSuites.ReadDir("suites")
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), dpoSuitePrefix) {
			continue
		}
		names = append(names, strings.TrimSuffix(e.Name(), ".json"))
	}
	return names
}

// LoadSuite reads a suite by builtin name or from a file. Unknown fields are errors that name the
// field and its line.
func LoadSuite(nameOrPath string) (*Suite, error) {
	var raw []byte
	var src string
	var err error
	if strings.HasSuffix(nameOrPath, ".json") || strings.ContainsRune(nameOrPath, os.PathSeparator) {
		src = nameOrPath
		raw, err = os.ReadFile(nameOrPath)
	} else {
		if n, ok := strings.CutPrefix(nameOrPath, dpoSuitePrefix); ok {
			return nil, errors.Errorf("ablations: %q is a DPO suite: run it with `alphatoken ablate-dpo --suite %s`", nameOrPath, n)
		}
		src = filepath.Join("ablations", "suites", nameOrPath+".json")
		raw, err = builtinSuites.ReadFile("suites/" + nameOrPath + ".json")
		if err != nil {
			return nil, errors.Errorf("ablations: unknown suite %q (builtin: %s; or give a .json file)", nameOrPath, strings.Join(SuiteNames(), ", "))
		}
	}
	if err != nil {
		return nil, errors.Wrapf(err, "ablations: reading suite %s", src)
	}
	var s Suite
	if err := decodeStrict(raw, src, "suite", &s); err != nil {
		return nil, err
	}
	if err := s.expand(src); err != nil {
		return nil, err
	}
	return &s, nil
}

// decodeStrict decodes a suite file into v: unknown fields and syntax errors name src:line.
func decodeStrict(raw []byte, src, what string, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if m := regexp.MustCompile(`unknown field "([^"]+)"`).FindStringSubmatch(err.Error()); m != nil {
			return errors.Errorf("%s:%d: unknown field %q", src, lineOf(raw, `"`+m[1]+`"`), m[1])
		}
		if se, ok := err.(*json.SyntaxError); ok {
			return errors.Errorf("%s:%d: %v", src, bytes.Count(raw[:se.Offset], []byte("\n"))+1, err)
		}
		return errors.Wrapf(err, "ablations: parsing %s %s", what, src)
	}
	return nil
}

func lineOf(raw []byte, needle string) int {
	i := bytes.Index(raw, []byte(needle))
	if i < 0 {
		return 0
	}
	return bytes.Count(raw[:i], []byte("\n")) + 1
}

// expand turns sweeps into rows and validates every row.
func (s *Suite) expand(src string) error {
	if s.Name == "" {
		return errors.Errorf("%s: a suite needs a \"name\"", src)
	}
	for _, sw := range s.Sweeps {
		for _, v := range sw.Values {
			r := Row{Method: sw.Method, Label: fmt.Sprintf("%s=%g", sw.Param, v)}
			f, i := v, int(v)
			switch sw.Param {
			case "rho":
				r.Rho = &f
			case "lambda":
				r.Lambda = &f
			case "window":
				r.Window = &i
			case "k":
				r.K = &i
			case "val_examples":
				r.ValExamples = &i
			case "val_refresh":
				r.ValRefresh = &i
			default:
				return errors.Errorf("%s: sweep over unknown parameter %q (rho, lambda, window, k, val_examples, val_refresh)", src, sw.Param)
			}
			s.Rows = append(s.Rows, r)
		}
	}
	if len(s.Rows) == 0 {
		return errors.Errorf("%s: suite %q has no rows", src, s.Name)
	}
	if s.Paired != "" && !slices.ContainsFunc(s.Rows, func(r Row) bool { return r.Label == s.Paired }) {
		return errors.Errorf("%s: suite %q pairs with row %q, which it does not have", src, s.Name, s.Paired)
	}
	for i, r := range s.Rows {
		if r.Label == "" {
			s.Rows[i].Label = r.Method
		}
		if r.Method == "reference" {
			continue
		}
		if _, err := methods.Lookup(r.Method); err != nil {
			return errors.Errorf("%s: row %d (%q): unknown method %q (known: reference, %s)", src, i+1, r.Label, r.Method,
				strings.Join(methods.Names(), ", "))
		}
		if r.Fisher != nil && *r.Fisher != "none" && *r.Fisher != "diag" && *r.Fisher != "kfac" {
			return errors.Errorf("%s: row %q: unknown fisher %q (none, diag, kfac)", src, r.Label, *r.Fisher)
		}
		if r.Normalize != nil && !slices.Contains(alphatoken.Normalizations, alphatoken.Normalization(*r.Normalize)) {
			return errors.Errorf("%s: row %q: unknown normalize %q (none, zscore, rank)", src, r.Label, *r.Normalize)
		}
		if r.Precondition != nil && !slices.Contains(alphatoken.Preconditions, alphatoken.Precondition(*r.Precondition)) {
			return errors.Errorf("%s: row %q: unknown precondition %q (none, adam)", src, r.Label, *r.Precondition)
		}
		if err := methods.CheckOptions(r.Method, r.options(0.5)); err != nil {
			return errors.Errorf("%s: row %q: %v", src, r.Label, err)
		}
	}
	return nil
}
