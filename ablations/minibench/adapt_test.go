package minibench

import (
	"crypto/sha256"
	"encoding/hex"
	"index/suffixarray"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

var (
	adaptOnce  sync.Once
	adaptBench *Bench
	adaptErr   error
	adaptIndex *suffixarray.Index
)

// adaptBuild builds AdaptConfig once per test binary and indexes its corpus.
func adaptBuild(t *testing.T) (*Bench, *suffixarray.Index) {
	t.Helper()
	adaptOnce.Do(func() {
		adaptBench, adaptErr = Build(AdaptConfig())
		if adaptErr == nil {
			adaptIndex = suffixarray.New([]byte(strings.Join(adaptBench.Corpus, "\n\n")))
		}
	})
	if adaptErr != nil {
		t.Fatal(adaptErr)
	}
	return adaptBench, adaptIndex
}

func corpusHash(docs []string) string {
	h := sha256.Sum256([]byte(strings.Join(docs, "\n\n")))
	return hex.EncodeToString(h[:8])
}

// TestScratchCorpusFrozen guards the from-scratch regime: its corpus (and so its cached reference
// models) must not change when the adapt code does.
func TestScratchCorpusFrozen(t *testing.T) {
	const wantFingerprint, wantHash = "bdd922b04620d68e", "f0fb51da7f65b177"
	b, _ := defaultBuild(t)
	if fp, h := DefaultConfig().CorpusFingerprint(), corpusHash(b.Corpus); fp != wantFingerprint || h != wantHash {
		t.Fatalf("the from-scratch corpus changed: fingerprint %s (want %s), bytes %s (want %s)", fp, wantFingerprint, h, wantHash)
	}
	for _, d := range b.Corpus {
		if strings.HasPrefix(d, "Task: ") {
			t.Fatal("the from-scratch corpus has an instruct document")
		}
	}
}

// TestAdaptGolden pins the adapt build: a change of any byte must bump InstructVersion (corpus)
// or GeneratorVersion, and the preset's Design (ablations).
func TestAdaptGolden(t *testing.T) {
	const wantFingerprint, wantCorpus, wantHash = "fc5d0889459dbbe6", "bca36feab557f1ee", "a1bd35d601b17965"
	b, _ := adaptBuild(t)
	fp, cfp, h := AdaptConfig().Fingerprint(), AdaptConfig().CorpusFingerprint(), corpusHash(b.Corpus)
	if fp != wantFingerprint || cfp != wantCorpus || h != wantHash {
		t.Errorf("adapt build changed: fingerprint %s (want %s), corpus fingerprint %s (want %s), corpus bytes %s (want %s)",
			fp, wantFingerprint, cfp, wantCorpus, h, wantHash)
	}
	if cfp == DefaultConfig().CorpusFingerprint() {
		t.Error("the adapt and from-scratch corpora share a fingerprint")
	}
}

// TestAdaptSameTargetsAndProbes: the adapt regime changes the corpus only; the SFT data, B_val,
// the Fisher prompts, the test items and the probes are those of the from-scratch build.
func TestAdaptSameTargetsAndProbes(t *testing.T) {
	a, _ := adaptBuild(t)
	s, _ := defaultBuild(t)
	// A Target holds its clean-slice generator as a func (never DeepEqual): compare its data and what
	// Extra yields instead.
	for _, tg := range [][2]*Target{{a.Code, s.Code}, {a.Math, s.Math}} {
		ea, errA := tg[0].Extra(200)
		es, errS := tg[1].Extra(200)
		if errA != nil || errS != nil || !reflect.DeepEqual(ea, es) {
			t.Errorf("%s: the clean slice (Extra) differs between the adapt and from-scratch builds (%v, %v)", tg[0].Name, errA, errS)
		}
	}
	data := func(tg *Target) Target { c := *tg; c.extra = nil; return c }
	for name, pair := range map[string][2]any{
		"code": {data(a.Code), data(s.Code)}, "math": {data(a.Math), data(s.Math)}, "arc": {a.ARC, s.ARC}, "hellaswag": {a.HellaSwag, s.HellaSwag},
		"mmlu": {a.MMLU, s.MMLU}, "gsm": {a.GSM, s.GSM}, "oracle": {a.RetentionOracle, s.RetentionOracle},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			t.Errorf("%s differs between the adapt and from-scratch builds", name)
		}
	}
	if len(a.Corpus) != AdaptConfig().CorpusDocs {
		t.Fatalf("adapt corpus has %d documents", len(a.Corpus))
	}
}

// TestAdaptNoLeakage: the pre-training pool shares no task key with train, val, test or fisher;
// no target prompt, probe item or oracle example occurs in the adapt corpus; every instruct pair
// in it is a pool item; the SFT-only operations occur nowhere in it; the math target's format
// does not occur.
func TestAdaptNoLeakage(t *testing.T) {
	b, idx := adaptBuild(t)
	pool := b.PretrainKeys()
	if len(pool) < 50 {
		t.Fatalf("pre-training pool has only %d keys", len(pool))
	}
	owner := map[string]string{}
	for sp, keys := range b.Code.keys {
		for _, k := range keys {
			owner[k] = sp
		}
	}
	for _, k := range pool {
		if sp, ok := owner[k]; ok {
			t.Errorf("pool key %s is in the %s split", k, sp)
		}
	}
	checkProbesNotInCorpus(t, b, idx)
	prompts := map[string][]string{"val": nil, "fisher": b.Code.FisherPrompts}
	for _, e := range b.Code.Train {
		prompts["train"] = append(prompts["train"], e.Prompt)
	}
	for _, e := range b.Code.Val {
		prompts["val"] = append(prompts["val"], e.Prompt)
	}
	for _, it := range b.Code.Test {
		prompts["test"] = append(prompts["test"], it.Prompt)
	}
	for sp, ps := range prompts {
		for _, p := range ps {
			if n := count(idx, p); n > 0 {
				t.Fatalf("%s prompt %q occurs in the corpus %d times", sp, p, n)
			}
		}
	}
	for _, marker := range []string{"Problem:", "Solution:", "The answer is"} {
		if n := count(idx, marker); n > 0 {
			t.Errorf("corpus contains the math marker %q %d times", marker, n)
		}
	}
	// Every pair of every instruct document is the build of a pool key: read the key and phrasing
	// back from the instruction and rebuild the pair.
	inPool := map[string]bool{}
	for _, k := range pool {
		inPool[k] = true
	}
	type opPhrase struct{ op, bit int }
	phrases := map[string]opPhrase{}
	for o, op := range poolOps() {
		for bit, ph := range op.phrases {
			phrases[ph] = opPhrase{o, bit}
		}
	}
	lengths := map[int]int{}
	famOf := map[int]family{}
	for n := 1; n <= 4; n++ {
		famOf[n] = opsFamilyOver(n, poolOps())
	}
	docs, pairs := 0, 0
	for _, d := range b.Corpus {
		if !strings.Contains(d, "Task: ") {
			continue
		}
		if !strings.HasPrefix(d, "Task: ") {
			t.Fatalf("a non-instruct document has a code-target pair: %q", d)
		}
		docs++
		for _, pair := range strings.Split(d[len("Task: "):], "\nTask: ") {
			pairs++
			instr, _, ok := strings.Cut(pair, ".\nCode:\n")
			if !ok {
				t.Fatalf("instruct pair without the code format: %q", pair)
			}
			var key []int
			phrase := 0
			for i, part := range strings.Split(instr, ", then ") {
				op, ok := phrases[part]
				if !ok {
					t.Fatalf("unknown operation %q in %q", part, pair)
				}
				key, phrase = append(key, op.op), phrase|op.bit<<i
			}
			fam := famOf[len(key)]
			if !inPool[keyString(fam.name, key)] {
				t.Fatalf("instruct pair not from the pool: %q", pair)
			}
			if sp, ok := owner[keyString(fam.name, key)]; ok {
				t.Fatalf("instruct pair %q has a key of the %s split", pair, sp)
			}
			if it := fam.build(key, phrase); it.prompt+it.response != "Task: "+pair {
				t.Fatalf("instruct pair %q is not its key's build %q", pair, it.prompt+it.response)
			}
			lengths[len(key)]++
		}
	}
	sum := 0.0
	for _, w := range b.Config.Mix.weights() {
		sum += w
	}
	if want := int(float64(b.Config.CorpusDocs) * b.Config.Mix.Instruct / sum); docs < want-1 || docs > want+1 {
		t.Errorf("%d instruct documents, want about %d", docs, want)
	}
	t.Logf("%d instruct documents, %d pairs (by program length: %v), %d pool keys", docs, pairs, lengths, len(pool))
	if lengths[1] == 0 || lengths[2] == 0 || lengths[3] == 0 || lengths[4] == 0 || len(lengths) != 4 {
		t.Errorf("program lengths in the instruct pairs: %v (want 1 to 4 operations)", lengths)
	}
	for _, name := range strings.Split(b.Config.SFTOnlyOps, ",") {
		o := codeOps[slices.IndexFunc(codeOps, func(o codeOp) bool { return o.name == name })]
		for _, s := range append([]string{"  " + o.line}, o.phrases[:]...) {
			if n := count(idx, s); n > 0 {
				t.Errorf("SFT-only operation %s: %q occurs in the corpus %d times", name, s, n)
			}
		}
	}
}

// TestAdaptDeterminism: the same adapt config gives the same bytes; another seed another corpus.
func TestAdaptDeterminism(t *testing.T) {
	cfg := smallConfig(5)
	cfg.TrainSize = 100 // leaves keys for the pool at this size
	cfg.Mix.Instruct, cfg.SFTOnlyOps = 0.1, "abs,mod7"
	b1, err := Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := Build(cfg)
	f1, f2 := serialize(t, b1), serialize(t, b2)
	for name, data := range f1 {
		if string(data) != string(f2[name]) {
			t.Errorf("%s differs between two builds of the same adapt config", name)
		}
	}
	cfg.Seed = 6
	b3, _ := Build(cfg)
	if corpusHash(b3.Corpus) == corpusHash(b1.Corpus) {
		t.Error("seeds 5 and 6 give the same adapt corpus")
	}
	n := 0
	for _, d := range b1.Corpus {
		if strings.HasPrefix(d, "Task: ") {
			n++
		}
	}
	if n == 0 {
		t.Error("the small adapt build has no instruct document")
	}
	// Instruct = 0 with SFTOnlyOps set is the from-scratch corpus: the field only matters with
	// instruct documents.
	s := smallConfig(5)
	s.SFTOnlyOps = "abs"
	bs, _ := Build(s)
	b0, _ := Build(smallConfig(5))
	if !slices.Equal(bs.Corpus, b0.Corpus) || len(bs.PretrainKeys()) != 0 {
		t.Error("SFTOnlyOps changed a corpus without instruct documents")
	}
}

func TestAdaptValidate(t *testing.T) {
	for ops, want := range map[string]string{
		"abs,sqrt":                   `unknown operation "sqrt"`,
		"abs,abs":                    `names "abs" twice`,
		strings.Join(OpNames(), ","): "every operation",
	} {
		c := AdaptConfig()
		c.SFTOnlyOps = ops
		if _, err := Build(c); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("SFTOnlyOps %q: want an error containing %q, got %v", ops, want, err)
		}
	}
	c := AdaptConfig()
	c.CodeStyle, c.Mix.Instruct = CodeStyleExpressions, 0
	if _, err := Build(c); err == nil || !strings.Contains(err.Error(), "SFTOnlyOps needs CodeStyle") {
		t.Errorf("expressions style with SFTOnlyOps: %v", err)
	}
	c = AdaptConfig()
	c.CodeStyle, c.SFTOnlyOps = CodeStyleExpressions, ""
	if _, err := Build(c); err == nil || !strings.Contains(err.Error(), "instruct documents (Mix.Instruct > 0) need CodeStyle") {
		t.Errorf("expressions style with instruct documents: %v", err)
	}
	c = AdaptConfig()
	c.Mix.Instruct = -1
	if _, err := Build(c); err == nil {
		t.Error("a negative Instruct share was accepted")
	}
	// A split that uses every key of a length leaves nothing of it to pre-train on: a clear error.
	f := opsFamilyOver(1, poolOps())
	tg := &Target{keys: map[string][]string{}}
	for _, k := range f.keys {
		tg.keys["train"] = append(tg.keys["train"], keyString(f.name, k))
	}
	if _, err := pretrainPool(AdaptConfig(), tg); err == nil || !strings.Contains(err.Error(), "no ops1 key is left") {
		t.Errorf("empty pool: %v", err)
	}
}

// TestInstructPairs: the instruction stage's pairs come from the pool (no split key, no SFT-only
// operation), deterministically; a from-scratch build has none.
func TestInstructPairs(t *testing.T) {
	b, _ := adaptBuild(t)
	p1, err := b.InstructPairs(300)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := b.InstructPairs(300)
	if !slices.Equal(p1, p2) || len(p1) != 300 {
		t.Fatal("InstructPairs is not deterministic")
	}
	held := map[string]bool{}
	for _, e := range b.Code.Train {
		held[e.Prompt] = true
	}
	for _, e := range b.Code.Val {
		held[e.Prompt] = true
	}
	for _, it := range b.Code.Test {
		held[it.Prompt] = true
	}
	for _, p := range b.Code.FisherPrompts {
		held[p] = true
	}
	distinct := map[string]bool{}
	for _, e := range p1 {
		if held[e.Prompt] {
			t.Fatalf("instruct pair %q is a split's prompt", e.Prompt)
		}
		for _, name := range strings.Split(b.Config.SFTOnlyOps, ",") {
			o := codeOps[slices.IndexFunc(codeOps, func(o codeOp) bool { return o.name == name })]
			if strings.Contains(e.Response, "  "+o.line+"\n") || strings.Contains(e.Prompt, o.phrases[0]) || strings.Contains(e.Prompt, o.phrases[1]) {
				t.Fatalf("instruct pair %q uses the SFT-only operation %s", e.Prompt, name)
			}
		}
		distinct[e.Prompt] = true
	}
	if len(distinct) < 250 {
		t.Errorf("only %d distinct pairs of 300", len(distinct))
	}
	s, _ := defaultBuild(t)
	if _, err := s.InstructPairs(1); err == nil {
		t.Error("a from-scratch build gave instruct pairs")
	}
}
