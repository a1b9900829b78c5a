package minibench

import (
	"slices"
	"strings"
)

// Code task families: an instruction template set and a reference program
// per family, over a grid of integer constants. A task's key is (family,
// constants); splits.go assigns whole keys to train or to the held-out
// splits, so a test task's constants were never seen with its family in
// training, under any phrasing.
//
// Prompt:   "Task: Return x times 3 plus 7.\nCode:\n"
// Response: "def f(x):\n  return x*3+7"
//
// Every response starts with the same header "def f(x):\n  " boilerplate, so
// a large share of each response is predictable structure and only a few
// tokens carry the task: the per-token selection has something to choose.

type codeFamily struct {
	name    string
	ranges  [][2]int           // inclusive range of each constant {a}, {b}
	valid   func(k []int) bool // nil: every grid point
	phrases []string           // instruction templates with {a}, {b}
	body    string             // program body with {x}, {a}, {b}
	loop    bool               // uses x as a loop bound: tested on x >= 0 only
}

var codeFamilies = []codeFamily{
	{name: "lin_add", ranges: [][2]int{{2, 9}, {1, 20}},
		phrases: []string{"Return x times {a} plus {b}.", "Multiply x by {a} and then add {b}.",
			"Compute {a} times x, plus {b}.", "Give {b} more than {a} times x."},
		body: "  return {x}*{a}+{b}"},
	{name: "lin_sub", ranges: [][2]int{{2, 9}, {1, 20}},
		phrases: []string{"Return x times {a} minus {b}.", "Multiply x by {a} and then subtract {b}.",
			"Compute {a} times x, minus {b}.", "Give {b} less than {a} times x."},
		body: "  return {x}*{a}-{b}"},
	{name: "add_mul", ranges: [][2]int{{2, 9}, {1, 20}},
		phrases: []string{"Add {b} to x and then multiply by {a}.", "Return the sum of x and {b}, times {a}.",
			"Return {a} times the sum of x and {b}."},
		body: "  return ({x}+{b})*{a}"},
	{name: "sub_mul", ranges: [][2]int{{2, 9}, {1, 20}},
		phrases: []string{"Subtract {b} from x and then multiply by {a}.", "Return the difference of x and {b}, times {a}.",
			"Return {a} times the difference of x and {b}."},
		body: "  return ({x}-{b})*{a}"},
	{name: "square", ranges: [][2]int{{1, 60}},
		phrases: []string{"Return the square of x plus {a}.", "Square x and then add {a}.", "Return x times x, plus {a}."},
		body:    "  return {x}*{x}+{a}"},
	{name: "mod_add", ranges: [][2]int{{2, 9}, {1, 20}},
		phrases: []string{"Return the remainder of x divided by {a}, plus {b}.", "Return x mod {a}, plus {b}.",
			"Add {b} to the remainder when x is divided by {a}."},
		body: "  return {x}%{a}+{b}"},
	{name: "div_add", ranges: [][2]int{{2, 9}, {1, 20}},
		phrases: []string{"Divide x by {a}, rounding down, and add {b}.", "Return x floor-divided by {a}, plus {b}.",
			"Add {b} to x divided by {a}, rounded down."},
		body: "  return {x}//{a}+{b}"},
	{name: "max_add", ranges: [][2]int{{1, 30}, {1, 10}},
		phrases: []string{"Return the larger of x and {a}, plus {b}.", "Take the maximum of x and {a}, then add {b}.",
			"Add {b} to the bigger of x and {a}."},
		body: "  return max({x},{a})+{b}"},
	{name: "min_mul", ranges: [][2]int{{1, 30}, {2, 9}},
		phrases: []string{"Return the smaller of x and {a}, times {b}.", "Take the minimum of x and {a}, then multiply by {b}.",
			"Multiply the smaller of x and {a} by {b}."},
		body: "  return min({x},{a})*{b}"},
	{name: "abs_add", ranges: [][2]int{{1, 30}, {1, 10}},
		phrases: []string{"Return the distance between x and {a}, plus {b}.", "Return the absolute value of x minus {a}, plus {b}.",
			"Add {b} to how far x is from {a}."},
		body: "  return abs({x}-{a})+{b}"},
	{name: "if_gt", ranges: [][2]int{{1, 30}, {0, 20}},
		phrases: []string{"If x is greater than {a}, return x minus {a}; otherwise return {b}.",
			"Return x minus {a} when x is above {a}, else {b}.", "For x above {a} give x minus {a}, and {b} otherwise."},
		body: "  if {x}>{a}:\n    return {x}-{a}\n  return {b}"},
	{name: "if_even", ranges: [][2]int{{0, 20}, {0, 20}}, valid: func(k []int) bool { return k[0] != k[1] },
		phrases: []string{"Return {a} if x is even and {b} if x is odd.", "If x is even return {a}, otherwise return {b}.",
			"Give {a} for even x and {b} for odd x."},
		body: "  if {x}%2==0:\n    return {a}\n  return {b}"},
	{name: "clamp", ranges: [][2]int{{0, 20}, {2, 40}}, valid: func(k []int) bool { return k[1] >= k[0]+2 && k[1] <= k[0]+20 },
		phrases: []string{"Clamp x to the range {a} to {b}.", "Limit x to be between {a} and {b}.",
			"Return x, but at least {a} and at most {b}."},
		body: "  return min(max({x},{a}),{b})"},
	{name: "loop_add", ranges: [][2]int{{0, 20}, {1, 9}}, loop: true,
		phrases: []string{"Start at {a} and add {b} to it x times.", "Use a loop: begin with {a} and add {b}, x times.",
			"Return {a} plus {b} added x times, using a loop."},
		body: "  s={a}\n  for i in range({x}):\n    s=s+{b}\n  return s"},
	{name: "loop_tri", ranges: [][2]int{{0, 60}}, loop: true,
		phrases: []string{"Return {a} plus the sum of the numbers from 1 to x.", "Start at {a} and add every number from 1 to x.",
			"Use a loop to add 1, 2, ..., x to {a}."},
		body: "  s={a}\n  for i in range({x}):\n    s=s+i+1\n  return s"},
}

func (f codeFamily) replacer(k []int, x string) *strings.Replacer {
	args := []string{"{x}", x}
	for i, c := range k {
		args = append(args, "{"+string(rune('a'+i))+"}", itoa(c))
	}
	return strings.NewReplacer(args...)
}

// program renders the reference with function name fn and parameter x.
func (f codeFamily) program(k []int, fn, x string) string {
	return "def " + fn + "(" + x + "):\n" + f.replacer(k, x).Replace(f.body)
}

func (f codeFamily) instruction(k []int, phrase int) string {
	return f.replacer(k, "x").Replace(f.phrases[phrase])
}

// keys enumerates the constant grid in a fixed order.
func (f codeFamily) keys() [][]int {
	out := [][]int{{}}
	for _, rg := range f.ranges {
		var next [][]int
		for _, k := range out {
			for c := rg[0]; c <= rg[1]; c++ {
				next = append(next, append(slices.Clone(k), c))
			}
		}
		out = next
	}
	if f.valid == nil {
		return out
	}
	return slices.DeleteFunc(out, func(k []int) bool { return !f.valid(k) })
}

// testInputs are the hidden inputs: a fixed spread plus the points around
// every constant (where thresholds, clamps and remainders change).
func (f codeFamily) testInputs(k []int) []int64 {
	if f.loop {
		return []int64{0, 1, 2, 3, 4, 5, 7, 10}
	}
	xs := []int64{-6, -2, -1, 0, 1, 2, 3, 5, 8, 13, 20}
	for _, c := range k {
		for d := -1; d <= 2; d++ {
			xs = append(xs, int64(c+d))
		}
	}
	slices.Sort(xs)
	return slices.Compact(xs)
}

// CodePrompt wraps an instruction in the code target's prompt format.
func CodePrompt(instruction string) string { return "Task: " + instruction + "\nCode:\n" }

// codeTaskFamilies adapts the code families to the generic splitter.
func codeTaskFamilies() []family {
	var out []family
	for _, f := range codeFamilies {
		out = append(out, family{
			name:    f.name,
			keys:    f.keys(),
			phrases: len(f.phrases),
			build: func(k []int, phrase int) taskItem {
				ref := f.program(k, "f", "x")
				p, err := ParseProgram(ref)
				if err != nil {
					panic("minibench: bad reference program " + ref + ": " + err.Error())
				}
				var tests []CodeTest
				for _, x := range f.testInputs(k) {
					want, err := p.Call(x)
					if err != nil {
						panic("minibench: reference program fails: " + ref + ": " + err.Error())
					}
					tests = append(tests, CodeTest{X: x, Want: want})
				}
				return taskItem{prompt: CodePrompt(f.instruction(k, phrase)), response: ref, tests: tests}
			},
		})
	}
	return out
}
