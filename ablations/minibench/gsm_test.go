package minibench

import "testing"

func TestExtractGSMAnswer(t *testing.T) {
	cases := []struct {
		in   string
		want string
		ok   bool
	}{
		{" 5+3=8. 8-2=6.\n#### 6", "6", true},
		{"#### 6\n", "6", true},
		{"####6", "6", true},
		{"#### 6.", "6", true},
		{"#### 42 apples", "42", true},
		{"#### -3", "-3", true},
		{"#### -0", "0", true},
		{"#### 007", "7", true},
		{"#### 0", "0", true},
		{"#### 1,234", "1234", true},
		{"#### 12,", "12", true},
		{"#### 1,2x", "12", true},
		{"#### 7 #### 9", "7", true},
		{"step 5.\n####   12\nmore", "12", true},
		{"", "", false},
		{"no marker 12", "", false},
		{"### 12", "", false},
		{"#### ", "", false},
		{"#### -", "", false},
		{"#### x12", "", false},
		{"#### +5", "", false},
		{"#### ,5", "", false},
	}
	for _, c := range cases {
		got, ok := ExtractGSMAnswer(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("ExtractGSMAnswer(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestGSMStop(t *testing.T) {
	cases := []struct {
		in   string
		stop bool
	}{
		{" 5+3=8.", false},
		{" 5+3=8. 8-2=6.\n####", false},
		{" 5+3=8. 8-2=6.\n#### ", false},
		{" 5+3=8. 8-2=6.\n#### 6", false},
		{" 5+3=8. 8-2=6.\n#### 61", false},
		{" 5+3=8. 8-2=6.\n#### 6\n", true},
		{" 5+3=8. 8-2=6.\n#### 6.", true},
		{"#### 1,", false},
		{"#### 1,2", false},
		{"#### 1,x", true},
		{"#### x", false},
		{"#### \n", true},
	}
	for _, c := range cases {
		if got := GSMStop(c.in); got != c.stop {
			t.Errorf("GSMStop(%q) = %v, want %v", c.in, got, c.stop)
		}
	}
}

func TestMathExtractAndStop(t *testing.T) {
	if got, ok := ExtractMathAnswer(" 3*60=180. 180+20=200.\nThe answer is 200."); !ok || got != "200" {
		t.Errorf("ExtractMathAnswer = %q, %v", got, ok)
	}
	if _, ok := ExtractMathAnswer(" 3*60=180. 180+20=200.\n#### 200"); ok {
		t.Error("ExtractMathAnswer accepts the gsm format")
	}
	if got, ok := ExtractGSMAnswer(" 3*60=180.\nThe answer is 180."); ok {
		t.Errorf("ExtractGSMAnswer accepts the math format: %q", got)
	}
	if MathStop(" 3*60=180.\nThe answer is 18") || !MathStop(" 3*60=180.\nThe answer is 180.") {
		t.Error("MathStop disagrees with the stop rule")
	}
}

// Every template's arithmetic is right and small.
func TestGSMTemplates(t *testing.T) {
	r := newRNG(3, "gsmtest")
	for i := 0; i < 5000; i++ {
		for _, res := range []bool{false, true} {
			g := genGSM(r, 3, res)
			if g.answer < 0 || g.answer > 200 {
				t.Fatalf("%s: answer %d out of range: %q", g.template, g.answer, g.question)
			}
			got, ok := ExtractGSMAnswer(g.completion())
			if !ok || got != itoa(g.answer) {
				t.Fatalf("reference completion does not extract: %q", g.completion())
			}
			if reserved(3, 8, "gsm", g.key()...) != res {
				t.Fatal("genGSM ignored the reservation")
			}
			checkEquations(t, g.solution)
		}
	}
}

// checkEquations verifies every "a op b=c" in a solution.
func checkEquations(t *testing.T, sol string) {
	t.Helper()
	for _, step := range splitSteps(sol) {
		var a, b, c int
		var op byte
		ok := false
		for _, o := range []byte("+-*/") {
			if n, _ := sscanEq(step, o, &a, &b, &c); n {
				op, ok = o, true
				break
			}
		}
		if !ok {
			t.Fatalf("unparsable step %q in %q", step, sol)
		}
		want := map[byte]int{'+': a + b, '-': a - b, '*': a * b, '/': 0}[op]
		if op == '/' {
			if b == 0 || a%b != 0 {
				t.Fatalf("inexact division %q", step)
			}
			want = a / b
		}
		if want != c {
			t.Fatalf("wrong step %q in %q", step, sol)
		}
	}
}
