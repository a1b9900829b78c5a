package minibench

import (
	"strings"
	"testing"
)

// decisionBytes renders the decision bytes of src as-is and the format bytes as '.'.
func decisionBytes(src string) string {
	types := ProgramByteTypes(src)
	var b strings.Builder
	for i := range src {
		if types[i] == Decision {
			b.WriteByte(src[i])
		} else {
			b.WriteByte('.')
		}
	}
	return b.String()
}

func TestProgramByteTypes(t *testing.T) {
	cases := []struct{ src, want string }{
		{"def f(x):\n  x*=3\n  x=x%7\n  return x", ".............*=3......%7..........."},
		{"def f(x):\n  return x*3+7", "....................*3+7"},
		{"def f(x):\n  x=-x\n  x=abs(x)\n  x=max(x,0)", "..............-......abs........max...0."},
		{"def g(a, b):\n  if a>=b and a!=0:\n    return a//2\n  return b", "...................>=..and..!=0..............//2..........."},
		{"def f(x):\n  x=x==1", "...............==1"},
	}
	for _, c := range cases {
		if got := decisionBytes(c.src); got != c.want {
			t.Errorf("%q:\n got %q\nwant %q", c.src, got, c.want)
		}
	}
}

// TestProgramByteTypesOnTheTarget: every response of the code target's training split has both
// types, its header and "return x" are format, and every operation line's operator is decision.
func TestProgramByteTypesOnTheTarget(t *testing.T) {
	for _, op := range codeOps {
		src := "def f(x):\n  " + op.line + "\n  return x"
		got := decisionBytes(src)
		if !strings.HasPrefix(got, strings.Repeat(".", 12)) || !strings.HasSuffix(got, strings.Repeat(".", 11)) {
			t.Errorf("%s: header or return line not format: %q", op.name, got)
		}
		if strings.Count(got, ".") == len(got) {
			t.Errorf("%s: no decision byte in %q", op.name, op.line)
		}
	}
}
