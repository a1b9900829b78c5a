package minibench

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

func smallConfig(seed int64) Config {
	c := DefaultConfig()
	c.Seed = seed
	c.CorpusDocs = 800
	c.ProbeItems = 40
	c.TrainSize, c.TestSize, c.ValSize, c.FisherSize = 300, 40, 16, 32
	return c
}

// serialize writes the build with WriteFiles and returns every file's bytes
// keyed by relative path.
func serialize(t *testing.T, b *Bench) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	if err := b.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDeterminism(t *testing.T) {
	b1, err := Build(smallConfig(5))
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := Build(smallConfig(5))
	f1, f2 := serialize(t, b1), serialize(t, b2)
	if len(f1) != len(f2) {
		t.Fatalf("different file sets: %d vs %d", len(f1), len(f2))
	}
	for name, data := range f1 {
		if !bytes.Equal(data, f2[name]) {
			t.Errorf("%s differs between two builds with the same seed", name)
		}
	}
	b3, _ := Build(smallConfig(6))
	f3 := serialize(t, b3)
	for name, data := range f1 {
		if name == "manifest.json" {
			continue
		}
		if bytes.Equal(data, f3[name]) {
			t.Errorf("%s is identical for seeds 5 and 6", name)
		}
	}
}

// Changing probe or target sizes leaves the corpus alone, and the corpus
// fingerprint says so.
func TestCorpusIndependentOfOtherSizes(t *testing.T) {
	c1 := smallConfig(5)
	c2 := c1
	c2.TrainSize, c2.ProbeItems, c2.OracleSize = 200, 30, 8
	b1, _ := Build(c1)
	b2, err := Build(c2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b1.Corpus, b2.Corpus) {
		t.Error("corpus depends on probe/target sizes")
	}
	if c1.CorpusFingerprint() != c2.CorpusFingerprint() || c1.Fingerprint() == c2.Fingerprint() {
		t.Error("fingerprints do not separate corpus and full config")
	}
	c3 := c1
	c3.CorpusDocs++
	if c3.CorpusFingerprint() == c1.CorpusFingerprint() {
		t.Error("corpus fingerprint ignores CorpusDocs")
	}
}

// TestGoldenOutput pins the default build. If it fails after an intended
// change, bump GeneratorVersion and update both constants.
func TestGoldenOutput(t *testing.T) {
	const (
		wantFingerprint = "e49d0d0d601d0847"
		wantHash        = "1c799a1264d77580"
	)
	b, _ := defaultBuild(t)
	files := serialize(t, b)
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		h.Write([]byte(n + "\x00"))
		h.Write(files[n])
	}
	got := hex.EncodeToString(h.Sum(nil))[:16]
	if fp := DefaultConfig().Fingerprint(); fp != wantFingerprint || got != wantHash {
		t.Errorf("default build changed: fingerprint %s (want %s), output hash %s (want %s); "+
			"if intended, bump GeneratorVersion and update the golden values", fp, wantFingerprint, got, wantHash)
	}
}

func TestValidate(t *testing.T) {
	for _, mod := range []func(*Config){
		func(c *Config) { c.CorpusDocs = 0 },
		func(c *Config) { c.Lands = 2 },
		func(c *Config) { c.ProbeItems = 0 },
		func(c *Config) { c.TrainSize = 0 },
		func(c *Config) { c.TestSize = 0 },
		func(c *Config) { c.ValSize = -1 },
		func(c *Config) { c.Mix = CorpusMix{} },
		func(c *Config) { c.Mix.Code = -1 },
	} {
		c := DefaultConfig()
		mod(&c)
		if _, err := Build(c); err == nil {
			t.Errorf("Build accepted %+v", c)
		}
	}
	c := smallConfig(1)
	c.Lands = 5 // 20 facts < 40 mmlu items
	if _, err := Build(c); err == nil || !strings.Contains(err.Error(), "mmlu") {
		t.Errorf("want an mmlu capacity error, got %v", err)
	}
	c = smallConfig(1)
	c.TrainSize = 1000000
	if _, err := Build(c); err == nil || !strings.Contains(err.Error(), "training examples") {
		t.Errorf("want a train capacity error, got %v", err)
	}
}

func TestSizes(t *testing.T) {
	b, _ := defaultBuild(t)
	cfg := b.Config
	if len(b.Corpus) != cfg.CorpusDocs {
		t.Errorf("corpus has %d docs", len(b.Corpus))
	}
	for name, n := range map[string]int{"arc": len(b.ARC), "hellaswag": len(b.HellaSwag), "mmlu": len(b.MMLU), "gsm": len(b.GSM)} {
		if n != cfg.ProbeItems {
			t.Errorf("%s has %d items", name, n)
		}
	}
	if len(b.RetentionOracle) != cfg.OracleSize {
		t.Errorf("oracle has %d items", len(b.RetentionOracle))
	}
	for _, tg := range []*Target{b.Code, b.Math} {
		if len(tg.Train) != cfg.TrainSize || len(tg.Test) != cfg.TestSize || len(tg.Val) != cfg.ValSize || len(tg.FisherPrompts) != cfg.FisherSize {
			t.Errorf("%s sizes: %d %d %d %d", tg.Name, len(tg.Train), len(tg.Test), len(tg.Val), len(tg.FisherPrompts))
		}
	}
	ch := b.Chance()
	for _, p := range []string{ProbeARC, ProbeHellaSwag, ProbeMMLU} {
		if ch[p] != 0.25 {
			t.Errorf("chance[%s] = %v", p, ch[p])
		}
	}
	if ch[ProbeGSM] != 0 || ch[TargetCode] != 0 || ch[TargetMath] != 0 {
		t.Error("generation chance must be 0")
	}
}

func TestSplitsDisjoint(t *testing.T) {
	b, _ := defaultBuild(t)
	for _, tg := range []*Target{b.Code, b.Math} {
		splits := map[string][]string{}
		for _, e := range tg.Train {
			splits["train"] = append(splits["train"], e.Prompt)
		}
		for _, e := range tg.Val {
			splits["val"] = append(splits["val"], e.Prompt)
		}
		for _, e := range tg.Test {
			splits["test"] = append(splits["test"], e.Prompt)
		}
		splits["fisher"] = tg.FisherPrompts
		owner := map[string]string{}
		for _, sp := range []string{"train", "val", "test", "fisher"} {
			for _, p := range splits[sp] {
				if o, ok := owner[p]; ok {
					t.Errorf("%s: prompt %q in %s and %s", tg.Name, p, o, sp)
				}
				owner[p] = sp
			}
		}
		// Keys (family + constants) are disjoint too, so held-out items need
		// generalisation, not a new phrasing of a trained task.
		keyOwner := map[string]string{}
		for _, sp := range []string{"train", "val", "test", "fisher"} {
			if len(tg.keys[sp]) != len(splits[sp]) {
				t.Fatalf("%s %s: %d keys for %d items", tg.Name, sp, len(tg.keys[sp]), len(splits[sp]))
			}
			for _, k := range tg.keys[sp] {
				if o, ok := keyOwner[k]; ok && o != sp {
					t.Errorf("%s: key %s in %s and %s", tg.Name, k, o, sp)
				}
				keyOwner[k] = sp
			}
		}
		// The clean slice (Extra) is new: no prompt of any split, no key of a held-out split.
		clean, cleanKeys, err := tg.extra(300)
		if err != nil {
			t.Fatal(err)
		}
		for j, e := range clean {
			if o, ok := owner[e.Prompt]; ok {
				t.Errorf("%s: clean prompt %q is in %s", tg.Name, e.Prompt, o)
			}
			if o := keyOwner[cleanKeys[j]]; o != "" && o != "train" {
				t.Errorf("%s: clean key %s is in %s", tg.Name, cleanKeys[j], o)
			}
			owner[e.Prompt] = "clean"
		}
		again, _ := tg.Extra(300)
		if !slices.Equal(again, clean) {
			t.Errorf("%s: Extra is not deterministic", tg.Name)
		}
		// Every test family, and every phrasing, is trained.
		trainFam := map[string]bool{}
		for _, k := range tg.keys["train"] {
			trainFam[strings.Split(k, "|")[0]] = true
		}
		fams := map[string]int{}
		for _, it := range tg.Test {
			fams[it.Family]++
			if !trainFam[it.Family] {
				t.Errorf("%s: test family %s never trained", tg.Name, it.Family)
			}
		}
		if tg.Name == TargetCode && len(fams) != len(codeFamiliesFor(b.Config.CodeStyle)) || tg.Name == TargetMath && len(fams) != len(mathFamilies) {
			t.Errorf("%s: test covers %d families", tg.Name, len(fams))
		}
		t.Logf("%s test families: %v", tg.Name, fams)
	}
}

func TestLengthsAndASCII(t *testing.T) {
	b, _ := defaultBuild(t)
	for i, d := range b.Corpus {
		if len(d) == 0 || len(d) > MaxDocBytes || !isASCII(d) || strings.Contains(d, "\n\n") ||
			strings.TrimSpace(d) != d {
			t.Fatalf("corpus doc %d violates the limits: %q", i, d)
		}
	}
	for _, items := range [][]MCItem{b.ARC, b.HellaSwag, b.MMLU} {
		for _, it := range items {
			for _, c := range it.Choices {
				if len(it.Context)+len(c) > MaxMCBytes || !isASCII(it.Context+c) {
					t.Errorf("%s too long or not ASCII", it.ID)
				}
			}
		}
	}
	for _, it := range b.GSM {
		if len(it.Prompt)+len(it.Solution) > MaxGSMBytes || !isASCII(it.Prompt+it.Solution) {
			t.Errorf("%s too long", it.ID)
		}
		if len(it.Solution) > GSMMaxNewBytes {
			t.Errorf("%s solution longer than GSMMaxNewBytes", it.ID)
		}
	}
	for _, tg := range []*Target{b.Code, b.Math} {
		check := func(p, r string) {
			if len(p)+len(r) > MaxTargetBytes || !isASCII(p+r) {
				t.Errorf("%s: example too long (%d) or not ASCII: %q", tg.Name, len(p)+len(r), p+r)
			}
			if len(r) > tg.MaxNewBytes {
				t.Errorf("%s: response longer than MaxNewBytes: %q", tg.Name, r)
			}
		}
		for _, e := range append(slices.Clone(tg.Train), tg.Val...) {
			check(e.Prompt, e.Response)
		}
		for _, it := range tg.Test {
			check(it.Prompt, it.Reference)
		}
	}
	// Every key of every family fits, not only the sampled ones.
	for _, f := range append(codeTaskFamilies(), opsTaskFamilies()...) {
		limit := 60
		if strings.HasPrefix(f.name, "ops") {
			limit = 70
		}
		for _, k := range f.keys {
			for ph := 0; ph < f.phrases; ph++ {
				it := f.build(k, ph)
				if len(it.prompt)+len(it.response) > MaxTargetBytes || len(it.response) > limit {
					t.Fatalf("code %s %v: %d bytes: %q", f.name, k, len(it.prompt)+len(it.response), it.prompt+it.response)
				}
			}
		}
	}
	for _, f := range mathTaskFamilies() {
		for _, k := range f.keys {
			for ph := 0; ph < f.phrases; ph++ {
				it := f.build(k, ph)
				if len(it.prompt)+len(it.response) > MaxTargetBytes {
					t.Fatalf("math %s %v: %d bytes: %q", f.name, k, len(it.prompt)+len(it.response), it.prompt+it.response)
				}
			}
		}
	}
}

func TestTargetsOutOfCorpus(t *testing.T) {
	_, idx := defaultBuild(t)
	for _, marker := range []string{"Task:", "Code:", "Problem:", "Solution:", "The answer is", "def f("} {
		if n := count(idx, marker); n > 0 {
			t.Errorf("corpus contains the target marker %q %d times", marker, n)
		}
	}
}

// TestOpsSemanticsAndMutants: opsApply agrees with the interpreter on every ops program, and
// replacing one operation by another is rejected by the hidden tests unless the two sequences
// really agree on them.
func TestOpsSemanticsAndMutants(t *testing.T) {
	rejected, total := 0, 0
	for _, f := range opsTaskFamilies() {
		for _, k := range f.keys {
			it := f.build(k, 0)
			want := opsApply(k, opsTestInputs)
			for i, tc := range it.tests {
				if tc.Want != want[i] {
					t.Fatalf("%v: interpreter %d, opsApply %d at x=%d", k, tc.Want, want[i], tc.X)
				}
			}
			if len(k) == 3 {
				continue // pairs suffice for the mutant statistics
			}
			for pos := range k {
				for o := range codeOps {
					if o == k[pos] {
						continue
					}
					m := append([]int(nil), k...)
					m[pos] = o
					mut := f.build(m, 0)
					total++
					if !JudgeCode(it.tests, mut.response) {
						rejected++
					} else if got := opsApply(m, opsTestInputs); !slices.Equal(got, want) {
						t.Fatalf("%v -> %v passes but differs", k, m)
					}
				}
			}
		}
	}
	if float64(rejected) < 0.95*float64(total) {
		t.Fatalf("only %d of %d single-operation mutants are rejected", rejected, total)
	}
	t.Logf("%d of %d single-operation mutants rejected", rejected, total)
}

func TestCodeReferencesAndMutants(t *testing.T) {
	b, _ := defaultBuild(t)
	tg := b.Code
	for _, it := range tg.Test {
		if !tg.Judge(it, it.Reference) {
			t.Errorf("%s: reference fails its own tests", it.ID)
		}
		if !tg.Judge(it, it.Reference+"\n\nTask: next") {
			t.Errorf("%s: reference with trailing text fails", it.ID)
		}
		if tg.Judge(it, "def f(x):\n  return 0") || tg.Judge(it, "def f(x):\n  return x") {
			t.Errorf("%s: a trivial program passes", it.ID)
		}
	}
	// Every constant of every key, moved by +1 or -1, gives a program that
	// the hidden tests reject.
	for _, f := range codeFamilies {
		fam := codeTaskFamilies()[slices.IndexFunc(codeFamilies, func(c codeFamily) bool { return c.name == f.name })]
		for _, k := range f.keys() {
			ref := fam.build(k, 0)
			if !JudgeCode(ref.tests, ref.response) {
				t.Fatalf("%s %v: reference fails", f.name, k)
			}
			for i := range k {
				for _, d := range []int{-1, 1} {
					m := slices.Clone(k)
					m[i] += d
					if JudgeCode(ref.tests, f.program(m, "f", "x")) {
						t.Fatalf("%s %v: mutant %v passes the hidden tests", f.name, k, m)
					}
				}
			}
		}
	}
	// Off-by-one programs of another family fail too.
	if JudgeCode(tg.Test[0].Tests, "def f(x):\n  s=0\n  for i in range(x):\n    s+=1\n  return s") {
		t.Error("a loop program passes an unrelated task")
	}
}

func TestMathReferences(t *testing.T) {
	b, _ := defaultBuild(t)
	tg := b.Math
	for _, it := range tg.Test {
		if !tg.Judge(it, it.Reference) {
			t.Errorf("%s: reference fails", it.ID)
		}
		if tg.Judge(it, strings.Replace(it.Reference, "is "+it.Answer, "is "+it.Answer+"1", 1)) {
			t.Errorf("%s: wrong answer passes", it.ID)
		}
		if !tg.Stop(it.Reference) {
			t.Errorf("%s: Stop does not fire on the reference", it.ID)
		}
	}
	for _, f := range mathTaskFamilies() {
		for _, k := range f.keys[:min(len(f.keys), 500)] {
			it := f.build(k, 0)
			checkEquations(t, strings.TrimPrefix(strings.Split(it.response, "\n")[0], " "))
		}
	}
	gens := make([]string, len(tg.Test))
	for i, it := range tg.Test {
		gens[i] = it.Reference
	}
	if s, err := tg.Score(gens); err != nil || s != 1 {
		t.Errorf("Score(references) = %v, %v", s, err)
	}
	if _, err := tg.Score(gens[:1]); err == nil {
		t.Error("Score accepts a short slice")
	}
}

func TestWriteFiles(t *testing.T) {
	b, err := Build(smallConfig(9))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := b.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	// Rewriting over existing files works and leaves no temporary files.
	if err := b.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	want := []string{"corpus.jsonl", "corpus.txt", "manifest.json", "retention_oracle.jsonl",
		"code_train.jsonl", "code_val.jsonl", "code_test.jsonl", "code_fisher_prompts.jsonl",
		"math_train.jsonl", "math_val.jsonl", "math_test.jsonl", "math_fisher_prompts.jsonl",
		"probes/arc.jsonl", "probes/hellaswag.jsonl", "probes/mmlu.jsonl", "probes/gsm.jsonl"}
	files := serialize(t, b)
	if len(files) != len(want) {
		t.Errorf("got %d files, want %d", len(files), len(want))
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
	lines := func(name string) []string {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	}
	var ex Example
	tr := lines("code_train.jsonl")
	if len(tr) != len(b.Code.Train) || json.Unmarshal([]byte(tr[0]), &ex) != nil || ex != b.Code.Train[0] {
		t.Errorf("code_train.jsonl does not round-trip")
	}
	var mc MCItem
	if json.Unmarshal([]byte(lines("probes/arc.jsonl")[0]), &mc) != nil || mc.Context != b.ARC[0].Context {
		t.Error("arc.jsonl does not round-trip")
	}
	var ti TestItem
	if json.Unmarshal([]byte(lines("code_test.jsonl")[0]), &ti) != nil || len(ti.Tests) == 0 || !b.Code.Judge(ti, ti.Reference) {
		t.Error("code_test.jsonl does not round-trip")
	}
	corpus, _ := os.ReadFile(filepath.Join(dir, "corpus.txt"))
	if docs := strings.Split(strings.TrimSuffix(string(corpus), "\n"), "\n\n"); !slices.Equal(docs, b.Corpus) {
		t.Error("corpus.txt does not split back into the documents")
	}
	var m Manifest
	data, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err := json.Unmarshal(data, &m); err != nil || m.Fingerprint != b.Fingerprint() || m.Config != b.Config {
		t.Errorf("manifest: %v", err)
	}
	if err := b.WriteFiles(filepath.Join(dir, "corpus.txt", "sub")); err == nil {
		t.Error("WriteFiles under a file succeeded")
	}
}
