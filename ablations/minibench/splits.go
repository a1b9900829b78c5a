package minibench

import (
	"fmt"
	"strings"
)

// Splits for the SFT targets.
//
// A task key is (family, constants). Keys, not prompts, are split, so the
// held-out splits require generalisation: a test item's constants never
// appear with its family in training, under any phrasing (every phrasing
// and every constant value does appear in training, in other combinations).
//
//  1. Each family's keys are shuffled; a held-out pool of
//     1.3 × (Test+Val+Fisher) × max(1/families, family keys/all keys)
//     keys is set aside (at most half the family).
//  2. Test, then Val, then Fisher take one key each in turn from each
//     family's pool (round robin, so families are balanced until a small
//     family runs out), with a random phrasing.
//  3. Unused pool keys go back to training. Train takes (key, phrasing)
//     pairs round robin over families until TrainSize, without repeats.
//  4. Extra(n), the clean slice (a helper model's fine-tuning data, e.g.
//     Token Cleaning's reference and Rho-1's reference model), takes the
//     next n (key, phrasing) pairs the training round robin would have taken.
//     It consumes no randomness, so it changes no other split.
//
// So train, val, test and fisher share no key and hence no prompt. The
// clean slice shares no key with val, test or fisher and no (key,
// phrasing) pair, hence no prompt, with train; it may share keys with
// train (another phrasing of a trained task), as Token Cleaning's warm-up
// subset is a part of its training pool.

// Example is one SFT pair. The caller tokenises BOS + Prompt + Response +
// EOS and computes the loss on Response tokens only.
type Example struct {
	Prompt   string `json:"prompt"`
	Response string `json:"response"`
}

// TestItem is one held-out target item. Reference is the reference response
// (not needed for scoring); Answer is the final number (math); Tests are the
// hidden tests (code).
type TestItem struct {
	ID        string     `json:"id"`
	Family    string     `json:"family"`
	Prompt    string     `json:"prompt"`
	Reference string     `json:"response"`
	Answer    string     `json:"answer,omitempty"`
	Tests     []CodeTest `json:"tests,omitempty"`
}

// Target names.
const (
	TargetCode = "code"
	TargetMath = "math"
)

// Target is one SFT target: training pairs, the B_val pool, the test set and
// the Fisher prompts (prompts only; the Fisher's labels are sampled from the
// reference model).
type Target struct {
	Name          string
	Train         []Example
	Val           []Example // B_val pool; SPEC default uses the first 32
	Test          []TestItem
	FisherPrompts []string
	MaxNewBytes   int // generation budget per test prompt

	// keys[split] lists each item's task key, in item order (for tests).
	keys map[string][]string
	// extra yields the next n training candidates (Extra).
	extra func(n int) ([]Example, []string, error)
}

// Extra returns the clean slice: n target examples that are not in Train,
// Val, Test or Fisher (step 4 of the split; a deterministic function of the
// Config, so cache keys on the Fingerprint cover it).
func (t *Target) Extra(n int) ([]Example, error) {
	ex, _, err := t.extra(n)
	return ex, err
}

// Judge reports whether generated (the text after item.Prompt, EOS
// excluded) solves item: for code, the program passes every hidden test; for
// math, the extracted answer equals item.Answer.
func (t *Target) Judge(item TestItem, generated string) bool {
	switch t.Name {
	case TargetCode:
		return JudgeCode(item.Tests, generated)
	case TargetMath:
		got, ok := ExtractMathAnswer(generated)
		return ok && got == item.Answer
	}
	return false
}

// Stop reports whether generation should stop now (the caller also stops at
// EOS and after MaxNewBytes).
func (t *Target) Stop(generated string) bool {
	if t.Name == TargetCode {
		return CodeStop(generated)
	}
	return MathStop(generated)
}

// Score is pass@1: the share of Test items whose generation passes Judge.
// generated[i] belongs to Test[i].
func (t *Target) Score(generated []string) (float64, error) {
	if len(generated) != len(t.Test) {
		return 0, fmt.Errorf("minibench: %s: %d generations for %d test items", t.Name, len(generated), len(t.Test))
	}
	if len(t.Test) == 0 {
		return 0, fmt.Errorf("minibench: %s: empty test set", t.Name)
	}
	n := 0
	for i, it := range t.Test {
		if t.Judge(it, generated[i]) {
			n++
		}
	}
	return float64(n) / float64(len(t.Test)), nil
}

// family is a task family as the splitter sees it.
type family struct {
	name    string
	keys    [][]int
	phrases int
	build   func(k []int, phrase int) taskItem
}

type taskItem struct {
	prompt, response, answer string
	tests                    []CodeTest
}

func keyString(fam string, k []int) string {
	parts := []string{fam}
	for _, c := range k {
		parts = append(parts, itoa(c))
	}
	return strings.Join(parts, "|")
}

func splitTarget(name string, fams []family, cfg Config, maxNew int) (*Target, error) {
	r := newRNG(cfg.Seed, "split/"+name)
	held := cfg.TestSize + cfg.ValSize + cfg.FisherSize
	total := 0
	for _, f := range fams {
		total += len(f.keys)
	}
	pools := make([][][]int, len(fams))
	rest := make([][][]int, len(fams))
	for i, f := range fams {
		keys := append([][]int(nil), f.keys...)
		shuffle(r, keys)
		even := (13*held + 10*len(fams) - 1) / (10 * len(fams))   // ceil(1.3*held/families)
		prop := (13*held*len(keys) + 10*total - 1) / (10 * total) // ceil(1.3*held*share)
		n := min(max(even, prop), len(keys)/2)
		pools[i], rest[i] = keys[:n], keys[n:]
	}

	t := &Target{Name: name, MaxNewBytes: maxNew, keys: map[string][]string{}}
	next := 0 // round-robin cursor over families
	draw := func() (int, []int, bool) {
		for tries := 0; tries < len(fams); tries++ {
			i := next
			next = (next + 1) % len(fams)
			if len(pools[i]) > 0 {
				k := pools[i][0]
				pools[i] = pools[i][1:]
				return i, k, true
			}
		}
		return 0, nil, false
	}
	for _, sp := range []struct {
		name string
		n    int
	}{{"test", cfg.TestSize}, {"val", cfg.ValSize}, {"fisher", cfg.FisherSize}} {
		for j := 0; j < sp.n; j++ {
			fi, k, ok := draw()
			if !ok {
				return nil, fmt.Errorf("minibench: %s: not enough task keys for %d held-out items", name, held)
			}
			f := fams[fi]
			it := f.build(k, r.intn(f.phrases))
			t.keys[sp.name] = append(t.keys[sp.name], keyString(f.name, k))
			switch sp.name {
			case "test":
				t.Test = append(t.Test, TestItem{ID: fmt.Sprintf("%s-test-%04d", name, j), Family: f.name,
					Prompt: it.prompt, Reference: it.response, Answer: it.answer, Tests: it.tests})
			case "val":
				t.Val = append(t.Val, Example{Prompt: it.prompt, Response: it.response})
			case "fisher":
				t.FisherPrompts = append(t.FisherPrompts, it.prompt)
			}
		}
	}

	// Training candidates: every (key, phrasing) of the remaining keys.
	type cand struct {
		k      []int
		phrase int
	}
	cands := make([][]cand, len(fams))
	for i, f := range fams {
		keys := append(rest[i], pools[i]...)
		for _, k := range keys {
			for ph := 0; ph < f.phrases; ph++ {
				cands[i] = append(cands[i], cand{k, ph})
			}
		}
		shuffle(r, cands[i])
	}
	type trainItem struct {
		ex  Example
		key string
	}
	var train []trainItem
	for len(train) < cfg.TrainSize {
		added := false
		for i, f := range fams {
			if len(train) == cfg.TrainSize {
				break
			}
			if len(cands[i]) == 0 {
				continue
			}
			c := cands[i][0]
			cands[i] = cands[i][1:]
			it := f.build(c.k, c.phrase)
			train = append(train, trainItem{Example{it.prompt, it.response}, keyString(f.name, c.k)})
			added = true
		}
		if !added {
			return nil, fmt.Errorf("minibench: %s: only %d training examples available, %d requested", name, len(train), cfg.TrainSize)
		}
	}
	t.extra = func(n int) ([]Example, []string, error) {
		next := make([]int, len(fams)) // how far into each family's leftover candidates
		var out []Example
		var keys []string
		for len(out) < n {
			added := false
			for i, f := range fams {
				if len(out) == n {
					break
				}
				if next[i] >= len(cands[i]) {
					continue
				}
				c := cands[i][next[i]]
				next[i]++
				it := f.build(c.k, c.phrase)
				out = append(out, Example{it.prompt, it.response})
				keys = append(keys, keyString(f.name, c.k))
				added = true
			}
			if !added {
				return nil, nil, fmt.Errorf("minibench: %s: only %d examples beyond the training set, %d requested", name, len(out), n)
			}
		}
		return out, keys, nil
	}
	shuffle(r, train)
	for _, it := range train {
		t.Train = append(t.Train, it.ex)
		t.keys["train"] = append(t.keys["train"], it.key)
	}
	return t, nil
}
