package minibench

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

var (
	prefsOnce sync.Once
	prefsDef  *Prefs
	prefsErr  error
)

// defaultPrefs builds the default preference pairs on the default bench once per test binary.
func defaultPrefs(t *testing.T) (*Bench, *Prefs) {
	t.Helper()
	b, _ := defaultBuild(t)
	prefsOnce.Do(func() { prefsDef, prefsErr = BuildPrefs(b, DefaultPrefConfig()) })
	if prefsErr != nil {
		t.Fatal(prefsErr)
	}
	return b, prefsDef
}

// diffBytes is the length of the changed middle of a and b: what remains once their common prefix
// and common suffix are removed (the longer of the two middles).
func diffBytes(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	j := 0
	for j < len(a)-i && j < len(b)-i && a[len(a)-1-j] == b[len(b)-1-j] {
		j++
	}
	return max(len(a)-i-j, len(b)-i-j)
}

// TestPrefsJudged: every chosen program passes its hidden tests and every rejected one parses,
// runs on every input and fails at least one test, and differs from the chosen in a few bytes.
func TestPrefsJudged(t *testing.T) {
	b, p := defaultPrefs(t)
	c := DefaultPrefConfig()
	for _, want := range []struct {
		name string
		got  []PrefPair
		n    int
	}{{"train", p.Train, c.TrainPairs}, {"oracle", p.Oracle, c.OraclePairs}, {"val", p.Val, len(b.Code.Val)}, {"test", p.Test, len(b.Code.Test)}} {
		if len(want.got) != want.n {
			t.Fatalf("%s: %d pairs, want %d", want.name, len(want.got), want.n)
		}
	}
	maxDiff := 0
	for _, s := range p.Splits() {
		for _, q := range s.Pairs {
			if len(q.Tests) == 0 || !JudgeCode(q.Tests, q.Chosen) {
				t.Fatalf("%s: chosen %q fails its tests", q.ID, q.Chosen)
			}
			if JudgeCode(q.Tests, q.Rejected) {
				t.Fatalf("%s: rejected %q (%s) passes the tests", q.ID, q.Rejected, q.Kind)
			}
			if !runsOnAll(q.Rejected, q.Tests) {
				t.Fatalf("%s: rejected %q does not run on every input", q.ID, q.Rejected)
			}
			if q.Rejected == q.Chosen || !isPrefKind(q.Kind) {
				t.Fatalf("%s: kind %q, chosen %q, rejected %q", q.ID, q.Kind, q.Chosen, q.Rejected)
			}
			d := diffBytes(q.Chosen, q.Rejected)
			maxDiff = max(maxDiff, d)
			// A swap of two operation lines rewrites at most both lines; the other kinds rewrite a
			// few bytes of one line.
			limit := 4
			if q.Kind == KindOperation {
				limit = len("abs(x)") // x=-x → x=abs(x)
			}
			if q.Kind == KindOrder {
				limit = 2*len("x=max(x,0)") + 3
			}
			if d > limit {
				t.Fatalf("%s (%s): %d bytes differ between %q and %q", q.ID, q.Kind, d, q.Chosen, q.Rejected)
			}
		}
	}
	t.Logf("largest chosen/rejected difference: %d bytes", maxDiff)
}

// TestPrefsKinds: every kind occurs in every split, and the cycle keeps them near balance.
func TestPrefsKinds(t *testing.T) {
	_, p := defaultPrefs(t)
	for _, s := range p.Splits() {
		counts := KindCounts(s.Pairs)
		for _, k := range PrefKinds {
			share := float64(counts[k]) / float64(len(s.Pairs))
			if share < 0.12 || share > 0.40 {
				t.Errorf("%s: kind %s has %d of %d pairs (%v)", s.Name, k, counts[k], len(s.Pairs), counts)
			}
		}
		t.Logf("%s: %v", s.Name, counts)
	}
	// With kinds [order, operation], a pair whose turn is "order" but whose lines commute falls
	// through to "operation".
	c := DefaultPrefConfig()
	c.Kinds = []string{KindOrder, KindOperation}
	b, _ := defaultBuild(t)
	c.TrainPairs, c.OraclePairs, c.TestPairs, c.ValPairs = 200, 0, 10, 10
	two, err := BuildPrefs(b, c)
	if err != nil {
		t.Fatal(err)
	}
	fell := 0
	for i, q := range two.Train {
		switch {
		case q.Kind != KindOrder && q.Kind != KindOperation:
			t.Fatalf("%s: kind %s with Kinds = [order, operation]", q.ID, q.Kind)
		case i%2 == 0 && q.Kind == KindOperation:
			fell++
			if _, ok := Perturb(newRNG(1, "x"), q.Chosen, q.Tests, KindOrder); ok {
				t.Fatalf("%s fell through to operation, but its lines can be reordered", q.ID)
			}
		}
	}
	if fell == 0 {
		t.Fatal("no pair fell through from order to operation")
	}
}

// TestPrefsNoLeakage: no train, oracle or val pair shares a task key with a test pair (the
// prompts whose pass@1 is the target score); train and oracle share no prompt, and neither shares
// a prompt with the SFT training set; val and test are the SFT val and test items.
func TestPrefsNoLeakage(t *testing.T) {
	b, p := defaultPrefs(t)
	testKeys := map[string]bool{}
	for _, k := range b.Code.keys["test"] {
		testKeys[k] = true
	}
	for i, q := range p.Test {
		if q.Key != b.Code.keys["test"][i] || q.Prompt != b.Code.Test[i].Prompt || q.Chosen != b.Code.Test[i].Reference {
			t.Fatalf("test pair %d is not test item %d", i, i)
		}
		if !reflect.DeepEqual(q.Tests, b.Code.Test[i].Tests) {
			t.Fatalf("test pair %d: tests differ from the item's", i)
		}
	}
	for i, q := range p.Val {
		if q.Key != b.Code.keys["val"][i] || q.Prompt != b.Code.Val[i].Prompt {
			t.Fatalf("val pair %d is not val item %d", i, i)
		}
	}
	sftTrain := map[string]bool{}
	for _, e := range b.Code.Train {
		sftTrain[e.Prompt] = true
	}
	seen := map[string]string{}
	for _, s := range [][]PrefPair{p.Train, p.Oracle, p.Val} {
		for _, q := range s {
			if testKeys[q.Key] {
				t.Fatalf("%s has the key %s of a test item", q.ID, q.Key)
			}
			if prev, dup := seen[q.Prompt]; dup {
				t.Fatalf("%s and %s share the prompt %q", prev, q.ID, q.Prompt)
			}
			seen[q.Prompt] = q.ID
			if !strings.HasPrefix(q.ID, "pref-val") && sftTrain[q.Prompt] {
				t.Fatalf("%s: prompt %q is in the SFT training set", q.ID, q.Prompt)
			}
		}
	}
	for _, k := range append(append([]string(nil), b.Code.keys["val"]...), b.Code.keys["fisher"]...) {
		if testKeys[k] {
			t.Fatalf("SFT splits overlap at %s", k)
		}
	}
}

// TestPrefsDeterministic: the same configs give the same pairs and fingerprint; a size change
// changes the fingerprint but not the pairs both builds have.
func TestPrefsDeterministic(t *testing.T) {
	b, p := defaultPrefs(t)
	again, err := BuildPrefs(b, DefaultPrefConfig())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, again) || p.Fingerprint() != again.Fingerprint() {
		t.Fatal("two builds differ")
	}
	c := DefaultPrefConfig()
	c.TestPairs = 50
	fewer, err := BuildPrefs(b, c)
	if err != nil {
		t.Fatal(err)
	}
	if fewer.Fingerprint() == p.Fingerprint() {
		t.Fatal("the fingerprint ignores TestPairs")
	}
	if !reflect.DeepEqual(fewer.Test, p.Test[:50]) || !reflect.DeepEqual(fewer.Train, p.Train) {
		t.Fatal("a smaller test split changed other pairs")
	}
}

// TestPerturbByHand: the candidates of each kind on one program, worked out by hand.
func TestPerturbByHand(t *testing.T) {
	prog := "def f(x):\n  x*=3\n  x=x%7\n  return x"
	tests := opsTests(prog)
	want := map[string][]string{
		KindOperation: {"def f(x):\n  x+=3\n  x=x%7\n  return x", "def f(x):\n  x-=3\n  x=x%7\n  return x",
			"def f(x):\n  x*=3\n  x=x//7\n  return x"},
		KindOffByOne: {"def f(x):\n  x*=2\n  x=x%7\n  return x", "def f(x):\n  x*=4\n  x=x%7\n  return x",
			"def f(x):\n  x*=3\n  x=x%6\n  return x", "def f(x):\n  x*=3\n  x=x%8\n  return x"},
		KindOrder: {"def f(x):\n  x=x%7\n  x*=3\n  return x"},
	}
	for kind, cands := range want {
		got := map[string]bool{}
		for seed := range 200 {
			r := newRNG(int64(seed), "t")
			rej, ok := Perturb(r, prog, tests, kind)
			if !ok {
				t.Fatalf("%s: no candidate", kind)
			}
			got[rej] = true
		}
		for _, c := range cands {
			if !got[c] {
				t.Errorf("%s: never produced %q (got %v)", kind, c, got)
			}
		}
		if len(got) != len(cands) {
			t.Errorf("%s: produced %d programs, want %d: %v", kind, len(got), len(cands), got)
		}
	}
	// Constant: one line's constant, replaced by one that is neither itself nor ±1 nor trivial.
	body, _ := opsBody(prog)
	for seed := range 100 {
		rej, ok := Perturb(newRNG(int64(seed), "c"), prog, tests, KindConstant)
		if !ok {
			t.Fatal("constant: no candidate")
		}
		rb, _ := opsBody(rej)
		changed := 0
		for i := range body {
			if rb[i] == body[i] {
				continue
			}
			changed++
			_, _, was, _ := constantOf(body[i])
			_, _, now, ok := constantOf(rb[i])
			if !ok || now >= was-1 && now <= was+1 || now < minConstant(body[i]) {
				t.Fatalf("constant: %q → %q", body[i], rb[i])
			}
		}
		if changed != 1 {
			t.Fatalf("constant: %d lines changed in %q", changed, rej)
		}
	}
	// Lines that commute cannot be reordered into a failing program; an identity-free program
	// without constants has no constant perturbation.
	if _, ok := Perturb(newRNG(1, "o"), "def f(x):\n  x+=1\n  x+=5\n  return x", opsTests("def f(x):\n  x+=1\n  x+=5\n  return x"), KindOrder); ok {
		t.Fatal("order: commuting lines gave a failing program")
	}
	sq := "def f(x):\n  x=x*x\n  x=-x\n  return x"
	if _, ok := Perturb(newRNG(1, "k"), sq, opsTests(sq), KindConstant); ok {
		t.Fatal("constant: a program without constants was perturbed")
	}
}

func TestPrefsErrors(t *testing.T) {
	b, _ := defaultBuild(t)
	for _, c := range []PrefConfig{{TrainPairs: 0}, {TrainPairs: 4, Kinds: []string{"typo"}}, {TrainPairs: 4, OraclePairs: -1}} {
		if _, err := BuildPrefs(b, c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if _, err := BuildPrefs(b, PrefConfig{TrainPairs: 1 << 20}); err == nil || !strings.Contains(err.Error(), "examples beyond the training set") {
		t.Errorf("too many pairs: %v", err)
	}
	cfg := DefaultConfig()
	cfg.CodeStyle, cfg.CorpusDocs, cfg.ProbeItems = CodeStyleExpressions, 50, 20
	eb, err := Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := BuildPrefs(eb, DefaultPrefConfig()); err == nil || !strings.Contains(err.Error(), "code style") {
		t.Errorf("expressions style: %v", err)
	}
}

// TestPrefsFiles: the written files are TRL preference rows, one per pair, in split order.
func TestPrefsFiles(t *testing.T) {
	b, _ := defaultBuild(t)
	p, err := BuildPrefs(b, PrefConfig{TrainPairs: 8, OraclePairs: 4, ValPairs: 4, TestPairs: 4})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := p.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Splits() {
		f, err := os.Open(filepath.Join(dir, "prefs_"+s.Name+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		i := 0
		for sc.Scan() {
			var row map[string]string
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				t.Fatal(err)
			}
			q := s.Pairs[i]
			if len(row) != 3 || row["prompt"] != q.Prompt || row["chosen"] != q.Chosen || row["rejected"] != q.Rejected {
				t.Fatalf("%s line %d: %v", s.Name, i+1, row)
			}
			i++
		}
		f.Close()
		if i != len(s.Pairs) {
			t.Fatalf("%s: %d lines for %d pairs", s.Name, i, len(s.Pairs))
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "prefs_manifest.json"))
	if err != nil || !strings.Contains(string(raw), p.Fingerprint()) {
		t.Fatalf("manifest: %v", err)
	}
}

// TestPrefsAdapt: the adapt regime (mini-adapt's DPO stage) has the same preference pairs as the
// from-scratch one (its targets are the same, TestAdaptSameTargetsAndProbes), keyed apart by the
// Bench's fingerprint; no test pair's key is in the adapt pre-training pool.
func TestPrefsAdapt(t *testing.T) {
	a, _ := adaptBuild(t)
	_, p := defaultPrefs(t)
	q, err := BuildPrefs(a, DefaultPrefConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range q.Splits() {
		if !reflect.DeepEqual(s.Pairs, p.Splits()[i].Pairs) {
			t.Fatalf("%s pairs differ between the adapt and from-scratch benches", s.Name)
		}
	}
	if q.Fingerprint() == p.Fingerprint() {
		t.Fatal("the fingerprint ignores the bench")
	}
	pool := map[string]bool{}
	for _, k := range a.PretrainKeys() {
		pool[k] = true
	}
	for _, x := range q.Test {
		if pool[x.Key] {
			t.Fatalf("test pair %s: key %s is in the adapt pool", x.ID, x.Key)
		}
	}
}
