package minibench

import "strings"

// The "math" target (the MetaMathQA role): unit conversions and small
// expressions with a short chain of thought in a fixed format, judged by
// exact match of the final number. It differs from the gsm probe in prompt
// ("Problem:/Solution:" rather than "Q:/A:"), in content (units and bare
// expressions rather than stories) and in the answer line ("The answer is N."
// rather than "#### N").
//
// Prompt:   "Problem: How many minutes are in 3 hours and 20 minutes?\nSolution:"
// Response: " 3*60=180. 180+20=200.\nThe answer is 200."
//
// Stop rule (MathStop): stop at EOS, at the first newline after "The answer
// is", once the number after it is followed by any other character (the
// final "."), or after MathMaxNewBytes bytes. ExtractMathAnswer reads the
// number with the same rules as ExtractGSMAnswer.

// MathMaxNewBytes bounds generation for the math target (references are at
// most about 50 bytes).
const MathMaxNewBytes = 64

const mathMarker = "The answer is"

// unitPair is a pair of units: one big = factor small.
type unitPair struct {
	big, bigs, small, smalls string
	factor                   int
	art                      string // article for "a/an <big>"
}

var unitPairs = []unitPair{
	{"hour", "hours", "minute", "minutes", 60, "an"},
	{"minute", "minutes", "second", "seconds", 60, "a"},
	{"day", "days", "hour", "hours", 24, "a"},
	{"week", "weeks", "day", "days", 7, "a"},
	{"meter", "meters", "centimeter", "centimeters", 100, "a"},
	{"kilogram", "kilograms", "gram", "grams", 1000, "a"},
	{"foot", "feet", "inch", "inches", 12, "a"},
	{"year", "years", "month", "months", 12, "a"},
	{"dollar", "dollars", "cent", "cents", 100, "a"},
	{"dozen", "dozen", "egg", "eggs", 12, "a"},
}

// unitFact is the corpus sentence stating a unit pair ("An hour has 60
// minutes."); it gives the math target its facts without its format.
func unitFact(u unitPair, variant int) string {
	if variant%2 == 0 {
		return capitalize(u.art) + " " + u.big + " has " + itoa(u.factor) + " " + u.smalls + "."
	}
	return "There are " + itoa(u.factor) + " " + u.smalls + " in " + u.art + " " + u.big + "."
}

// MathPrompt wraps a problem in the math target's prompt format.
func MathPrompt(problem string) string { return "Problem: " + problem + "\nSolution:" }

func mathResponse(steps []string, ans int) string {
	return " " + strings.Join(steps, ". ") + ".\n" + mathMarker + " " + itoa(ans) + "."
}

// smallPart lists the allowed remainders b < factor for a unit pair: every
// value for small factors, round values for 100 and 1000.
func smallPart(f int) []int {
	var out []int
	step := 1
	switch {
	case f >= 1000:
		step = 50
	case f >= 100:
		step = 5
	}
	for b := step; b < f; b += step {
		out = append(out, b)
	}
	return out
}

type mathFamily struct {
	name    string
	keys    func() [][]int
	phrases int
	render  func(k []int, phrase int) (problem string, steps []string, ans int)
}

// mixedUnitKeys enumerates (unit pair, a big units, b small units) with
// 2 ≤ a ≤ 9 and b a proper part of the conversion factor.
func mixedUnitKeys() [][]int {
	var out [][]int
	for u, p := range unitPairs {
		for a := 2; a <= 9; a++ {
			for _, b := range smallPart(p.factor) {
				out = append(out, []int{u, a, b})
			}
		}
	}
	return out
}

// unitCountKeys enumerates (unit pair, a) with 2 ≤ a ≤ 30.
func unitCountKeys() [][]int {
	var out [][]int
	for u := range unitPairs {
		for a := 2; a <= 30; a++ {
			out = append(out, []int{u, a})
		}
	}
	return out
}

var mathFamilies = []mathFamily{
	{"mixed_to_small", // a big + b small -> small
		mixedUnitKeys, 2,
		func(k []int, ph int) (string, []string, int) {
			u, a, b := unitPairs[k[0]], k[1], k[2]
			p := a * u.factor
			q := "How many " + u.smalls + " are in " + itoa(a) + " " + u.bigs + " and " + itoa(b) + " " + u.smalls + "?"
			if ph == 1 {
				q = "Convert " + itoa(a) + " " + u.bigs + " and " + itoa(b) + " " + u.smalls + " to " + u.smalls + "."
			}
			return q, []string{eq(a, "*", u.factor, p), eq(p, "+", b, p+b)}, p + b
		}},
	{"big_to_small",
		unitCountKeys, 2,
		func(k []int, ph int) (string, []string, int) {
			u, a := unitPairs[k[0]], k[1]
			q := "How many " + u.smalls + " are in " + itoa(a) + " " + u.bigs + "?"
			if ph == 1 {
				q = "Convert " + itoa(a) + " " + u.bigs + " to " + u.smalls + "."
			}
			return q, []string{eq(a, "*", u.factor, a*u.factor)}, a * u.factor
		}},
	{"small_to_big",
		unitCountKeys, 2,
		func(k []int, ph int) (string, []string, int) {
			u, a := unitPairs[k[0]], k[1]
			n := a * u.factor
			q := "How many " + u.bigs + " are in " + itoa(n) + " " + u.smalls + "?"
			if ph == 1 {
				q = "Convert " + itoa(n) + " " + u.smalls + " to " + u.bigs + "."
			}
			return q, []string{eq(n, "/", u.factor, a)}, a
		}},
	{"take_away", // a big - b small -> small
		mixedUnitKeys, 2,
		func(k []int, ph int) (string, []string, int) {
			u, a, b := unitPairs[k[0]], k[1], k[2]
			p := a * u.factor
			q := "What is " + itoa(a) + " " + u.bigs + " minus " + itoa(b) + " " + u.smalls + ", in " + u.smalls + "?"
			if ph == 1 {
				q = "Take " + itoa(b) + " " + u.smalls + " from " + itoa(a) + " " + u.bigs + ". How many " + u.smalls + " remain?"
			}
			return q, []string{eq(a, "*", u.factor, p), eq(p, "-", b, p-b)}, p - b
		}},
	{"expr_sum_mul", // (a+b)*c-d
		func() [][]int { return exprKeys(func(a, b, c, d int) bool { return (a+b)*c-d >= 0 }) }, 2,
		func(k []int, ph int) (string, []string, int) {
			a, b, c, d := k[0], k[1], k[2], k[3]
			s, p := a+b, (a+b)*c
			e := "(" + itoa(a) + "+" + itoa(b) + ")*" + itoa(c) + "-" + itoa(d)
			return exprQuestion(e, ph), []string{eq(a, "+", b, s), eq(s, "*", c, p), eq(p, "-", d, p-d)}, p - d
		}},
	{"expr_diff_mul", // (a-b)*c+d
		func() [][]int { return exprKeys(func(a, b, c, d int) bool { return a > b }) }, 2,
		func(k []int, ph int) (string, []string, int) {
			a, b, c, d := k[0], k[1], k[2], k[3]
			s, p := a-b, (a-b)*c
			e := "(" + itoa(a) + "-" + itoa(b) + ")*" + itoa(c) + "+" + itoa(d)
			return exprQuestion(e, ph), []string{eq(a, "-", b, s), eq(s, "*", c, p), eq(p, "+", d, p+d)}, p + d
		}},
	{"expr_two_products", // a*b+c*d
		func() [][]int { return exprKeys(func(a, b, c, d int) bool { return true }) }, 2,
		func(k []int, ph int) (string, []string, int) {
			a, b, c, d := k[0], k[1], k[2], k[3]
			e := itoa(a) + "*" + itoa(b) + "+" + itoa(c) + "*" + itoa(d)
			return exprQuestion(e, ph), []string{eq(a, "*", b, a*b), eq(c, "*", d, c*d), eq(a*b, "+", c*d, a*b+c*d)}, a*b + c*d
		}},
}

func exprQuestion(e string, ph int) string {
	if ph == 1 {
		return "What is " + e + "?"
	}
	return "Compute " + e + "."
}

// exprKeys enumerates a, b, d in 1..12 and c in 2..9 that satisfy ok.
func exprKeys(ok func(a, b, c, d int) bool) [][]int {
	var out [][]int
	for a := 1; a <= 12; a++ {
		for b := 1; b <= 12; b++ {
			for c := 2; c <= 9; c++ {
				for d := 1; d <= 12; d++ {
					if ok(a, b, c, d) {
						out = append(out, []int{a, b, c, d})
					}
				}
			}
		}
	}
	return out
}

func mathTaskFamilies() []family {
	var out []family
	for _, f := range mathFamilies {
		out = append(out, family{
			name:    f.name,
			keys:    f.keys(),
			phrases: f.phrases,
			build: func(k []int, phrase int) taskItem {
				q, st, ans := f.render(k, phrase)
				return taskItem{prompt: MathPrompt(q), response: mathResponse(st, ans), answer: itoa(ans)}
			},
		})
	}
	return out
}

// ExtractMathAnswer reads the final answer from a generated math solution:
// the integer after the first "The answer is" (same parsing rules as
// ExtractGSMAnswer).
func ExtractMathAnswer(generated string) (string, bool) { return extractAfter(generated, mathMarker) }

// MathStop reports whether generation for a math prompt should stop now.
func MathStop(generated string) bool { return stopAfter(generated, mathMarker) }
