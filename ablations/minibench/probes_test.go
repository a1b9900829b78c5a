package minibench

import (
	"index/suffixarray"
	"slices"
	"strings"
	"testing"
)

// correctChoices re-derives, independently of the generator, which choices
// of an item are correct under the world's tables.
func correctChoices(t *testing.T, w *world, probe string, it MCItem) []int {
	t.Helper()
	var ok func(c string) bool
	ctx := it.Context
	between := func(s, from, to string) string {
		i := strings.Index(s, from)
		if i < 0 {
			t.Fatalf("%s: %q has no %q", it.ID, s, from)
		}
		s = s[i+len(from):]
		j := strings.Index(s, to)
		if j < 0 {
			t.Fatalf("%s: %q has no %q", it.ID, s, to)
		}
		return s[:j]
	}
	thingNeed := func(noun string) (need, bool) {
		for _, n := range needs {
			for _, th := range n.things {
				if th.noun == noun {
					return n, true
				}
			}
		}
		return need{}, false
	}
	switch probe + "/" + it.Kind {
	case "arc/kind":
		kind := between(ctx, "Which of these is ", ": ")
		ok = func(c string) bool { n, found := thingNeed(strings.TrimSpace(c)); return found && n.kind == kind }
	case "arc/size":
		rank := func(c string) int {
			return slices.IndexFunc(animals, func(a thing) bool { return " "+a.np() == c })
		}
		best := -1
		for _, c := range it.Choices {
			r := rank(c)
			if r < 0 {
				t.Fatalf("%s: unknown animal %q", it.ID, c)
			}
			if best < 0 || (strings.Contains(ctx, "biggest") && r > best) || (strings.Contains(ctx, "smallest") && r < best) {
				best = r
			}
		}
		ok = func(c string) bool { return rank(c) == best }
	case "arc/tool":
		purpose := between(ctx, " wants to ", ". What")
		ok = func(c string) bool {
			return slices.ContainsFunc(tools, func(tl tool) bool { return " a "+tl.noun == c && tl.purpose == purpose })
		}
	case "arc/cause":
		ok = func(c string) bool {
			return slices.ContainsFunc(causes, func(cs cause) bool {
				return strings.Contains(ctx, " "+cs.third+" "+cs.obj+". ") && c == " "+cs.result+"."
			})
		}
	case "hellaswag/need":
		state := between(ctx, " was ", ", so")
		i := slices.IndexFunc(needs, func(n need) bool { return n.state == state })
		n := needs[i]
		ok = func(c string) bool {
			if !strings.HasPrefix(c, " "+n.verb+" ") {
				return false
			}
			return slices.ContainsFunc(n.things, func(th thing) bool { return c == " "+n.verb+" "+th.np()+"." })
		}
	case "hellaswag/after":
		first := ctx[:strings.Index(ctx, ". After that")]
		var n need
		for _, cand := range needs {
			for _, th := range cand.things {
				if strings.HasSuffix(first, " "+cand.verb+" "+th.np()) {
					n = cand
				}
			}
		}
		ok = func(c string) bool { return n.state != "" && c == " "+n.after+"." }
	default: // mmlu/<attribute>
		if probe != "mmlu" {
			t.Fatalf("%s: unknown kind %s", it.ID, it.Kind)
		}
		i := slices.IndexFunc(attributes, func(a attribute) bool { return a.name == it.Kind })
		at := attributes[i]
		var l land
		for _, cand := range w.lands {
			if strings.Contains(ctx, " "+cand.name+"?") || strings.Contains(ctx, " "+cand.name+" ") {
				l = cand
			}
		}
		ok = func(c string) bool { return l.name != "" && c == " "+at.value(l) }
	}
	var out []int
	for i, c := range it.Choices {
		if ok(c) {
			out = append(out, i)
		}
	}
	return out
}

func TestMCItemsWellFormed(t *testing.T) {
	b, _ := defaultBuild(t)
	w := newWorld(b.Config)
	for _, p := range []struct {
		name  string
		items []MCItem
	}{{"arc", b.ARC}, {"hellaswag", b.HellaSwag}, {"mmlu", b.MMLU}} {
		kinds := map[string]int{}
		ids := map[string]bool{}
		contexts := map[string]bool{}
		for _, it := range p.items {
			kinds[it.Kind]++
			if ids[it.ID] {
				t.Errorf("duplicate id %s", it.ID)
			}
			ids[it.ID] = true
			if contexts[it.Context+it.Choices[it.Answer]] {
				t.Errorf("%s: duplicate item", it.ID)
			}
			contexts[it.Context+it.Choices[it.Answer]] = true
			if len(it.Choices) != 4 || it.Answer < 0 || it.Answer >= 4 {
				t.Fatalf("%s: %d choices, answer %d", it.ID, len(it.Choices), it.Answer)
			}
			if len(slices.Compact(slices.Sorted(slices.Values(it.Choices)))) != 4 {
				t.Errorf("%s: duplicate choices %q", it.ID, it.Choices)
			}
			for _, c := range it.Choices {
				if !strings.HasPrefix(c, " ") || strings.HasPrefix(c, "  ") {
					t.Errorf("%s: choice %q must start with exactly one space", it.ID, c)
				}
			}
			if got := correctChoices(t, w, p.name, it); len(got) != 1 || got[0] != it.Answer {
				t.Errorf("%s: correct choices %v, answer %d: %q %q", it.ID, got, it.Answer, it.Context, it.Choices)
			}
		}
		t.Logf("%s kinds: %v", p.name, kinds)
	}
	// Answer positions are spread out (no position bias).
	pos := make([]int, 4)
	for _, items := range [][]MCItem{b.ARC, b.HellaSwag, b.MMLU} {
		for _, it := range items {
			pos[it.Answer]++
		}
	}
	for i, n := range pos {
		if n < 100 {
			t.Errorf("answer position %d used only %d times of 600", i, n)
		}
	}
}

func TestProbesNotInCorpus(t *testing.T) {
	b, idx := defaultBuild(t)
	checkProbesNotInCorpus(t, b, idx)
}

// checkProbesNotInCorpus: no probe item and no oracle example occurs in the corpus, and the
// oracle repeats no probe item.
func checkProbesNotInCorpus(t *testing.T, b *Bench, idx *suffixarray.Index) {
	t.Helper()
	for _, items := range [][]MCItem{b.ARC, b.HellaSwag, b.MMLU} {
		for _, it := range items {
			if n := count(idx, it.Context+it.Choices[it.Answer]); n > 0 {
				t.Errorf("%s occurs in the corpus %d times: %q", it.ID, n, it.Context+it.Choices[it.Answer])
			}
		}
	}
	probeText := map[string]bool{}
	for _, it := range b.GSM {
		if n := count(idx, it.Prompt); n > 0 {
			t.Errorf("%s prompt occurs in the corpus: %q", it.ID, it.Prompt)
		}
		probeText[it.Prompt] = true
		if got, ok := ExtractGSMAnswer(it.Solution); !ok || got != it.Answer || !GSMStop(it.Solution+"\n") {
			t.Errorf("%s: solution %q does not give answer %q", it.ID, it.Solution, it.Answer)
		}
	}
	for _, items := range [][]MCItem{b.ARC, b.HellaSwag, b.MMLU} {
		for _, it := range items {
			probeText[it.Context] = true
		}
	}
	for i, ex := range b.RetentionOracle {
		if count(idx, ex.Prompt+ex.Response) > 0 {
			t.Errorf("oracle %d occurs in the corpus", i)
		}
		if probeText[ex.Prompt] {
			t.Errorf("oracle %d repeats a probe item: %q", i, ex.Prompt)
		}
	}
}

// ngramPredict is a lookup baseline: for the longest suffix of the context
// (at most 48 bytes) such that suffix+choice occurs in the corpus for some
// choice, predict the choice with the most occurrences.
func ngramPredict(idx *suffixarray.Index, it MCItem) int {
	for _, L := range []int{48, 40, 32, 24, 16, 12, 8, 4, 0} {
		L = min(L, len(it.Context))
		suffix := it.Context[len(it.Context)-L:]
		best, bestN := -1, 0
		for i, c := range it.Choices {
			if n := count(idx, suffix+c); n > bestN {
				best, bestN = i, n
			}
		}
		if best >= 0 {
			return best
		}
	}
	return 0
}

func accuracy(items []MCItem, predict func(MCItem) int) map[string]float64 {
	hit, tot := map[string]int{}, map[string]int{}
	for _, it := range items {
		for _, k := range []string{"all", it.Kind} {
			tot[k]++
			if predict(it) == it.Answer {
				hit[k]++
			}
		}
	}
	out := map[string]float64{}
	for k, n := range tot {
		out[k] = float64(hit[k]) / float64(n)
	}
	return out
}

// TestLookupBaselines shows that the probes are answerable from the corpus
// (and not from the choices alone).
func TestLookupBaselines(t *testing.T) {
	b, idx := defaultBuild(t)
	ngram := func(it MCItem) int { return ngramPredict(idx, it) }
	choiceOnly := func(it MCItem) int { // corpus frequency of the choice alone
		best, bestN := 0, -1
		for i, c := range it.Choices {
			if n := count(idx, c); n > bestN {
				best, bestN = i, n
			}
		}
		return best
	}
	for _, p := range []struct {
		name     string
		items    []MCItem
		minNgram float64
	}{{"arc", b.ARC, 0}, {"hellaswag", b.HellaSwag, 0.95}, {"mmlu", b.MMLU, 0.6}} {
		ng, co := accuracy(p.items, ngram), accuracy(p.items, choiceOnly)
		t.Logf("%s: n-gram baseline %v; choice-only baseline %v", p.name, ng, co)
		if ng["all"] < p.minNgram {
			t.Errorf("%s: n-gram baseline %.2f < %.2f", p.name, ng["all"], p.minNgram)
		}
		if p.name == "hellaswag" && co["all"] > 0.5 {
			t.Errorf("hellaswag is answerable from the choices alone (%.2f)", co["all"])
		}
	}

	// mmlu: every fact is stated in the corpus, in several templates, and a
	// fact lookup (which choice does the corpus state for this land?) answers
	// every item.
	w := newWorld(b.Config)
	hits := 0
	for _, it := range b.MMLU {
		at := attributes[slices.IndexFunc(attributes, func(a attribute) bool { return a.name == it.Kind })]
		for _, l := range w.lands {
			if !strings.Contains(it.Context, " "+l.name+"?") && !strings.Contains(it.Context, " "+l.name+" ") {
				continue
			}
			best, bestN := -1, 0
			for i, c := range it.Choices {
				alt := l
				v := strings.TrimPrefix(strings.TrimPrefix(c, " "), "the ")
				switch at.name {
				case "capital":
					alt.capital = v
				case "export":
					alt.export = v
				case "animal":
					alt.animal = v
				case "color":
					alt.color = v
				}
				n := 0
				for _, tmpl := range at.states {
					n += count(idx, at.statement(tmpl, alt))
				}
				if i == it.Answer && n < 10 {
					t.Errorf("%s: fact stated only %d times", it.ID, n)
				}
				if n > bestN {
					best, bestN = i, n
				}
			}
			if best == it.Answer {
				hits++
			}
		}
	}
	t.Logf("mmlu: fact lookup answers %d of %d", hits, len(b.MMLU))
	if hits != len(b.MMLU) {
		t.Errorf("mmlu: fact lookup answers only %d of %d", hits, len(b.MMLU))
	}

	// arc: the statement each item needs is in the corpus.
	for _, it := range b.ARC {
		ans := it.Choices[it.Answer]
		var need []string
		switch it.Kind {
		case "kind":
			for _, n := range needs {
				for _, th := range n.things {
					if " "+th.noun == ans {
						need = append(need, th.subject()+" is "+n.kind+".")
					}
				}
			}
		case "size":
			cmp := " is bigger than "
			if strings.Contains(it.Context, "smallest") {
				cmp = " is smaller than "
			}
			for i, c := range it.Choices {
				if i != it.Answer {
					need = append(need, capitalize(strings.TrimSpace(ans))+cmp+strings.TrimSpace(c)+".")
				}
			}
		case "tool":
			for _, tl := range tools {
				if " a "+tl.noun == ans {
					need = append(need, "You use a "+tl.noun+" to "+tl.purpose+".")
				}
			}
		case "cause":
			for _, c := range causes {
				if strings.Contains(it.Context, " "+c.third+" "+c.obj+". ") {
					need = append(need, "If you "+c.base+" "+c.obj+", it "+c.result+".")
				}
			}
		}
		if len(need) == 0 {
			t.Fatalf("%s: no lookup for kind %s", it.ID, it.Kind)
		}
		for _, s := range need {
			if count(idx, s) == 0 {
				t.Errorf("%s: the corpus never states %q", it.ID, s)
			}
		}
	}

	// hellaswag: every choice is a fluent corpus continuation somewhere, and
	// the correct one follows the item's regularity for other people.
	for _, it := range b.HellaSwag {
		for _, c := range it.Choices {
			if count(idx, c) == 0 {
				t.Errorf("%s: choice %q never occurs in the corpus", it.ID, c)
			}
		}
	}

	// gsm: every template is well represented, and the reference steps are
	// arithmetic facts the corpus shows.
	sig := map[string]string{"buy_give": " more and gives ", "bags": " bags with ", "times": " times as many. ",
		"share": " friends. Then each friend gets ", "lost_found": " and then found ", "daily": " more each day for ",
		"packs": " packs of ", "fewer": " fewer than "}
	for id, s := range sig {
		if n := count(idx, s); n < 100 {
			t.Errorf("gsm template %s appears %d times in the corpus", id, n)
		}
	}
	seen, steps := 0, 0
	for _, it := range b.GSM {
		for _, st := range splitSteps(strings.TrimPrefix(strings.Split(it.Solution, "\n")[0], " ")) {
			steps++
			if count(idx, st+".") > 0 {
				seen++
			}
		}
	}
	t.Logf("gsm: %d of %d reference steps occur in the corpus", seen, steps)
	if float64(seen) < 0.7*float64(steps) {
		t.Errorf("gsm: only %d of %d reference steps occur in the corpus", seen, steps)
	}
}

// TestOtherSeeds repeats the key probe checks on other worlds.
func TestOtherSeeds(t *testing.T) {
	for _, seed := range []int64{2, 3, 1234567} {
		cfg := DefaultConfig()
		cfg.Seed = seed
		cfg.CorpusDocs = 4000
		b, err := Build(cfg)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		idx := suffixarray.New([]byte(strings.Join(b.Corpus, "\n\n")))
		w := newWorld(cfg)
		for _, p := range []struct {
			name  string
			items []MCItem
		}{{"arc", b.ARC}, {"hellaswag", b.HellaSwag}, {"mmlu", b.MMLU}} {
			for _, it := range p.items {
				if got := correctChoices(t, w, p.name, it); len(got) != 1 || got[0] != it.Answer {
					t.Errorf("seed %d %s: correct choices %v, answer %d", seed, it.ID, got, it.Answer)
				}
				if count(idx, it.Context+it.Choices[it.Answer]) > 0 {
					t.Errorf("seed %d %s occurs in the corpus", seed, it.ID)
				}
			}
		}
		for _, it := range b.GSM {
			if count(idx, it.Prompt) > 0 {
				t.Errorf("seed %d %s occurs in the corpus", seed, it.ID)
			}
		}
		for _, tg := range []*Target{b.Code, b.Math} {
			for _, it := range tg.Test {
				if !tg.Judge(it, it.Reference) {
					t.Errorf("seed %d %s: reference fails", seed, it.ID)
				}
			}
		}
	}
}
