package minibench

import (
	"strings"
	"testing"
)

func TestRunProgram(t *testing.T) {
	cases := []struct {
		name string
		src  string
		x    int64
		want int64
	}{
		{"linear", "def f(x):\n  return x*3+7", 2, 13},
		{"spaces", "def f( x ) :\n    return  x * 3 + 7  ", 2, 13},
		{"precedence", "def f(x):\n  return 2+x*3-4//2", 5, 15},
		{"unary", "def f(x):\n  return -x*-2", 3, 6},
		{"floor div negative", "def f(x):\n  return x//3", -7, -3},
		{"mod negative", "def f(x):\n  return x%3", -7, 2},
		{"mod negative divisor", "def f(x):\n  return x%-3", 7, -2},
		{"paren", "def f(x):\n  return (x+1)*(x-1)", 4, 15},
		{"builtins", "def f(x):\n  return min(max(x,2),9)+abs(x-20)", 30, 19},
		{"min3", "def f(x):\n  return min(x,4,2)", 9, 2},
		{"if else", "def f(x):\n  if x>5:\n    return 1\n  else:\n    return 2", 3, 2},
		{"if fallthrough", "def f(x):\n  if x>5:\n    return x-5\n  return 9", 8, 3},
		{"elif", "def f(x):\n  if x<0:\n    return -1\n  elif x==0:\n    return 0\n  else:\n    return 1", 0, 0},
		{"chained cmp", "def f(x):\n  return 0<x<5", 3, 1},
		{"chained cmp false", "def f(x):\n  return 0<x<5", 5, 0},
		{"and or not", "def f(x):\n  return (x>1 and x<4) or not x", 0, 1},
		{"and value", "def f(x):\n  return x and 7", 3, 7},
		{"loop", "def f(x):\n  s=0\n  for i in range(x):\n    s=s+i+1\n  return s", 4, 10},
		{"loop range2", "def f(x):\n  s=0\n  for i in range(2, x):\n    s+=i\n  return s", 5, 9},
		{"loop negative", "def f(x):\n  s=3\n  for i in range(x):\n    s*=2\n  return s", -4, 3},
		{"return inside loop", "def f(x):\n  for i in range(100):\n    if i*i>x:\n      return i\n  return -1", 10, 4},
		{"comments blank lines", "def f(x):  # header\n\n  y = x + 1  # y\n\n  return y", 1, 2},
		{"param name", "def f(n):\n  return n+1", 1, 2},
		{"pass", "def f(x):\n  if x:\n    pass\n  return 4", 1, 4},
	}
	for _, c := range cases {
		got, err := RunProgram(c.src, c.x)
		if err != nil || got != c.want {
			t.Errorf("%s: RunProgram(%q, %d) = %d, %v; want %d", c.name, c.src, c.x, got, err, c.want)
		}
	}
}

func TestRunProgramErrors(t *testing.T) {
	deep := "def f(x):\n  return " + strings.Repeat("(", 300) + "x" + strings.Repeat(")", 300)
	deepNeg := "def f(x):\n  return " + strings.Repeat("-", 500) + "x"
	var nested strings.Builder
	nested.WriteString("def f(x):\n")
	for i := 1; i <= 20; i++ {
		nested.WriteString(strings.Repeat("  ", i) + "if x:\n")
	}
	nested.WriteString(strings.Repeat("  ", 21) + "return 1")
	cases := []struct {
		name, src string
		x         int64
		want      string // substring of the error
	}{
		{"empty", "", 0, "empty"},
		{"no header", "return x", 0, "def f"},
		{"wrong name", "def g(x):\n  return x", 0, "def f"},
		{"two params", "def f(x, y):\n  return x", 0, "def f"},
		{"no body", "def f(x):", 0, "indented block"},
		{"no indent", "def f(x):\nreturn x", 0, "indented block"},
		{"bad indent", "def f(x):\n  y=1\n    return y", 0, "unexpected indent"},
		{"bad dedent", "def f(x):\n    if x:\n      return 1\n  return 2", 0, "unindent"},
		{"tab", "def f(x):\n\treturn x", 0, "tabs"},
		{"non-ascii", "def f(x):\n  return x\u00d7 2", 0, "invalid byte"},
		{"div zero", "def f(x):\n  return 5//x", 0, "division by zero"},
		{"mod zero", "def f(x):\n  return 5%(x-x)", 3, "division by zero"},
		{"true div", "def f(x):\n  return x/2", 4, "not supported"},
		{"power", "def f(x):\n  return x**2", 4, "not supported"},
		{"undefined", "def f(x):\n  return y", 1, "not defined"},
		{"aug undefined", "def f(x):\n  s+=1\n  return s", 1, "not defined"},
		{"no return", "def f(x):\n  y=x", 1, "without return"},
		{"no return branch", "def f(x):\n  if x>5:\n    return 1", 1, "without return"},
		{"infinite-ish loop", "def f(x):\n  s=0\n  for i in range(1000000000):\n    s=s+1\n  return s", 1, "step limit"},
		{"nested loops", "def f(x):\n  s=0\n  for i in range(200):\n    for j in range(200):\n      s+=1\n  return s", 1, "step limit"},
		{"overflow", "def f(x):\n  s=x\n  for i in range(100):\n    s=s*s\n  return s", 3, "overflow"},
		{"big literal", "def f(x):\n  return 99999999999999999999", 1, "overflow"},
		{"deep parens", deep, 1, "nested too deeply"},
		{"deep unary", deepNeg, 1, "nested too deeply"},
		{"deep blocks", nested.String(), 1, "nested too deeply"},
		{"unbalanced", "def f(x):\n  return (x+1", 1, "expected"},
		{"dangling op", "def f(x):\n  return x+", 1, "expected an expression"},
		{"garbage", "def f(x):\n  return x $ 2", 1, "unexpected character"},
		{"unknown stmt", "def f(x):\n  print(x)\n  return x", 1, "unknown statement"},
		{"while", "def f(x):\n  while x:\n    x=x-1\n  return x", 1, "unknown statement"},
		{"abs arity", "def f(x):\n  return abs(x, 1)", 1, "wrong number"},
		{"max arity", "def f(x):\n  return max(x)", 1, "wrong number"},
		{"keyword as var", "def f(x):\n  return if", 1, "unexpected"},
		{"range arity", "def f(x):\n  for i in range(1,2,3):\n    pass\n  return 1", 1, "range takes"},
		{"trailing text", "def f(x):\n  return x\nprint(f(1))", 1, "after the function"},
		{"too long", "def f(x):\n  return x" + strings.Repeat(" ", 2000), 1, "longer than"},
		{"huge nesting", "def f(x):\n  return " + strings.Repeat("(", 100000), 1, "longer than"},
		{"bad else", "def f(x):\n  if x:\n    return 1\n  else x:\n    return 2", 1, "else"},
		{"missing colon", "def f(x):\n  if x>1\n    return 1\n  return 2", 1, "\":\""},
	}
	for _, c := range cases {
		got, err := RunProgram(c.src, c.x)
		if err == nil {
			t.Errorf("%s: got %d, want an error containing %q", c.name, got, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not contain %q", c.name, err, c.want)
		}
	}
}

func TestTruncateCode(t *testing.T) {
	cases := []struct{ in, want string }{
		{"def f(x):\n  return x", "def f(x):\n  return x"},
		{"def f(x):\n  return x\n", "def f(x):\n  return x"},
		{"def f(x):\n  return x\n\nTask: more", "def f(x):\n  return x"},
		{"def f(x):\n  return x\nTask: more", "def f(x):\n  return x"},
		{"def f(x):\n  if x:\n    return 1\n  return 2\ndef g", "def f(x):\n  if x:\n    return 1\n  return 2"},
		{"def f(x):", "def f(x):"},
	}
	for _, c := range cases {
		if got := TruncateCode(c.in); got != c.want {
			t.Errorf("TruncateCode(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if CodeStop("def f(x):\n  return x") || CodeStop("def f(x):\n  return x\n") || !CodeStop("def f(x):\n  return x\nT") ||
		!CodeStop("def f(x):\n  return x\n\n") {
		t.Error("CodeStop disagrees with the stop rule")
	}
}

func TestJudgeCode(t *testing.T) {
	tests := []CodeTest{{0, 7}, {2, 13}, {-1, 4}}
	good := []string{
		"def f(x):\n  return x*3+7",
		"def f(x):\n  return 3*x+7\n",
		"def f(x):\n  y = x*3\n  return y+7\n\nTask: Return x.",
		"def f(x):\n  return 7+x+x+x\nsomething else",
	}
	bad := []string{
		"", "def f(x):\n  return x*3+8", "def f(x):\n  return x*3+7/1", "def f(x)\n  return x*3+7",
		"return x*3+7", "def f(x):\n  return x*3+7 +", "\x00\xff", "def f(x):\n  return 7//(x-x)",
	}
	for _, g := range good {
		if !JudgeCode(tests, g) {
			t.Errorf("JudgeCode rejects a correct program %q", g)
		}
	}
	for _, g := range bad {
		if JudgeCode(tests, g) {
			t.Errorf("JudgeCode accepts %q", g)
		}
	}
	if JudgeCode(nil, "def f(x):\n  return 1") {
		t.Error("JudgeCode accepts with no tests")
	}
}

// TestJudgeNeverPanics mutates reference programs byte by byte.
func TestJudgeNeverPanics(t *testing.T) {
	r := newRNG(7, "fuzz")
	alphabet := []byte("x()+-*/%<>=:,\n #0123456789abcdefimnorstu_\t")
	for _, f := range codeFamilies {
		k := f.keys()[0]
		src := []byte(f.program(k, "f", "x"))
		for trial := 0; trial < 300; trial++ {
			b := append([]byte(nil), src...)
			for m := r.between(1, 4); m > 0; m-- {
				i := r.intn(len(b))
				switch r.intn(3) {
				case 0:
					b[i] = alphabet[r.intn(len(alphabet))]
				case 1:
					b = append(b[:i], b[i+1:]...)
				default:
					b = append(b[:i], append([]byte{alphabet[r.intn(len(alphabet))]}, b[i:]...)...)
				}
				if len(b) == 0 {
					break
				}
			}
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("panic on %q: %v", b, p)
					}
				}()
				p, err := ParseProgram(string(b))
				if err == nil {
					for _, x := range []int64{-3, 0, 5} {
						p.Call(x)
					}
				}
			}()
		}
	}
}

func FuzzJudgeCode(f *testing.F) {
	for _, fam := range codeFamilies {
		f.Add(fam.program(fam.keys()[0], "f", "x"))
	}
	tests := []CodeTest{{0, 1}, {3, 4}}
	f.Fuzz(func(t *testing.T, src string) {
		JudgeCode(tests, src) // must not panic or hang
	})
}
