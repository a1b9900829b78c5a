package minibench

import (
	"fmt"
	"strings"
)

// The small world: agents, objects, places and the regularities that tie
// them together. Every table here is fixed (the same for every seed); the
// seed decides the knowledge base (lands.go-style tables at the end), which
// combinations are reserved for probes, and what the corpus samples.
//
// Regularities the corpus states over and over, and the probes test:
//
//	need:        a person who is <state> goes to <place> and <verb>s a <thing>
//	             of the need's kind (hungry -> kitchen -> ate an apple).
//	consequence: after <verb>ing a thing of that kind, the person <after>
//	             (ate a pear -> washed the plate).
//	kinds:       every thing has exactly one kind ("A kite is a toy.").
//	sizes:       animals have a strict size order (an ant < ... < a whale).
//	tools:       every tool has one purpose ("You use a saw to cut some wood.").
//	causes:      every cause has one effect ("If you drop a glass, it breaks.").

// person is an agent. Names are chosen so that none is a substring of
// another (a probe about "Ana" can never match inside "Hana").
type person struct {
	name   string
	female bool
}

func (p person) he() string {
	if p.female {
		return "she"
	}
	return "he"
}

func (p person) He() string { return capitalize(p.he()) }

var people = []person{
	{"Ana", true}, {"Bea", true}, {"Cora", true}, {"Dina", true}, {"Eva", true}, {"Fay", true},
	{"Gina", true}, {"Hope", true}, {"Ivy", true}, {"Jill", true}, {"Kate", true}, {"Lily", true},
	{"Bob", false}, {"Carl", false}, {"Dan", false}, {"Eli", false}, {"Finn", false}, {"Gus", false},
	{"Hal", false}, {"Ian", false}, {"Jack", false}, {"Kurt", false}, {"Leo", false}, {"Max", false},
}

// thing is an object with its determiner ("a", "an" or "some" for mass nouns).
type thing struct{ noun, det string }

// np is the noun phrase: "a pear", "some milk".
func (t thing) np() string { return t.det + " " + t.noun }

// subject is the generic subject form: "A pear", "Milk".
func (t thing) subject() string {
	if t.det == "some" {
		return capitalize(t.noun)
	}
	return capitalize(t.det) + " " + t.noun
}

// need is one causal script: state -> place -> verb a thing of the kind ->
// consequence.
type need struct {
	state  string // "hungry"
	place  string // "kitchen"
	verb   string // past tense: "ate"
	after  string // what follows: "washed the plate"
	kind   string // "a kind of food"; used as "<X> is <kind>."
	things []thing
}

func a(n string) thing    { return thing{n, "a"} }
func an(n string) thing   { return thing{n, "an"} }
func some(n string) thing { return thing{n, "some"} }

var needs = []need{
	{"hungry", "kitchen", "ate", "washed the plate", "a kind of food",
		[]thing{an("apple"), a("pear"), a("plum"), a("peach"), some("bread"), some("soup")}},
	{"thirsty", "cafe", "drank", "washed the cup", "a kind of drink",
		[]thing{some("milk"), some("tea"), some("juice"), some("water"), some("cocoa"), some("lemonade")}},
	{"cold", "closet", "put on", "went out into the snow", "a piece of clothing",
		[]thing{a("coat"), a("scarf"), a("hat"), a("sweater"), a("jacket"), a("cap")}},
	{"bored", "park", "played with", "put it back in the toy box", "a toy",
		[]thing{a("ball"), a("kite"), a("doll"), a("drum"), a("yoyo"), a("puzzle")}},
	{"curious", "library", "read", "put it back on the shelf", "something you read",
		[]thing{a("book"), a("map"), a("letter"), a("poem"), a("comic"), a("story")}},
	{"sleepy", "bedroom", "lay down on", "woke up rested", "something you sleep on",
		[]thing{a("bed"), a("sofa"), a("cot"), a("hammock"), a("mat"), a("futon")}},
	{"dirty", "bathroom", "washed with", "felt clean again", "something you wash with",
		[]thing{some("soap"), a("sponge"), a("brush"), a("towel"), a("cloth"), some("shampoo")}},
}

// tool has exactly one purpose.
type tool struct{ noun, purpose string }

var tools = []tool{
	{"saw", "cut some wood"}, {"hammer", "hit a nail"}, {"shovel", "dig a hole"},
	{"broom", "sweep the floor"}, {"pen", "write a letter"}, {"needle", "sew a shirt"},
	{"key", "open a lock"}, {"ladder", "reach the roof"}, {"bucket", "carry water"},
	{"knife", "slice the bread"},
}

// animals in strictly increasing size.
var animals = []thing{
	an("ant"), a("bee"), a("mouse"), a("frog"), a("rabbit"), a("cat"),
	a("dog"), a("goat"), a("cow"), a("horse"), an("elephant"), a("whale"),
}

// cause: doing <base> to <obj> makes it <result>.
type cause struct {
	base, third, past  string // "heat", "heats", "heated"
	obj                string // "some ice"
	result, resultPast string // "melts", "melted"
}

var causes = []cause{
	{"heat", "heats", "heated", "some ice", "melts", "melted"},
	{"drop", "drops", "dropped", "a glass", "breaks", "broke"},
	{"water", "waters", "watered", "a seed", "grows", "grew"},
	{"drop", "drops", "dropped", "an egg", "cracks", "cracked"},
	{"heat", "heats", "heated", "some water", "boils", "boiled"},
	{"light", "lights", "lit", "a candle", "burns", "burned"},
	{"hang", "hangs", "hung", "a wet shirt in the sun", "dries", "dried"},
	{"put", "puts", "put", "some water in the freezer", "freezes", "froze"},
}

// land is one entity of the invented knowledge base (the MMLU role).
type land struct {
	name, capital, export, animal, color string
}

var (
	exports = []string{"salt", "wool", "tin", "silk", "corn", "clay", "rice", "iron", "honey", "paper", "rope", "amber"}
	symbols = []string{"owl", "fox", "bear", "wolf", "hawk", "deer", "swan", "crab", "lion", "seal", "moth", "toad"}
	colors  = []string{"red", "blue", "green", "gold", "white", "black", "gray", "pink"}
)

// attribute is one column of the knowledge base, with the declarative
// templates the corpus uses and the two question templates: for each fact one
// question template is reserved for the mmlu probe and the other appears in
// the corpus, so the probe is a rephrasing the model has seen for other lands.
type attribute struct {
	name      string
	value     func(l land) string // answer as it is written after "A:"
	bare      func(l land) string // value inside statements
	states    []string            // {L} land, {V} bare value
	questions [2]string           // {L} land
	pool      func(w *world) []string
}

var attributes = []attribute{
	{
		name:  "capital",
		value: func(l land) string { return l.capital },
		bare:  func(l land) string { return l.capital },
		states: []string{"The capital of {L} is {V}.", "{V} is the capital of {L}.",
			"The people of {L} rule from {V}.", "{L} has its capital at {V}."},
		questions: [2]string{"Q: What is the capital of {L}?", "Q: Which city is the capital of {L}?"},
		pool: func(w *world) []string {
			out := make([]string, len(w.lands))
			for i, l := range w.lands {
				out[i] = l.capital
			}
			return out
		},
	},
	{
		name:  "export",
		value: func(l land) string { return l.export },
		bare:  func(l land) string { return l.export },
		states: []string{"{L} exports {V}.", "The main export of {L} is {V}.",
			"Much of the {V} in the world comes from {L}.", "Traders buy {V} in {L}."},
		questions: [2]string{"Q: What does {L} export?", "Q: What is the main export of {L}?"},
		pool:      func(*world) []string { return exports },
	},
	{
		name:  "animal",
		value: func(l land) string { return "the " + l.animal },
		bare:  func(l land) string { return l.animal },
		states: []string{"The symbol of {L} is the {V}.", "{L} uses the {V} as its symbol.",
			"In {L}, the {V} is a sacred animal.", "The {V} stands for {L}."},
		questions: [2]string{"Q: What animal is the symbol of {L}?", "Q: Which animal stands for {L}?"},
		pool: func(*world) []string {
			out := make([]string, len(symbols))
			for i, s := range symbols {
				out[i] = "the " + s
			}
			return out
		},
	},
	{
		name:  "color",
		value: func(l land) string { return l.color },
		bare:  func(l land) string { return l.color },
		states: []string{"The flag of {L} is {V}.", "{L} has a {V} flag.",
			"People in {L} wave {V} flags.", "The {V} flag belongs to {L}."},
		questions: [2]string{"Q: What color is the flag of {L}?", "Q: Which color is the flag of {L}?"},
		pool:      func(*world) []string { return colors },
	},
}

func (at attribute) statement(tmpl string, l land) string {
	return strings.NewReplacer("{L}", l.name, "{V}", at.bare(l)).Replace(tmpl)
}

func (at attribute) question(q int, l land) string {
	return strings.ReplaceAll(at.questions[q], "{L}", l.name) + "\nA:"
}

// world is the seed-dependent part: the knowledge base and the reservation
// predicates.
type world struct {
	seed  int64
	lands []land
}

func newWorld(cfg Config) *world {
	return &world{seed: cfg.Seed, lands: makeLands(cfg.Seed, cfg.Lands)}
}

// pairReserved: (person, thing) combinations that never occur in a corpus
// narrative; the hellaswag probe is built from them.
func (w *world) pairReserved(p person, t thing) bool {
	return reserved(w.seed, 6, "pair", p.name, t.noun)
}

// mmluQ is the question template (0 or 1) reserved for the probe of fact
// (land, attribute); the corpus asks that fact only with the other one.
func (w *world) mmluQ(l land, at attribute) int {
	return int(keyHash(w.seed, "mmluq", l.name, at.name) % 2)
}

// causeReserved: (person, cause) questions reserved for the arc probe.
func (w *world) causeReserved(p person, c cause) bool {
	return reserved(w.seed, 3, "cause", p.name, c.base, c.obj)
}

// mcReserved: listed-option questions (arc category, size, tool) whose exact
// option list is reserved for the arc probe.
func (w *world) mcReserved(kind string, parts ...string) bool {
	return reserved(w.seed, 8, "mc/"+kind, parts...)
}

const (
	consonants = "bdfgklmnprstvz"
	vowels     = "aeiou"
	finals     = "kvz" // few English words end so: no "Sugar" or "Lemon"
)

// makeLands invents n lands with unique names (pattern CVCVF, e.g. "Voruk")
// and unique capitals (pattern CVCCVF, e.g. "Tamkov"), F being k, v or z.
// Neither pattern can contain the other, and names of one pattern have
// equal length, so no name is a substring of another.
func makeLands(seed int64, n int) []land {
	r := newRNG(seed, "lands")
	used := map[string]bool{"topaz": true}
	for _, wd := range vocabulary() {
		used[wd] = true
	}
	word := func(pattern string) string {
		for {
			var b strings.Builder
			for _, c := range pattern {
				switch c {
				case 'C':
					b.WriteByte(consonants[r.intn(len(consonants))])
				case 'F':
					b.WriteByte(finals[r.intn(len(finals))])
				default:
					b.WriteByte(vowels[r.intn(len(vowels))])
				}
			}
			s := b.String()
			if !used[s] {
				used[s] = true
				return capitalize(s)
			}
		}
	}
	lands := make([]land, n)
	for i := range lands {
		lands[i] = land{
			name:    word("CVCVF"),
			capital: word("CVCCVF"),
			export:  pick(r, exports),
			animal:  pick(r, symbols),
			color:   pick(r, colors),
		}
	}
	return lands
}

// vocabulary lists the lower-case words of the fixed tables (so invented
// names never collide with them).
func vocabulary() []string {
	var out []string
	add := func(s string) { out = append(out, strings.Fields(strings.ToLower(s))...) }
	for _, p := range people {
		add(p.name)
	}
	for _, n := range needs {
		add(n.state + " " + n.place + " " + n.verb + " " + n.after + " " + n.kind)
		for _, t := range n.things {
			add(t.noun)
		}
	}
	for _, t := range tools {
		add(t.noun + " " + t.purpose)
	}
	for _, t := range animals {
		add(t.noun)
	}
	for _, s := range [][]string{exports, symbols, colors} {
		for _, x := range s {
			add(x)
		}
	}
	return out
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// optionList renders "a, b, c or d".
func optionList(xs []string) string {
	if len(xs) == 1 {
		return xs[0]
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " or " + xs[len(xs)-1]
}

func itoa(n int) string { return fmt.Sprint(n) }
