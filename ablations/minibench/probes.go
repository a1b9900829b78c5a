package minibench

import (
	"fmt"
	"strings"
)

// Retention probes (the roles of ARC-Challenge, HellaSwag, MMLU and GSM8K).
// Every item is built only from combinations that the corpus never uses
// (world.go's reservation predicates), so no item occurs in the corpus
// verbatim, while every fact and regularity it needs does.
//
// Multiple-choice items (arc, hellaswag, mmlu) have 4 choices and exactly one
// correct answer; chance is 1/4. Each choice is a continuation to append to
// Context as is (it starts with a space); the caller scores a choice by the
// summed log-likelihood of its tokens given Context (length-normalising is
// the caller's option) and predicts the argmax.
//
//	arc        reasoning over the world, options listed in the question:
//	           kind     "Q: Which of these is a toy: pear, kite, coat or soap?\nA:" -> " kite"
//	           size     "Q: Which is the biggest: a cat, an ant, a horse or a dog?\nA:" -> " a horse"
//	           tool     "Q: Bob wants to dig a hole. What should he use: a saw, a shovel, a pen or a key?\nA:" -> " a shovel"
//	           cause    "Q: Ana drops a glass. What happens to it?\nA: It" -> " breaks."
//	hellaswag  the plausible continuation of a story under the world's regularities:
//	           need     "Ana was hungry, so she went to the kitchen and" -> " ate a pear."
//	           after    "Ana ate a pear. After that, she" -> " washed the plate."
//	           (distractors are well-formed endings from the other needs)
//	mmlu       knowledge-base facts asked with the question template the
//	           corpus never uses for that fact:
//	           "Q: Which city is the capital of Voruk?\nA:" -> " Tamkov"
//	gsm        "Q: <word problem>\nA:" -> generate, judged by ExtractGSMAnswer (chance 0)

// MCItem is one multiple-choice probe item.
type MCItem struct {
	ID      string   `json:"id"`
	Kind    string   `json:"kind"` // sub-type, e.g. "size"
	Context string   `json:"context"`
	Choices []string `json:"choices"`
	Answer  int      `json:"answer"`
}

// GenItem is one exact-match generation probe item (gsm). Solution is the
// reference completion of Prompt (not needed for scoring).
type GenItem struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"` // template name
	Prompt   string `json:"prompt"`
	Answer   string `json:"answer"`
	Solution string `json:"solution"`
}

// Probe names, and the limit on len(Context)+len(choice) (MC) and on
// len(Prompt)+len(Solution) (gsm).
const (
	ProbeARC       = "arc"
	ProbeHellaSwag = "hellaswag"
	ProbeMMLU      = "mmlu"
	ProbeGSM       = "gsm"

	MaxMCBytes  = 128
	MaxGSMBytes = 192
)

// mcDraft is an item before it gets an ID.
type mcDraft struct {
	kind    string
	ctx     string
	choices []string
	answer  int
	key     []string // the combination that decides reservation
}

// withAnswer places correct among distractors at a random position.
func withAnswer(r *rng, correct string, distractors []string) ([]string, int) {
	choices := append([]string{correct}, distractors...)
	shuffle(r, choices)
	for i, c := range choices {
		if c == correct {
			return choices, i
		}
	}
	panic("unreachable")
}

// ---- arc ----

func arcKindItem(r *rng) mcDraft {
	ni := r.intn(len(needs))
	n := needs[ni]
	names := []string{pick(r, n.things).noun}
	for _, o := range sampleOthers(r, len(needs), 3, ni) {
		names = append(names, pick(r, needs[o].things).noun)
	}
	correct := names[0]
	shuffle(r, names)
	d := mcDraft{kind: "kind", ctx: "Q: Which of these is " + n.kind + ": " + optionList(names) + "?\nA:"}
	for i, x := range names {
		d.choices = append(d.choices, " "+x)
		if x == correct {
			d.answer = i
		}
	}
	d.key = append([]string{n.kind}, names...)
	return d
}

func arcSizeItem(r *rng) mcDraft {
	idx := sampleOthers(r, len(animals), 4, -1)
	biggest := r.intn(2) == 0
	best := idx[0]
	for _, i := range idx {
		if (biggest && i > best) || (!biggest && i < best) {
			best = i
		}
	}
	word := "smallest"
	if biggest {
		word = "biggest"
	}
	var names []string
	d := mcDraft{kind: "size"}
	for j, i := range idx {
		names = append(names, animals[i].np())
		d.choices = append(d.choices, " "+animals[i].np())
		if i == best {
			d.answer = j
		}
	}
	d.ctx = "Q: Which is the " + word + ": " + optionList(names) + "?\nA:"
	d.key = append([]string{word}, names...)
	return d
}

func arcToolItem(r *rng) mcDraft {
	p := pick(r, people)
	ti := r.intn(len(tools))
	idx := append([]int{ti}, sampleOthers(r, len(tools), 3, ti)...)
	shuffle(r, idx)
	var names []string
	d := mcDraft{kind: "tool"}
	for j, i := range idx {
		names = append(names, "a "+tools[i].noun)
		d.choices = append(d.choices, " a "+tools[i].noun)
		if i == ti {
			d.answer = j
		}
	}
	d.ctx = "Q: " + p.name + " wants to " + tools[ti].purpose + ". What should " + p.he() + " use: " + optionList(names) + "?\nA:"
	d.key = append([]string{p.name, tools[ti].purpose}, names...)
	return d
}

func arcCauseContext(p person, c cause) string {
	return "Q: " + p.name + " " + c.third + " " + c.obj + ". What happens to it?\nA: It"
}

func arcCauseItem(r *rng, p person, ci int) mcDraft {
	c := causes[ci]
	var wrong []string
	for _, o := range sampleOthers(r, len(causes), 3, ci) {
		wrong = append(wrong, " "+causes[o].result+".")
	}
	d := mcDraft{kind: "cause", ctx: arcCauseContext(p, c), key: []string{p.name, c.base, c.obj}}
	d.choices, d.answer = withAnswer(r, " "+c.result+".", wrong)
	return d
}

func genARC(w *world, n int) ([]mcDraft, error) {
	r := newRNG(w.seed, "probe/arc")
	type pc struct {
		p person
		c int
	}
	var causePool []pc
	for _, p := range people {
		for ci, c := range causes {
			if w.causeReserved(p, c) {
				causePool = append(causePool, pc{p, ci})
			}
		}
	}
	shuffle(r, causePool)
	seen := map[string]bool{}
	var out []mcDraft
	attempts := 0
	for t := 0; len(out) < n; t++ {
		if attempts++; attempts > 1000*n+1000 {
			return nil, fmt.Errorf("minibench: arc: could only build %d of %d items", len(out), n)
		}
		var d mcDraft
		switch t % 4 {
		case 0:
			d = arcKindItem(r)
		case 1:
			d = arcSizeItem(r)
		case 2:
			d = arcToolItem(r)
		default:
			if len(causePool) == 0 {
				continue
			}
			d = arcCauseItem(r, causePool[0].p, causePool[0].c)
			causePool = causePool[1:]
		}
		if d.kind != "cause" && !w.mcReserved(d.kind, d.key...) {
			t-- // retry the same type until a reserved option list comes up
			continue
		}
		if seen[d.ctx] {
			continue
		}
		seen[d.ctx] = true
		out = append(out, d)
	}
	return out, nil
}

// ---- hellaswag ----

func genHellaSwag(w *world, n int) ([]mcDraft, error) {
	r := newRNG(w.seed, "probe/hellaswag")
	type cand struct {
		p     person
		ni, t int
		frame int
	}
	var pool []cand
	for _, p := range people {
		for ni, nd := range needs {
			for ti, t := range nd.things {
				if w.pairReserved(p, t) {
					pool = append(pool, cand{p, ni, ti, 0}, cand{p, ni, ti, 1})
				}
			}
		}
	}
	shuffle(r, pool)
	out := make([]mcDraft, 0, n)
	seen := map[string]bool{}
	for _, c := range pool {
		if len(out) == n {
			break
		}
		nd := needs[c.ni]
		t := nd.things[c.t]
		others := sampleOthers(r, len(needs), 3, c.ni)
		var d mcDraft
		var correct string
		var wrong []string
		if c.frame == 0 {
			d.kind = "need"
			d.ctx = c.p.name + " was " + nd.state + ", so " + c.p.he() + " went to the " + nd.place + " and"
			correct = " " + nd.verb + " " + t.np() + "."
			for _, o := range others {
				wrong = append(wrong, " "+needs[o].verb+" "+pick(r, needs[o].things).np()+".")
			}
		} else {
			d.kind = "after"
			d.ctx = c.p.name + " " + nd.verb + " " + t.np() + ". After that, " + c.p.he()
			correct = " " + nd.after + "."
			for _, o := range others {
				wrong = append(wrong, " "+needs[o].after+".")
			}
		}
		if seen[d.ctx] {
			continue // one item per context
		}
		seen[d.ctx] = true
		d.choices, d.answer = withAnswer(r, correct, wrong)
		d.key = []string{c.p.name, t.noun, itoa(c.frame)}
		out = append(out, d)
	}
	if len(out) < n {
		return nil, fmt.Errorf("minibench: hellaswag: only %d distinct reserved items for %d requested", len(out), n)
	}
	return out, nil
}

// ---- mmlu ----

func genMMLU(w *world, n int) ([]mcDraft, error) {
	r := newRNG(w.seed, "probe/mmlu")
	type fact struct{ l, a int }
	var facts []fact
	for li := range w.lands {
		for ai := range attributes {
			facts = append(facts, fact{li, ai})
		}
	}
	if len(facts) < n {
		return nil, fmt.Errorf("minibench: mmlu: only %d facts (%d lands x %d attributes) for %d items; raise Lands",
			len(facts), len(w.lands), len(attributes), n)
	}
	shuffle(r, facts)
	out := make([]mcDraft, 0, n)
	for _, f := range facts[:n] {
		l, at := w.lands[f.l], attributes[f.a]
		correct := at.value(l)
		var pool []string
		for _, v := range at.pool(w) {
			if v != correct {
				pool = append(pool, v)
			}
		}
		pool = dedupe(pool)
		shuffle(r, pool)
		var wrong []string
		for _, v := range pool[:3] {
			wrong = append(wrong, " "+v)
		}
		d := mcDraft{kind: at.name, ctx: at.question(w.mmluQ(l, at), l), key: []string{l.name, at.name}}
		d.choices, d.answer = withAnswer(r, " "+correct, wrong)
		out = append(out, d)
	}
	return out, nil
}

func dedupe(xs []string) []string {
	seen := map[string]bool{}
	out := xs[:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// ---- gsm ----

func genGSMProbe(w *world, n int) ([]gsmProblem, error) {
	r := newRNG(w.seed, "probe/gsm")
	seen := map[string]bool{}
	var out []gsmProblem
	for attempts := 0; len(out) < n; attempts++ {
		if attempts > 1000*n+1000 {
			return nil, fmt.Errorf("minibench: gsm: could only build %d of %d items", len(out), n)
		}
		g := genGSM(r, w.seed, true)
		k := strings.Join(g.key(), "|")
		if seen[k] {
			continue // each (template, numbers) combination once
		}
		seen[k] = true
		out = append(out, g)
	}
	return out, nil
}

// ---- assembly ----

func mcItems(name string, ds []mcDraft) []MCItem {
	out := make([]MCItem, len(ds))
	for i, d := range ds {
		out[i] = MCItem{ID: fmt.Sprintf("%s-%04d", name, i), Kind: d.kind, Context: d.ctx, Choices: d.choices, Answer: d.answer}
	}
	return out
}

func mcOracle(ds []mcDraft) []Example {
	var out []Example
	for _, d := range ds {
		out = append(out, Example{Prompt: d.ctx, Response: d.choices[d.answer]})
	}
	return out
}

// oracleShares splits the oracle size over the four probes (arc, hellaswag,
// mmlu, gsm), as evenly as possible.
func oracleShares(total int) [4]int {
	var s [4]int
	for i := range s {
		s[i] = total / 4
		if i < total%4 {
			s[i]++
		}
	}
	return s
}

// buildProbes fills the probe sets and the retention oracle of b.
func buildProbes(b *Bench, w *world) error {
	cfg := b.Config
	n := cfg.ProbeItems
	o := oracleShares(cfg.OracleSize)

	arc, err := genARC(w, n+o[0])
	if err != nil {
		return err
	}
	hs, err := genHellaSwag(w, n+o[1])
	if err != nil {
		return err
	}
	mm, err := genMMLU(w, n+o[2])
	if err != nil {
		return err
	}
	gs, err := genGSMProbe(w, n+o[3])
	if err != nil {
		return err
	}

	b.ARC, b.HellaSwag, b.MMLU = mcItems(ProbeARC, arc[:n]), mcItems(ProbeHellaSwag, hs[:n]), mcItems(ProbeMMLU, mm[:n])
	for i, g := range gs[:n] {
		b.GSM = append(b.GSM, GenItem{ID: fmt.Sprintf("%s-%04d", ProbeGSM, i), Kind: g.template,
			Prompt: g.prompt(), Answer: itoa(g.answer), Solution: g.completion()})
	}
	b.RetentionOracle = append(b.RetentionOracle, mcOracle(arc[n:])...)
	b.RetentionOracle = append(b.RetentionOracle, mcOracle(hs[n:])...)
	b.RetentionOracle = append(b.RetentionOracle, mcOracle(mm[n:])...)
	for _, g := range gs[n:] {
		b.RetentionOracle = append(b.RetentionOracle, Example{Prompt: g.prompt(), Response: g.completion()})
	}
	return nil
}

// mcCorrect returns the correct choice without its leading space.
func (m MCItem) correct() string { return strings.TrimPrefix(m.Choices[m.Answer], " ") }
