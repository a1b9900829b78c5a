package minibench

import (
	"strings"
)

// GSM-style word problems (the GSM8K role). One generator family serves the
// corpus (worked problems) and the gsm probe (fresh number combinations).
//
// A problem is written as
//
//	Q: Kate has 7 coins. She buys 5 more and gives 3 to Leo. How many coins does Kate have now?
//	A: 7+5=12. 12-3=9.
//	#### 9
//
// The probe prompt is everything up to and including "\nA:"; the model
// generates the rest. Stop rule (GSMStop): stop at EOS, at the first newline
// after the "####" marker, once the number after "####" is followed by any
// other character, or after GSMMaxNewBytes bytes. The answer is read with
// ExtractGSMAnswer.

// GSMMaxNewBytes bounds generation for the gsm probe (the longest reference
// completion is about 40 bytes).
const GSMMaxNewBytes = 64

var gsmItems = []string{"apples", "pens", "cards", "coins", "eggs", "stamps", "marbles", "books", "shells", "beads"}

type gsmProblem struct {
	template string
	nums     []int
	question string // without "Q: "
	solution string // "7+5=12. 12-3=9."
	answer   int
}

// prompt is what the model sees: "Q: ...\nA:".
func (g gsmProblem) prompt() string { return "Q: " + g.question + "\nA:" }

// completion is the reference continuation of prompt().
func (g gsmProblem) completion() string {
	return " " + g.solution + "\n#### " + itoa(g.answer)
}

func (g gsmProblem) key() []string {
	parts := []string{g.template}
	for _, n := range g.nums {
		parts = append(parts, itoa(n))
	}
	return parts
}

type gsmTemplate struct {
	id string
	// nums draws the numbers; every number is small and every intermediate
	// result is non-negative and at most about 130.
	nums func(r *rng) []int
	// text renders question and solution for persons a, b and item it.
	text func(a, b person, it string, n []int) (q, sol string, ans int)
}

// eq renders "x op y=z".
func eq(x int, op string, y, z int) string { return itoa(x) + op + itoa(y) + "=" + itoa(z) }

func steps(s ...string) string { return strings.Join(s, ". ") + "." }

var gsmTemplates = []gsmTemplate{
	{"buy_give",
		func(r *rng) []int {
			x, y := r.between(2, 20), r.between(2, 20)
			return []int{x, y, r.between(1, x+y-1)}
		},
		func(a, b person, it string, n []int) (string, string, int) {
			s := n[0] + n[1]
			q := a.name + " has " + itoa(n[0]) + " " + it + ". " + a.He() + " buys " + itoa(n[1]) + " more and gives " +
				itoa(n[2]) + " to " + b.name + ". How many " + it + " does " + a.name + " have now?"
			return q, steps(eq(n[0], "+", n[1], s), eq(s, "-", n[2], s-n[2])), s - n[2]
		}},
	{"bags",
		func(r *rng) []int { x, y := r.between(2, 9), r.between(2, 9); return []int{x, y, r.between(1, x*y-1)} },
		func(a, b person, it string, n []int) (string, string, int) {
			p := n[0] * n[1]
			q := a.name + " buys " + itoa(n[0]) + " bags with " + itoa(n[1]) + " " + it + " in each. " + a.He() +
				" gives away " + itoa(n[2]) + ". How many " + it + " are left?"
			return q, steps(eq(n[0], "*", n[1], p), eq(p, "-", n[2], p-n[2])), p - n[2]
		}},
	{"times",
		func(r *rng) []int { return []int{r.between(2, 25), r.between(2, 6)} },
		func(a, b person, it string, n []int) (string, string, int) {
			p := n[0] * n[1]
			q := a.name + " has " + itoa(n[0]) + " " + it + ". " + b.name + " has " + itoa(n[1]) +
				" times as many. How many " + it + " do they have together?"
			return q, steps(eq(n[0], "*", n[1], p), eq(n[0], "+", p, n[0]+p)), n[0] + p
		}},
	{"share",
		func(r *rng) []int { d, k := r.between(2, 6), r.between(2, 9); return []int{d * k, d, r.between(1, 9)} },
		func(a, b person, it string, n []int) (string, string, int) {
			k := n[0] / n[1]
			q := a.name + " shares " + itoa(n[0]) + " " + it + " equally among " + itoa(n[1]) +
				" friends. Then each friend gets " + itoa(n[2]) + " more. How many " + it + " does each friend have?"
			return q, steps(eq(n[0], "/", n[1], k), eq(k, "+", n[2], k+n[2])), k + n[2]
		}},
	{"lost_found",
		func(r *rng) []int { x := r.between(5, 30); return []int{x, r.between(1, x-1), r.between(1, 20)} },
		func(a, b person, it string, n []int) (string, string, int) {
			d := n[0] - n[1]
			q := a.name + " had " + itoa(n[0]) + " " + it + ". " + a.He() + " lost " + itoa(n[1]) +
				" and then found " + itoa(n[2]) + ". How many " + it + " does " + a.name + " have now?"
			return q, steps(eq(n[0], "-", n[1], d), eq(d, "+", n[2], d+n[2])), d + n[2]
		}},
	{"daily",
		func(r *rng) []int {
			x, y, z := r.between(1, 20), r.between(2, 9), r.between(2, 7)
			return []int{x, y, z, r.between(1, x+y*z-1)}
		},
		func(a, b person, it string, n []int) (string, string, int) {
			p := n[1] * n[2]
			s := n[0] + p
			q := a.name + " has " + itoa(n[0]) + " " + it + ". " + a.He() + " gets " + itoa(n[1]) + " more each day for " +
				itoa(n[2]) + " days, then gives " + itoa(n[3]) + " to " + b.name + ". How many " + it + " does " + a.name + " have now?"
			return q, steps(eq(n[1], "*", n[2], p), eq(n[0], "+", p, s), eq(s, "-", n[3], s-n[3])), s - n[3]
		}},
	{"packs",
		func(r *rng) []int {
			x, y, z := r.between(2, 6), r.between(2, 9), r.between(1, 20)
			return []int{x, y, z, r.between(1, x*y+z-1)}
		},
		func(a, b person, it string, n []int) (string, string, int) {
			p := n[0] * n[1]
			s := p + n[2]
			q := a.name + " buys " + itoa(n[0]) + " packs of " + itoa(n[1]) + " " + it + " and " + b.name + " buys " +
				itoa(n[2]) + " " + it + ". They use " + itoa(n[3]) + ". How many " + it + " are left?"
			return q, steps(eq(n[0], "*", n[1], p), eq(p, "+", n[2], s), eq(s, "-", n[3], s-n[3])), s - n[3]
		}},
	{"fewer",
		func(r *rng) []int { x := r.between(5, 30); return []int{x, r.between(1, x-1)} },
		func(a, b person, it string, n []int) (string, string, int) {
			d := n[0] - n[1]
			q := a.name + " has " + itoa(n[0]) + " " + it + ". " + b.name + " has " + itoa(n[1]) + " fewer than " +
				a.name + ". How many " + it + " do they have in all?"
			return q, steps(eq(n[0], "-", n[1], d), eq(n[0], "+", d, n[0]+d)), n[0] + d
		}},
}

// genGSM draws a problem whose (template, numbers) combination is reserved
// for the probe (wantReserved) or not reserved (corpus).
func genGSM(r *rng, seed int64, wantReserved bool) gsmProblem {
	for {
		t := pick(r, gsmTemplates)
		nums := t.nums(r)
		i := r.intn(len(people))
		j := (i + 1 + r.intn(len(people)-1)) % len(people)
		it := pick(r, gsmItems)
		q, sol, ans := t.text(people[i], people[j], it, nums)
		g := gsmProblem{template: t.id, nums: nums, question: q, solution: sol, answer: ans}
		if reserved(seed, 8, "gsm", g.key()...) == wantReserved {
			return g
		}
	}
}

// drill renders one arithmetic fact in the solution format ("7+5=12").
func drill(r *rng) string {
	switch r.intn(4) {
	case 0:
		x, y := r.between(0, 99), r.between(0, 30)
		return eq(x, "+", y, x+y)
	case 1:
		x := r.between(0, 130)
		y := r.between(0, min(x, 99))
		return eq(x, "-", y, x-y)
	case 2:
		x, y := r.between(1, 12), r.between(1, 9)
		return eq(x, "*", y, x*y)
	default:
		d, k := r.between(2, 9), r.between(1, 9)
		return eq(d*k, "/", d, k)
	}
}

// ExtractGSMAnswer reads the final answer from a generated gsm completion:
// the integer after the first "####" marker. Spaces after the marker are
// skipped; an optional '-' sign and digits follow (commas between digits are
// dropped, as in GSM8K, so "1,234" reads 1234); the number ends at the first
// other character. Leading zeros are removed and "-0" reads "0". It reports
// false when there is no marker or no digits after it.
func ExtractGSMAnswer(generated string) (string, bool) {
	return extractAfter(generated, "####")
}

// GSMStop reports whether generation for a gsm prompt should stop now (see
// the stop rule at the top of this file). The caller also stops at EOS and
// after GSMMaxNewBytes bytes.
func GSMStop(generated string) bool { return stopAfter(generated, "####") }

// extractAfter parses the integer after the first occurrence of marker.
func extractAfter(s, marker string) (string, bool) {
	i := strings.Index(s, marker)
	if i < 0 {
		return "", false
	}
	s = strings.TrimLeft(s[i+len(marker):], " ")
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	var digits []byte
	for j := 0; j < len(s); j++ {
		c := s[j]
		if c >= '0' && c <= '9' {
			digits = append(digits, c)
			continue
		}
		// A comma counts only between digits ("1,234").
		if c == ',' && len(digits) > 0 && j+1 < len(s) && s[j+1] >= '0' && s[j+1] <= '9' {
			continue
		}
		break
	}
	if len(digits) == 0 {
		return "", false
	}
	n := strings.TrimLeft(string(digits), "0")
	if n == "" {
		return "0", true
	}
	if neg {
		n = "-" + n
	}
	return n, true
}

// stopAfter reports whether, after marker, a newline has been generated or a
// number has started and been followed by some other character.
func stopAfter(s, marker string) bool {
	i := strings.Index(s, marker)
	if i < 0 {
		return false
	}
	rest := s[i+len(marker):]
	if strings.Contains(rest, "\n") {
		return true
	}
	rest = strings.TrimLeft(rest, " ")
	rest = strings.TrimPrefix(rest, "-")
	j := 0
	for j < len(rest) {
		c := rest[j]
		if isDigit(c) {
			j++
			continue
		}
		if c == ',' && j > 0 { // "1,234": wait for the byte after the comma
			if j+1 == len(rest) {
				return false
			}
			if isDigit(rest[j+1]) {
				j++
				continue
			}
		}
		break
	}
	return j > 0 && j < len(rest)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
