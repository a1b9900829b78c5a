package minibench

import "strings"

// The default style of the code target ("ops"): an instruction composes two or three operations
// from a fixed vocabulary of 13, and the program applies them in order, one MiniPy line each:
//
//	"Task: triple it, then take it mod seven.\nCode:\n"
//	  -> "def f(x):\n  x*=3\n  x=x%7\n  return x"
//
// The held-out split is by operation sequence: a test sequence never occurs in training under any
// phrasing, so passing it needs compositional generalisation, while every single operation is seen
// in training. Unlike the "expressions" style (codetasks.go), no multi-digit constant has to be
// copied from the instruction into the program: at the scale of the mini preset (a 1M-parameter
// byte-level model pre-trained on ~1M tokens, ~300 SFT steps) that copying is not learned at all
// (pass@1 stays at 0–1%), while the compositional mapping is (about 20–35% for Full FT).

// codeOp is one operation: two phrasings and its program line.
type codeOp struct {
	name    string
	phrases [2]string
	line    string
}

var codeOps = []codeOp{
	{"double", [2]string{"double it", "multiply it by two"}, "x*=2"},
	{"triple", [2]string{"triple it", "multiply it by three"}, "x*=3"},
	{"halve", [2]string{"halve it", "divide it by two"}, "x=x//2"},
	{"square", [2]string{"square it", "multiply it by itself"}, "x=x*x"},
	{"inc", [2]string{"add one", "increase it by one"}, "x+=1"},
	{"add5", [2]string{"add five", "increase it by five"}, "x+=5"},
	{"add10", [2]string{"add ten", "increase it by ten"}, "x+=10"},
	{"dec", [2]string{"subtract one", "decrease it by one"}, "x-=1"},
	{"sub3", [2]string{"subtract three", "take away three"}, "x-=3"},
	{"negate", [2]string{"negate it", "flip its sign"}, "x=-x"},
	{"abs", [2]string{"take its absolute value", "drop its sign"}, "x=abs(x)"},
	{"mod7", [2]string{"take it mod seven", "reduce it mod seven"}, "x=x%7"},
	{"clip0", [2]string{"make it at least zero", "clip it at zero"}, "x=max(x,0)"},
}

// opsTestInputs are the hidden inputs of every ops program.
var opsTestInputs = []int64{-6, -2, -1, 0, 1, 2, 3, 5, 8, 13, 20}

// opsFamily is the family of programs of n operations; its phrase index chooses, bit by bit, the
// phrasing of each operation (2^n phrasings).
func opsFamily(n int) family { return opsFamilyOver(n, codeOps) }

// opsFamilyOver is opsFamily over another list of operations (the adapt regime's pre-training pool
// extends codeOps, keeping its indexes).
func opsFamilyOver(n int, ops []codeOp) family {
	var keys [][]int
	var rec func(prefix []int)
	rec = func(prefix []int) {
		if len(prefix) == n {
			keys = append(keys, append([]int(nil), prefix...))
			return
		}
		for i := range ops {
			rec(append(prefix, i))
		}
	}
	rec(nil)
	// Drop sequences that act as the identity or a constant on the hidden inputs (e.g. "negate it,
	// then negate it"): a trivial program would pass them.
	keys = slicesDeleteFunc(keys, func(k []int) bool {
		vals := opsApplyOver(ops, k, opsTestInputs)
		identity, constant := true, true
		for i, v := range vals {
			identity = identity && v == opsTestInputs[i]
			constant = constant && v == vals[0]
		}
		return identity || constant
	})
	return family{
		name:    "ops" + itoa(n),
		keys:    keys,
		phrases: 1 << n,
		build: func(k []int, phrase int) taskItem {
			parts := make([]string, len(k))
			lines := make([]string, len(k))
			for i, o := range k {
				parts[i] = ops[o].phrases[(phrase>>i)&1]
				lines[i] = "  " + ops[o].line
			}
			ref := "def f(x):\n" + strings.Join(lines, "\n") + "\n  return x"
			p, err := ParseProgram(ref)
			if err != nil {
				panic("minibench: bad reference program " + ref + ": " + err.Error())
			}
			var tests []CodeTest
			for _, x := range opsTestInputs {
				want, err := p.Call(x)
				if err != nil {
					panic("minibench: reference program fails: " + ref + ": " + err.Error())
				}
				tests = append(tests, CodeTest{X: x, Want: want})
			}
			return taskItem{prompt: CodePrompt(strings.Join(parts, ", then ") + "."), response: ref, tests: tests}
		},
	}
}

// opsApply runs an operation sequence on inputs (the same semantics as its MiniPy program).
func opsApply(k []int, xs []int64) []int64 { return opsApplyOver(codeOps, k, xs) }

// opsApplyOver is opsApply with the operations indexed in ops.
func opsApplyOver(ops []codeOp, k []int, xs []int64) []int64 {
	out := make([]int64, len(xs))
	for i, x := range xs {
		for _, o := range k {
			switch ops[o].name {
			case "double":
				x *= 2
			case "triple":
				x *= 3
			case "halve":
				x = floorDiv(x, 2)
			case "square":
				x *= x
			case "inc":
				x++
			case "add5":
				x += 5
			case "add10":
				x += 10
			case "dec":
				x--
			case "sub3":
				x -= 3
			case "negate":
				x = -x
			case "abs":
				if x < 0 {
					x = -x
				}
			case "mod7":
				x = x - floorDiv(x, 7)*7
			case "clip0":
				x = max(x, 0)
			case "add2":
				x += 2
			case "add7":
				x += 7
			case "sub5":
				x -= 5
			case "quad":
				x *= 4
			default:
				panic("minibench: unknown operation " + ops[o].name)
			}
		}
		out[i] = x
	}
	return out
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func slicesDeleteFunc(keys [][]int, del func([]int) bool) [][]int {
	out := keys[:0]
	for _, k := range keys {
		if !del(k) {
			out = append(out, k)
		}
	}
	return out
}

// opsTaskFamilies are the families of the "ops" style: two and three operations.
func opsTaskFamilies() []family { return []family{opsFamily(2), opsFamily(3)} }

// Code styles (Config.CodeStyle).
const (
	CodeStyleOps         = "ops"         // compositional operations (default)
	CodeStyleExpressions = "expressions" // one-line expressions with constants copied from the instruction
)

// codeFamiliesFor returns the code target's families for a style.
func codeFamiliesFor(style string) []family {
	if style == CodeStyleExpressions {
		return codeTaskFamilies()
	}
	return opsTaskFamilies()
}
