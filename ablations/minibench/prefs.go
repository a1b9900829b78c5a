package minibench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The preference MiniBench (issue 13): preference pairs built from the code target ("ops" style).
// A pair's chosen response is the correct program of its instruction (it passes the hidden tests);
// its rejected response is a plausible wrong program that differs from it in a few bytes:
//
//	operation   one line's operator replaced, operand kept    x*=3 → x+=3,  x=max(x,0) → x=min(x,0)
//	constant    one line's constant replaced (not by ±1)      x+=5 → x+=9,  x=x%7 → x=x%4
//	off-by-one  one line's constant moved by one              x+=5 → x+=6,  x=x//2 → x=x//3
//	order       two adjacent lines swapped                    x*=2; x+=1 → x+=1; x*=2
//
// Every rejected program parses and runs without error on every hidden input, and fails at least
// one hidden test (BuildPrefs checks both with the judge); every chosen program passes them all.
// The kinds are cycled pair by pair; a kind that cannot break a program (no constant to change, two
// lines that commute) falls through to the next kind, and the pair records the kind it got.
//
// Splits (SFT keys are (family, operation sequence), splits.go):
//
//	train   TrainPairs prompts of the clean candidates (Target.Extra): (key, phrasing) pairs that the
//	        SFT training set does not use; their keys are never a test, val or fisher key
//	oracle  the next OraclePairs clean candidates (SePO's oracle is DPO-trained on them), disjoint
//	        from train
//	val     the SFT val split's items (B_val for AlphaToken's J_tgt), ValPairs of them (0: all)
//	test    the SFT test split's items (the held-out pairs), TestPairs of them (0: all): the same
//	        prompts whose pass@1 is the target score, with keys no other split has
//
// So no train, oracle or val pair shares a key with a test item. A pair set is a deterministic
// function of the Bench's Config and the PrefConfig (Prefs.Fingerprint).

// PrefsVersion versions the pair generator: bump it when any generated pair changes.
const PrefsVersion = "minibench-prefs/1"

// Perturbation kinds of a rejected program.
const (
	KindOperation = "operation"
	KindConstant  = "constant"
	KindOffByOne  = "off-by-one"
	KindOrder     = "order"
)

// PrefKinds lists the perturbation kinds in their default cycle order.
var PrefKinds = []string{KindOperation, KindConstant, KindOffByOne, KindOrder}

// PrefConfig sizes the preference splits and chooses the perturbations.
type PrefConfig struct {
	TrainPairs  int      `json:"train_pairs"`
	OraclePairs int      `json:"oracle_pairs"`
	ValPairs    int      `json:"val_pairs"`  // from the SFT val split; 0: all of it
	TestPairs   int      `json:"test_pairs"` // from the SFT test split; 0: all of it
	Kinds       []string `json:"kinds"`      // perturbation kinds cycled over the pairs; empty: PrefKinds
}

// DefaultPrefConfig is the preference MiniBench of the mini DPO preset.
func DefaultPrefConfig() PrefConfig {
	return PrefConfig{TrainPairs: 1600, OraclePairs: 400, Kinds: append([]string(nil), PrefKinds...)}
}

// PrefPair is one preference pair.
type PrefPair struct {
	ID       string     `json:"id"`
	Key      string     `json:"key"` // the SFT task key (family|operations)
	Family   string     `json:"family"`
	Prompt   string     `json:"prompt"`
	Chosen   string     `json:"chosen"`
	Rejected string     `json:"rejected"`
	Kind     string     `json:"kind"`  // the perturbation that made Rejected
	Tests    []CodeTest `json:"tests"` // the hidden tests (Chosen passes them, Rejected fails one or more)
}

// Prefs is a built preference MiniBench.
type Prefs struct {
	Config PrefConfig `json:"config"`
	Bench  string     `json:"bench"` // the Bench's fingerprint
	Train  []PrefPair `json:"train"`
	Val    []PrefPair `json:"val"`
	Test   []PrefPair `json:"test"`
	Oracle []PrefPair `json:"oracle"`
}

// Splits names the splits in a fixed order with their pairs.
func (p *Prefs) Splits() []struct {
	Name  string
	Pairs []PrefPair
} {
	return []struct {
		Name  string
		Pairs []PrefPair
	}{{"train", p.Train}, {"val", p.Val}, {"test", p.Test}, {"oracle", p.Oracle}}
}

// Fingerprint hashes PrefsVersion, the Bench's fingerprint and the PrefConfig: key results on it.
func (p *Prefs) Fingerprint() string {
	return fingerprintVersion(PrefsVersion, struct {
		Bench  string     `json:"bench"`
		Config PrefConfig `json:"config"`
	}{p.Bench, p.Config})
}

// KindCounts counts a split's pairs by perturbation kind.
func KindCounts(pairs []PrefPair) map[string]int {
	out := map[string]int{}
	for _, p := range pairs {
		out[p.Kind]++
	}
	return out
}

// Validate checks the sizes and kinds.
func (c PrefConfig) Validate() error {
	if c.TrainPairs < 1 || c.OraclePairs < 0 || c.ValPairs < 0 || c.TestPairs < 0 {
		return fmt.Errorf("minibench: preference pairs: TrainPairs must be ≥ 1 and OraclePairs, ValPairs, TestPairs ≥ 0, got %d, %d, %d, %d",
			c.TrainPairs, c.OraclePairs, c.ValPairs, c.TestPairs)
	}
	for _, k := range c.Kinds {
		if !isPrefKind(k) {
			return fmt.Errorf("minibench: preference pairs: unknown perturbation kind %q (%s)", k, strings.Join(PrefKinds, ", "))
		}
	}
	return nil
}

func isPrefKind(k string) bool {
	for _, x := range PrefKinds {
		if x == k {
			return true
		}
	}
	return false
}

// BuildPrefs builds the preference splits of b's code target. It needs the "ops" code style.
func BuildPrefs(b *Bench, c PrefConfig) (*Prefs, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if b.Config.CodeStyle != "" && b.Config.CodeStyle != CodeStyleOps {
		return nil, fmt.Errorf("minibench: preference pairs are built from the %q code style, not %q", CodeStyleOps, b.Config.CodeStyle)
	}
	if len(c.Kinds) == 0 {
		c.Kinds = append([]string(nil), PrefKinds...)
	}
	t := b.Code
	p := &Prefs{Config: c, Bench: b.Fingerprint()}
	clean, cleanKeys, err := t.extra(c.TrainPairs + c.OraclePairs)
	if err != nil {
		return nil, fmt.Errorf("minibench: preference pairs: %w", err)
	}
	take := func(n, of int) int {
		if n == 0 || n > of {
			return of
		}
		return n
	}
	type source struct {
		split        string
		prompts, res []string
		keys         []string
		tests        [][]CodeTest
	}
	var sources []source
	addExamples := func(split string, exs []Example, keys []string) {
		s := source{split: split, keys: keys}
		for _, e := range exs {
			s.prompts, s.res = append(s.prompts, e.Prompt), append(s.res, e.Response)
		}
		sources = append(sources, s)
	}
	addExamples("train", clean[:c.TrainPairs], cleanKeys[:c.TrainPairs])
	addExamples("oracle", clean[c.TrainPairs:], cleanKeys[c.TrainPairs:])
	nv := take(c.ValPairs, len(t.Val))
	addExamples("val", t.Val[:nv], t.keys["val"][:nv])
	test := source{split: "test", keys: t.keys["test"][:take(c.TestPairs, len(t.Test))]}
	for _, it := range t.Test[:len(test.keys)] {
		test.prompts, test.res, test.tests = append(test.prompts, it.Prompt), append(test.res, it.Reference), append(test.tests, it.Tests)
	}
	sources = append(sources, test)
	for _, s := range sources {
		r := newRNG(b.Config.Seed, "prefs/"+s.split)
		var pairs []PrefPair
		for i := range s.prompts {
			tests := opsTests(s.res[i])
			if s.tests != nil {
				tests = s.tests[i]
			}
			if !JudgeCode(tests, s.res[i]) {
				return nil, fmt.Errorf("minibench: preference pairs: %s[%d]: the reference program fails its own tests: %q", s.split, i, s.res[i])
			}
			kind, rej, ok := perturbCycle(r, s.res[i], tests, c.Kinds, i)
			if !ok {
				return nil, fmt.Errorf("minibench: preference pairs: %s[%d]: no perturbation of %q fails its tests", s.split, i, s.res[i])
			}
			fam, _, _ := strings.Cut(s.keys[i], "|")
			pairs = append(pairs, PrefPair{ID: fmt.Sprintf("pref-%s-%04d", s.split, i), Key: s.keys[i], Family: fam,
				Prompt: s.prompts[i], Chosen: s.res[i], Rejected: rej, Kind: kind, Tests: tests})
		}
		switch s.split {
		case "train":
			p.Train = pairs
		case "oracle":
			p.Oracle = pairs
		case "val":
			p.Val = pairs
		case "test":
			p.Test = pairs
		}
	}
	return p, nil
}

// opsTests are the hidden tests of an "ops" program: its outputs on opsTestInputs.
func opsTests(program string) []CodeTest {
	prog, err := ParseProgram(program)
	if err != nil {
		return nil
	}
	var out []CodeTest
	for _, x := range opsTestInputs {
		want, err := prog.Call(x)
		if err != nil {
			return nil
		}
		out = append(out, CodeTest{X: x, Want: want})
	}
	return out
}

// perturbCycle tries the kinds starting at kinds[i % len], returning the first that breaks the
// program.
func perturbCycle(r *rng, program string, tests []CodeTest, kinds []string, i int) (string, string, bool) {
	for j := range kinds {
		k := kinds[(i+j)%len(kinds)]
		if rej, ok := Perturb(r, program, tests, k); ok {
			return k, rej, true
		}
	}
	return "", "", false
}

// opsBody splits an "ops" program into its operation lines (without indentation).
func opsBody(program string) ([]string, bool) {
	lines := strings.Split(program, "\n")
	if len(lines) < 3 || lines[0] != "def f(x):" || lines[len(lines)-1] != "  return x" {
		return nil, false
	}
	body := make([]string, len(lines)-2)
	for i, l := range lines[1 : len(lines)-1] {
		if !strings.HasPrefix(l, "  ") {
			return nil, false
		}
		body[i] = l[2:]
	}
	return body, true
}

func opsProgram(body []string) string {
	return "def f(x):\n  " + strings.Join(body, "\n  ") + "\n  return x"
}

// operatorSwaps are the "operation" perturbations of each operation line: another operator on the
// same operand.
var operatorSwaps = map[string][]string{
	"x*=2": {"x+=2", "x-=2"}, "x*=3": {"x+=3", "x-=3"}, "x=x//2": {"x=x*2", "x=x%2"}, "x=x*x": {"x=x+x"},
	"x+=1": {"x-=1"}, "x+=5": {"x-=5", "x*=5"}, "x+=10": {"x-=10", "x*=10"}, "x-=1": {"x+=1"}, "x-=3": {"x+=3", "x*=3"},
	"x=-x": {"x=abs(x)"}, "x=abs(x)": {"x=-abs(x)"}, "x=x%7": {"x=x//7"}, "x=max(x,0)": {"x=min(x,0)"},
}

// constantOf finds a line's one integer literal: its position, length and value (ok false without one).
func constantOf(line string) (start, n, value int, ok bool) {
	start = -1
	for i := 0; i < len(line); i++ {
		if line[i] >= '0' && line[i] <= '9' {
			if start >= 0 && i > start+n {
				return 0, 0, 0, false // a second literal
			}
			if start < 0 {
				start = i
			}
			n = i - start + 1
		}
	}
	if start < 0 {
		return 0, 0, 0, false
	}
	value, _ = strconv.Atoi(line[start : start+n])
	return start, n, value, true
}

// minConstant is the smallest constant a line may take without becoming trivial (×1, //1, %1, +0).
func minConstant(line string) int {
	switch {
	case strings.Contains(line, "max("), strings.Contains(line, "min("):
		return -100
	case strings.Contains(line, "*"), strings.Contains(line, "/"), strings.Contains(line, "%"):
		return 2
	}
	return 1
}

// constantChoices are the "constant" replacements: plausible constants other than c and c±1.
var constantChoices = []int{2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20}

// Perturb makes one rejected program of a kind from an "ops" program: candidates are tried in a
// random order and the first that parses, runs on every test input and fails a test is returned.
func Perturb(r *rng, program string, tests []CodeTest, kind string) (string, bool) {
	body, ok := opsBody(program)
	if !ok {
		return "", false
	}
	var cands []string
	with := func(i int, line string) {
		b := append([]string(nil), body...)
		b[i] = line
		cands = append(cands, opsProgram(b))
	}
	for i, line := range body {
		switch kind {
		case KindOperation:
			for _, s := range operatorSwaps[line] {
				with(i, s)
			}
		case KindConstant, KindOffByOne:
			at, n, c, ok := constantOf(line)
			if !ok {
				continue
			}
			var vals []int
			if kind == KindOffByOne {
				vals = []int{c - 1, c + 1}
			} else {
				for _, v := range constantChoices {
					if v < c-1 || v > c+1 {
						vals = append(vals, v)
					}
				}
			}
			for _, v := range vals {
				if v >= minConstant(line) {
					with(i, line[:at]+strconv.Itoa(v)+line[at+n:])
				}
			}
		case KindOrder:
			if i+1 < len(body) && body[i] != body[i+1] {
				b := append([]string(nil), body...)
				b[i], b[i+1] = b[i+1], b[i]
				cands = append(cands, opsProgram(b))
			}
		}
	}
	shuffle(r, cands)
	for _, c := range cands {
		if c != program && runsOnAll(c, tests) && !JudgeCode(tests, c) {
			return c, true
		}
	}
	return "", false
}

// runsOnAll reports whether a program parses and runs without error on every test input.
func runsOnAll(program string, tests []CodeTest) bool {
	p, err := ParseProgram(program)
	if err != nil {
		return false
	}
	for _, t := range tests {
		if _, err := p.Call(t.X); err != nil {
			return false
		}
	}
	return true
}

// WriteFiles writes the pairs under dir, in TRL's explicit-prompt preference format (what
// `alphatoken train-dpo --data` reads), and a manifest:
//
//	prefs_{train,val,test,oracle}.jsonl   {"prompt","chosen","rejected"}
//	prefs_manifest.json                   version, fingerprint, config, pairs by kind per split,
//	                                      and every pair with its key, kind and hidden tests
func (p *Prefs) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("minibench: %w", err)
	}
	type trl struct {
		Prompt   string `json:"prompt"`
		Chosen   string `json:"chosen"`
		Rejected string `json:"rejected"`
	}
	counts := map[string]map[string]int{}
	for _, s := range p.Splits() {
		rows := make([]trl, len(s.Pairs))
		for i, q := range s.Pairs {
			rows[i] = trl{q.Prompt, q.Chosen, q.Rejected}
		}
		if err := writeJSONL(filepath.Join(dir, "prefs_"+s.Name+".jsonl"), rows); err != nil {
			return err
		}
		counts[s.Name] = KindCounts(s.Pairs)
	}
	return writeJSONFile(filepath.Join(dir, "prefs_manifest.json"), struct {
		Version     string                    `json:"version"`
		Fingerprint string                    `json:"fingerprint"`
		Kinds       map[string]map[string]int `json:"kinds"`
		*Prefs
	}{PrefsVersion, p.Fingerprint(), counts, p})
}
