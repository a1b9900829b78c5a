package minibench

import (
	"strings"
)

// The general corpus (the pre-training data). Documents are short (at most
// MaxDocBytes), ASCII, contain no blank line, and come in five kinds:
//
//	narrative  stories in the small world: needs, consequences, causes, tools
//	facts      the knowledge base, each land's four facts in varied templates
//	reasoning  ARC-style statements and Q/A: kinds, sizes, tools, causes, units
//	arithmetic GSM-style worked problems ("#### N") and arithmetic drills
//	code       MiniPy functions with example values, but no instructions
//	instruct   (adapt regime only, Mix.Instruct > 0) code-target pairs, see adapt.go
//
// Without instruct documents nothing in the corpus uses the targets' formats
// ("Task:", "Code:", "Problem:", "Solution:", "The answer is"); the math
// target's never occur. No probe item occurs in the corpus verbatim: the
// generators skip every combination reserved for the probes (see world.go).

// MaxDocBytes bounds the length of a corpus document.
const MaxDocBytes = 256

// CorpusMix gives the share of documents of each kind (normalised).
type CorpusMix struct {
	Narrative  float64 `json:"narrative"`
	Facts      float64 `json:"facts"`
	Reasoning  float64 `json:"reasoning"`
	Arithmetic float64 `json:"arithmetic"`
	Code       float64 `json:"code"`
	Instruct   float64 `json:"instruct,omitempty"` // adapt regime (adapt.go); 0 in the from-scratch corpus
}

func (m CorpusMix) weights() []float64 {
	return []float64{m.Narrative, m.Facts, m.Reasoning, m.Arithmetic, m.Code, m.Instruct}
}

const (
	docNarrative = iota
	docFacts
	docReasoning
	docArithmetic
	docCode
	docInstruct
)

type corpusGen struct {
	w         *world
	r         *rng
	landOrder []int // facts docs cycle through lands in shuffled rounds
	landPos   int
	pool      []pretrainFamily // instruct documents' keys (adapt.go)
}

// genCorpus generates the documents. A zero Instruct weight adds no document and draws nothing
// from the random stream, so the from-scratch corpus does not depend on the adapt code.
func genCorpus(w *world, cfg Config, pool []pretrainFamily) []string {
	r := newRNG(cfg.Seed, "corpus")
	g := &corpusGen{w: w, r: r, pool: pool}

	// Exact document counts per kind (largest remainder), then shuffled.
	ws := cfg.Mix.weights()
	sum := 0.0
	for _, x := range ws {
		sum += x
	}
	counts := make([]int, len(ws))
	assigned := 0
	for i, x := range ws {
		counts[i] = int(float64(cfg.CorpusDocs) * x / sum)
		assigned += counts[i]
	}
	for i := 0; assigned < cfg.CorpusDocs; i = (i + 1) % len(ws) {
		if ws[i] > 0 {
			counts[i]++
			assigned++
		}
	}
	var kinds []int
	for k, n := range counts {
		for j := 0; j < n; j++ {
			kinds = append(kinds, k)
		}
	}
	shuffle(r, kinds)

	docs := make([]string, len(kinds))
	for i, k := range kinds {
		switch k {
		case docNarrative:
			docs[i] = g.narrativeDoc()
		case docFacts:
			docs[i] = g.factsDoc()
		case docReasoning:
			docs[i] = g.reasoningDoc()
		case docArithmetic:
			docs[i] = g.arithmeticDoc()
		case docCode:
			docs[i] = g.codeDoc()
		case docInstruct:
			docs[i] = g.instructDoc()
		}
	}
	return docs
}

// assemble joins units from gen with sep until n units are placed or the
// next one would not fit in MaxDocBytes.
func assemble(n int, sep string, gen func() string) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		u := gen()
		extra := len(u)
		if b.Len() > 0 {
			extra += len(sep)
		}
		if b.Len()+extra > MaxDocBytes {
			if b.Len() == 0 {
				continue
			}
			break
		}
		if b.Len() > 0 {
			b.WriteString(sep)
		}
		b.WriteString(u)
	}
	return b.String()
}

// ---- narrative ----

func (g *corpusGen) narrativeDoc() string {
	p := pick(g.r, people)
	return assemble(g.r.between(2, 4), " ", func() string {
		if g.r.float() < 0.3 {
			p = pick(g.r, people)
		}
		return g.narrativeUnit(p)
	})
}

// needThing draws a need and one of its things that is not reserved for p.
func (g *corpusGen) needThing(p person) (need, thing) {
	for {
		n := pick(g.r, needs)
		t := pick(g.r, n.things)
		if !g.w.pairReserved(p, t) {
			return n, t
		}
	}
}

func (g *corpusGen) narrativeUnit(p person) string {
	k := g.r.intn(100)
	switch {
	case k < 78:
		n, t := g.needThing(p)
		vp := n.verb + " " + t.np()
		switch j := g.r.intn(100); {
		case j < 35:
			return p.name + " was " + n.state + ", so " + p.he() + " went to the " + n.place + " and " + vp + "."
		case j < 50:
			return p.name + " " + vp + " in the " + n.place + " because " + p.he() + " was " + n.state + "."
		case j < 62:
			return "Because " + p.name + " was " + n.state + ", " + p.he() + " " + vp + "."
		case j < 85:
			return p.name + " " + vp + ". After that, " + p.he() + " " + n.after + "."
		default:
			return p.name + " went to the " + n.place + " and " + vp + ". Then " + p.he() + " " + n.after + "."
		}
	case k < 89:
		c := pick(g.r, causes)
		return p.name + " " + c.past + " " + c.obj + ", and it " + c.resultPast + "."
	default:
		t := pick(g.r, tools)
		if g.r.intn(2) == 0 {
			return p.name + " wanted to " + t.purpose + ", so " + p.he() + " got a " + t.noun + "."
		}
		return p.name + " used a " + t.noun + " to " + t.purpose + "."
	}
}

// ---- facts ----

func (g *corpusGen) nextLand() land {
	if g.landPos == len(g.landOrder) {
		g.landOrder = make([]int, len(g.w.lands))
		for i := range g.landOrder {
			g.landOrder[i] = i
		}
		shuffle(g.r, g.landOrder)
		g.landPos = 0
	}
	l := g.w.lands[g.landOrder[g.landPos]]
	g.landPos++
	return l
}

// factUnit states one fact: a declarative sentence (80%) or the question
// template that is not reserved for the probe (20%).
func (g *corpusGen) factUnit(l land, at attribute) string {
	if g.r.float() < 0.2 {
		q := 1 - g.w.mmluQ(l, at)
		return at.question(q, l) + " " + at.value(l) + "."
	}
	return at.statement(pick(g.r, at.states), l)
}

// factsDoc states all four facts of the next land in the cycle (so every
// fact appears once per round), then, if there is room, a fact or two about
// another land.
func (g *corpusGen) factsDoc() string {
	l := g.nextLand()
	order := []int{0, 1, 2, 3}
	shuffle(g.r, order)
	units := make([]string, 0, 6)
	for _, i := range order {
		units = append(units, g.factUnit(l, attributes[i]))
	}
	for j := g.r.intn(3); j > 0; j-- {
		units = append(units, g.factUnit(pick(g.r, g.w.lands), pick(g.r, attributes)))
	}
	i := 0
	return assemble(len(units), "\n", func() string { i++; return units[i-1] })
}

// ---- reasoning ----

func (g *corpusGen) reasoningDoc() string {
	return assemble(g.r.between(2, 4), "\n", g.reasoningUnit)
}

func (g *corpusGen) reasoningUnit() string {
	r := g.r
	switch k := r.intn(100); {
	case k < 18: // kind statement
		n := pick(r, needs)
		return pick(r, n.things).subject() + " is " + n.kind + "."
	case k < 25: // kind question
		n := pick(r, needs)
		t := pick(r, n.things)
		return "Q: What is " + strings.ToLower(t.subject()) + "?\nA: " + t.subject() + " is " + n.kind + "."
	case k < 37: // listed-option kind question
		for {
			if d := arcKindItem(r); !g.w.mcReserved(d.kind, d.key...) {
				return d.ctx + d.choices[d.answer] + "."
			}
		}
	case k < 51: // size statement
		i, j := r.intn(len(animals)), r.intn(len(animals)-1)
		if j >= i {
			j++
		}
		if r.intn(2) == 0 {
			i, j = max(i, j), min(i, j)
			return animals[i].subject() + " is bigger than " + animals[j].np() + "."
		}
		i, j = min(i, j), max(i, j)
		return animals[i].subject() + " is smaller than " + animals[j].np() + "."
	case k < 61: // listed-option size question
		for {
			if d := arcSizeItem(r); !g.w.mcReserved(d.kind, d.key...) {
				return d.ctx + d.choices[d.answer] + "."
			}
		}
	case k < 71: // tool statement
		t := pick(r, tools)
		switch r.intn(3) {
		case 0:
			return "You use a " + t.noun + " to " + t.purpose + "."
		case 1:
			return "To " + t.purpose + ", you need a " + t.noun + "."
		default:
			return "A " + t.noun + " is used to " + t.purpose + "."
		}
	case k < 79: // listed-option tool question
		for {
			if d := arcToolItem(r); !g.w.mcReserved(d.kind, d.key...) {
				return d.ctx + d.choices[d.answer] + "."
			}
		}
	case k < 87: // cause statement
		c := pick(r, causes)
		if r.intn(2) == 0 {
			return "If you " + c.base + " " + c.obj + ", it " + c.result + "."
		}
		return "When you " + c.base + " " + c.obj + ", it " + c.result + "."
	case k < 94: // cause question
		for {
			p, c := pick(r, people), pick(r, causes)
			if !g.w.causeReserved(p, c) {
				return arcCauseContext(p, c) + " " + c.result + "."
			}
		}
	default: // unit fact (the math target's facts, not its format)
		return unitFact(pick(r, unitPairs), r.intn(2))
	}
}

// ---- arithmetic ----

func (g *corpusGen) arithmeticDoc() string {
	if g.r.float() < 0.75 {
		p := genGSM(g.r, g.w.seed, false)
		return p.prompt() + p.completion()
	}
	return assemble(g.r.between(4, 10), " ", func() string { return drill(g.r) + "." })
}

// ---- code ----

// codeDoc shows one or two MiniPy functions (named g or h, parameter n) with
// example values; it never pairs a program with an instruction.
func (g *corpusGen) codeDoc() string {
	return assemble(g.r.between(1, 2), "\n", func() string {
		f := pick(g.r, codeFamilies)
		keys := f.keys()
		k := pick(g.r, keys)
		fn := pick(g.r, []string{"g", "h"})
		src := f.program(k, fn, "n")
		prog, err := ParseProgram(f.program(k, "f", "n")) // the interpreter wants f
		if err != nil {
			panic("minibench: bad corpus program: " + err.Error())
		}
		var b strings.Builder
		b.WriteString(src)
		xs := []int{g.r.between(0, 5), g.r.between(6, 12)}
		for _, x := range xs {
			v, err := prog.Call(int64(x))
			if err != nil {
				panic("minibench: corpus program fails: " + err.Error())
			}
			b.WriteString("\n" + fn + "(" + itoa(x) + ") = " + itoa(int(v)))
		}
		return b.String()
	})
}
