package minibench

import (
	"errors"
	"fmt"
	"strings"
)

// The "code" target (the Magicoder/HumanEval role): an English instruction
// and a short program in MiniPy, a tiny Python subset with one integer
// function f(x). Evaluation executes the generated program on hidden inputs.
//
// MiniPy
//
//	program   = "def f(" NAME "):" NEWLINE block
//	block     = statements indented deeper than the enclosing line, all at
//	            the same indentation (spaces only; blank lines and "#"
//	            comments ignored)
//	statement = "return" expr
//	          | NAME ("=" | "+=" | "-=" | "*=") expr
//	          | "if" expr ":" block {"elif" expr ":" block} ["else" ":" block]
//	          | "for" NAME "in" "range(" expr ["," expr] "):" block
//	          | "pass"
//	expr      = or-expression with Python precedence:
//	            or < and < not < comparisons (chainable: 0<x<5)
//	            < + - < * // % < unary - < atom
//	atom      = INT | NAME | "(" expr ")" | abs(e) | min(e, e, ...) | max(e, e, ...)
//
// Values are int64. Semantics follow Python: // and % round toward minus
// infinity, comparisons give 1 or 0, "and"/"or" return an operand, a
// function that ends without "return" is an error (Python's None never equals
// an int). Errors, never panics: division or modulo by zero, "/" and "**"
// (unsupported), any |value| > 2^40, more than maxSteps executed statements
// and loop iterations (so no loop runs away), nesting deeper than maxDepth,
// source longer than maxSource bytes, tabs, non-ASCII bytes.
//
// Stop rule for generation (CodeStop, applied again by TruncateCode before
// judging): stop at EOS, at the first newline after the header line that is
// followed by a non-space character (a blank line or unindented text ends
// the function), or after CodeMaxNewBytes bytes.

// CodeMaxNewBytes bounds generation for the code target (references are at
// most 60 bytes).
const CodeMaxNewBytes = 96

const (
	maxSteps   = 10000
	maxDepth   = 64
	maxSource  = 1024
	valueLimit = int64(1) << 40
)

// CodeTest is one hidden test: f(X) must return Want.
type CodeTest struct {
	X    int64 `json:"x"`
	Want int64 `json:"want"`
}

// Program is a parsed MiniPy function.
type Program struct {
	param string
	body  []stmt
}

var (
	errOverflow = errors.New("minipy: integer overflow")
	errSteps    = errors.New("minipy: step limit exceeded")
	errNoReturn = errors.New("minipy: function ended without return")
)

// ParseProgram parses MiniPy source. Text must be exactly one function; use
// TruncateCode first on raw model output.
func ParseProgram(src string) (*Program, error) {
	if len(src) > maxSource {
		return nil, fmt.Errorf("minipy: source longer than %d bytes", maxSource)
	}
	var lines []srcLine
	for no, raw := range strings.Split(src, "\n") {
		if k := strings.IndexByte(raw, '#'); k >= 0 {
			raw = raw[:k]
		}
		for i := 0; i < len(raw); i++ {
			if raw[i] == '\t' {
				return nil, fmt.Errorf("minipy: line %d: tabs are not allowed", no+1)
			}
			if raw[i] < 32 || raw[i] > 126 {
				return nil, fmt.Errorf("minipy: line %d: invalid byte %#x", no+1, raw[i])
			}
		}
		text := strings.TrimLeft(raw, " ")
		if strings.TrimSpace(text) == "" {
			continue
		}
		toks, err := lex(text)
		if err != nil {
			return nil, fmt.Errorf("minipy: line %d: %w", no+1, err)
		}
		lines = append(lines, srcLine{indent: len(raw) - len(text), toks: toks, no: no + 1})
	}
	if len(lines) == 0 {
		return nil, errors.New("minipy: empty program")
	}
	h := lines[0]
	if h.indent != 0 || len(h.toks) != 6 || !h.toks[0].is(tName, "def") || !h.toks[1].is(tName, "f") ||
		!h.toks[2].is(tOp, "(") || h.toks[3].kind != tName || keywords[h.toks[3].s] ||
		!h.toks[4].is(tOp, ")") || !h.toks[5].is(tOp, ":") {
		return nil, errors.New("minipy: line 1: expected \"def f(x):\"")
	}
	p := &parser{lines: lines}
	body, next, err := p.block(1, 0, 1)
	if err != nil {
		return nil, err
	}
	if next < len(lines) {
		return nil, fmt.Errorf("minipy: line %d: text after the function body", lines[next].no)
	}
	return &Program{param: h.toks[3].s, body: body}, nil
}

// Call runs the program with its parameter bound to x.
func (p *Program) Call(x int64) (int64, error) {
	if x > valueLimit || x < -valueLimit {
		return 0, errOverflow
	}
	e := &env{vars: map[string]int64{p.param: x}}
	ret, v, err := execBlock(p.body, e)
	if err != nil {
		return 0, err
	}
	if !ret {
		return 0, errNoReturn
	}
	return v, nil
}

// RunProgram parses src and calls it on x.
func RunProgram(src string, x int64) (int64, error) {
	p, err := ParseProgram(src)
	if err != nil {
		return 0, err
	}
	return p.Call(x)
}

// TruncateCode applies the code stop rule to raw generated text: it keeps
// the header line and the indented lines after it, up to the first newline
// that is followed by a non-space character.
func TruncateCode(generated string) string {
	if cut := codeCut(generated); cut >= 0 {
		generated = generated[:cut]
	}
	return strings.TrimRight(generated, " \n")
}

// CodeStop reports whether generation for a code prompt should stop now.
func CodeStop(generated string) bool { return codeCut(generated) >= 0 }

func codeCut(s string) int {
	first := strings.IndexByte(s, '\n')
	if first < 0 {
		return -1
	}
	for i := first; i+1 < len(s); i++ {
		if s[i] == '\n' && s[i+1] != ' ' {
			return i
		}
	}
	return -1
}

// JudgeCode reports whether the generated text, truncated by the stop rule,
// is a MiniPy program that returns Want for every test. Malformed programs,
// runtime errors and a missing test list are failures; it never panics.
func JudgeCode(tests []CodeTest, generated string) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	if len(tests) == 0 {
		return false
	}
	p, err := ParseProgram(TruncateCode(generated))
	if err != nil {
		return false
	}
	for _, t := range tests {
		got, err := p.Call(t.X)
		if err != nil || got != t.Want {
			return false
		}
	}
	return true
}

// ---- lexer ----

type tokKind int

const (
	tName tokKind = iota
	tInt
	tOp
)

type token struct {
	kind tokKind
	s    string
	v    int64
}

func (t token) is(k tokKind, s string) bool { return t.kind == k && t.s == s }

var keywords = map[string]bool{
	"def": true, "return": true, "if": true, "elif": true, "else": true, "for": true,
	"in": true, "and": true, "or": true, "not": true, "pass": true, "while": true,
}

func lex(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ':
			i++
		case isDigit(c):
			j := i
			var v int64
			for j < len(s) && isDigit(s[j]) {
				v = v*10 + int64(s[j]-'0')
				if v > valueLimit {
					return nil, errOverflow
				}
				j++
			}
			out = append(out, token{kind: tInt, s: s[i:j], v: v})
			i = j
		case c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z'):
			j := i
			for j < len(s) && (s[j] == '_' || isDigit(s[j]) || (s[j]|0x20 >= 'a' && s[j]|0x20 <= 'z')) {
				j++
			}
			out = append(out, token{kind: tName, s: s[i:j]})
			i = j
		default:
			op := ""
			for _, cand := range []string{"//", "**", "<=", ">=", "==", "!=", "+=", "-=", "*="} {
				if strings.HasPrefix(s[i:], cand) {
					op = cand
					break
				}
			}
			if op == "" && strings.IndexByte("()+-*%<>=,:/", c) >= 0 {
				op = string(c)
			}
			switch op {
			case "":
				return nil, fmt.Errorf("unexpected character %q", c)
			case "/":
				return nil, errors.New("\"/\" is not supported (use //)")
			case "**":
				return nil, errors.New("\"**\" is not supported")
			}
			out = append(out, token{kind: tOp, s: op})
			i += len(op)
		}
	}
	return out, nil
}

// ---- parser ----

type srcLine struct {
	indent int
	toks   []token
	no     int
}

type parser struct {
	lines []srcLine
	// expression state
	toks  []token
	pos   int
	depth int
	no    int
}

// block parses the statements starting at line i that are indented deeper
// than parent. It returns the index of the first line after the block.
func (p *parser) block(i, parent, depth int) ([]stmt, int, error) {
	if depth > maxDepth/4 {
		return nil, i, errors.New("minipy: blocks nested too deeply")
	}
	if i >= len(p.lines) || p.lines[i].indent <= parent {
		no := 0
		if i < len(p.lines) {
			no = p.lines[i].no
		} else {
			no = p.lines[len(p.lines)-1].no + 1
		}
		return nil, i, fmt.Errorf("minipy: line %d: expected an indented block", no)
	}
	ind := p.lines[i].indent
	var out []stmt
	for i < len(p.lines) {
		ln := p.lines[i]
		if ln.indent < ind {
			if ln.indent > parent {
				return nil, i, fmt.Errorf("minipy: line %d: unindent does not match", ln.no)
			}
			break
		}
		if ln.indent > ind {
			return nil, i, fmt.Errorf("minipy: line %d: unexpected indent", ln.no)
		}
		s, next, err := p.statement(i, ind, depth)
		if err != nil {
			return nil, i, err
		}
		out = append(out, s)
		i = next
	}
	return out, i, nil
}

func (p *parser) statement(i, ind, depth int) (stmt, int, error) {
	ln := p.lines[i]
	t := ln.toks
	fail := func(msg string) (stmt, int, error) {
		return nil, i, fmt.Errorf("minipy: line %d: %s", ln.no, msg)
	}
	head := t[0]
	switch {
	case head.is(tName, "return"):
		e, err := p.exprLine(ln, t[1:])
		if err != nil {
			return nil, i, err
		}
		return &returnStmt{e}, i + 1, nil
	case head.is(tName, "pass"):
		if len(t) != 1 {
			return fail("unexpected text after pass")
		}
		return &passStmt{}, i + 1, nil
	case head.is(tName, "if"):
		st := &ifStmt{}
		for {
			ln = p.lines[i]
			t = ln.toks
			if len(t) < 2 || !t[len(t)-1].is(tOp, ":") {
				return fail("expected \":\" at the end of the condition")
			}
			cond, err := p.exprLine(ln, t[1:len(t)-1])
			if err != nil {
				return nil, i, err
			}
			body, next, err := p.block(i+1, ind, depth+1)
			if err != nil {
				return nil, i, err
			}
			st.conds = append(st.conds, cond)
			st.bodies = append(st.bodies, body)
			i = next
			if i >= len(p.lines) || p.lines[i].indent != ind {
				return st, i, nil
			}
			nt := p.lines[i].toks
			if nt[0].is(tName, "elif") {
				continue
			}
			if nt[0].is(tName, "else") {
				if len(nt) != 2 || !nt[1].is(tOp, ":") {
					ln = p.lines[i]
					return fail("expected \"else:\"")
				}
				body, next, err := p.block(i+1, ind, depth+1)
				if err != nil {
					return nil, i, err
				}
				st.orelse = body
				return st, next, nil
			}
			return st, i, nil
		}
	case head.is(tName, "for"):
		// for NAME in range ( args ) :
		if len(t) < 8 || t[1].kind != tName || keywords[t[1].s] || !t[2].is(tName, "in") ||
			!t[3].is(tName, "range") || !t[4].is(tOp, "(") || !t[len(t)-2].is(tOp, ")") || !t[len(t)-1].is(tOp, ":") {
			return fail("expected \"for NAME in range(...):\"")
		}
		args, err := p.argList(ln, t[5:len(t)-2])
		if err != nil {
			return nil, i, err
		}
		if len(args) < 1 || len(args) > 2 {
			return fail("range takes one or two arguments")
		}
		body, next, err := p.block(i+1, ind, depth+1)
		if err != nil {
			return nil, i, err
		}
		st := &forStmt{name: t[1].s, hi: args[len(args)-1], body: body}
		if len(args) == 2 {
			st.lo = args[0]
		}
		return st, next, nil
	case head.kind == tName && !keywords[head.s] && len(t) >= 3 && t[1].kind == tOp &&
		(t[1].s == "=" || t[1].s == "+=" || t[1].s == "-=" || t[1].s == "*="):
		e, err := p.exprLine(ln, t[2:])
		if err != nil {
			return nil, i, err
		}
		return &assignStmt{name: head.s, op: t[1].s, e: e}, i + 1, nil
	}
	return fail("unknown statement")
}

// exprLine parses toks as one whole expression.
func (p *parser) exprLine(ln srcLine, toks []token) (expr, error) {
	p.toks, p.pos, p.depth, p.no = toks, 0, 0, ln.no
	if len(toks) == 0 {
		return nil, fmt.Errorf("minipy: line %d: expected an expression", ln.no)
	}
	e, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, p.errf("unexpected %q", p.toks[p.pos].s)
	}
	return e, nil
}

// argList parses comma-separated expressions filling toks.
func (p *parser) argList(ln srcLine, toks []token) ([]expr, error) {
	p.toks, p.pos, p.depth, p.no = toks, 0, 0, ln.no
	args, err := p.args()
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, p.errf("unexpected %q", p.toks[p.pos].s)
	}
	return args, nil
}

func (p *parser) errf(format string, a ...any) error {
	return fmt.Errorf("minipy: line %d: "+format, append([]any{p.no}, a...)...)
}

func (p *parser) peek() (token, bool) {
	if p.pos < len(p.toks) {
		return p.toks[p.pos], true
	}
	return token{}, false
}

func (p *parser) accept(k tokKind, s string) bool {
	if t, ok := p.peek(); ok && t.is(k, s) {
		p.pos++
		return true
	}
	return false
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.errf("expression nested too deeply")
	}
	return nil
}

func (p *parser) or() (expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	l, err := p.and()
	for err == nil && p.accept(tName, "or") {
		var r expr
		if r, err = p.and(); err == nil {
			l = &logicExpr{or: true, l: l, r: r}
		}
	}
	return l, err
}

func (p *parser) and() (expr, error) {
	l, err := p.not()
	for err == nil && p.accept(tName, "and") {
		var r expr
		if r, err = p.not(); err == nil {
			l = &logicExpr{or: false, l: l, r: r}
		}
	}
	return l, err
}

func (p *parser) not() (expr, error) {
	if p.accept(tName, "not") {
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer func() { p.depth-- }()
		x, err := p.not()
		if err != nil {
			return nil, err
		}
		return &notExpr{x}, nil
	}
	return p.comparison()
}

var cmpOps = map[string]bool{"<": true, ">": true, "<=": true, ">=": true, "==": true, "!=": true}

func (p *parser) comparison() (expr, error) {
	first, err := p.sum()
	if err != nil {
		return nil, err
	}
	c := &cmpExpr{xs: []expr{first}}
	for {
		t, ok := p.peek()
		if !ok || t.kind != tOp || !cmpOps[t.s] {
			break
		}
		p.pos++
		x, err := p.sum()
		if err != nil {
			return nil, err
		}
		c.ops = append(c.ops, t.s)
		c.xs = append(c.xs, x)
	}
	if len(c.ops) == 0 {
		return first, nil
	}
	return c, nil
}

func (p *parser) sum() (expr, error) {
	l, err := p.term()
	for err == nil {
		t, ok := p.peek()
		if !ok || !(t.is(tOp, "+") || t.is(tOp, "-")) {
			break
		}
		p.pos++
		var r expr
		if r, err = p.term(); err == nil {
			l = &binExpr{op: t.s, l: l, r: r}
		}
	}
	return l, err
}

func (p *parser) term() (expr, error) {
	l, err := p.unary()
	for err == nil {
		t, ok := p.peek()
		if !ok || !(t.is(tOp, "*") || t.is(tOp, "//") || t.is(tOp, "%")) {
			break
		}
		p.pos++
		var r expr
		if r, err = p.unary(); err == nil {
			l = &binExpr{op: t.s, l: l, r: r}
		}
	}
	return l, err
}

func (p *parser) unary() (expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	if p.accept(tOp, "-") {
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &negExpr{x}, nil
	}
	if p.accept(tOp, "+") {
		return p.unary()
	}
	return p.atom()
}

func (p *parser) atom() (expr, error) {
	t, ok := p.peek()
	if !ok {
		return nil, p.errf("expected an expression")
	}
	p.pos++
	switch {
	case t.kind == tInt:
		return numExpr(t.v), nil
	case t.is(tOp, "("):
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		if !p.accept(tOp, ")") {
			return nil, p.errf("expected \")\"")
		}
		return e, nil
	case t.kind == tName && (t.s == "abs" || t.s == "min" || t.s == "max"):
		if !p.accept(tOp, "(") {
			return nil, p.errf("expected \"(\" after %s", t.s)
		}
		args, err := p.args()
		if err != nil {
			return nil, err
		}
		if !p.accept(tOp, ")") {
			return nil, p.errf("expected \")\"")
		}
		if (t.s == "abs" && len(args) != 1) || (t.s != "abs" && len(args) < 2) {
			return nil, p.errf("wrong number of arguments to %s", t.s)
		}
		return &callExpr{fn: t.s, args: args}, nil
	case t.kind == tName && !keywords[t.s]:
		return varExpr(t.s), nil
	}
	return nil, p.errf("unexpected %q", t.s)
}

func (p *parser) args() ([]expr, error) {
	var out []expr
	for {
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		if !p.accept(tOp, ",") {
			return out, nil
		}
	}
}

// ---- evaluation ----

type env struct {
	vars  map[string]int64
	steps int
}

func (e *env) step() error {
	e.steps++
	if e.steps > maxSteps {
		return errSteps
	}
	return nil
}

type expr interface{ eval(*env) (int64, error) }

type (
	numExpr int64
	varExpr string
	negExpr struct{ x expr }
	notExpr struct{ x expr }
	binExpr struct {
		op   string
		l, r expr
	}
	cmpExpr struct {
		ops []string
		xs  []expr
	}
	logicExpr struct {
		or   bool
		l, r expr
	}
	callExpr struct {
		fn   string
		args []expr
	}
)

func checked(v int64) (int64, error) {
	if v > valueLimit || v < -valueLimit {
		return 0, errOverflow
	}
	return v, nil
}

func (n numExpr) eval(*env) (int64, error) { return int64(n), nil }

func (v varExpr) eval(e *env) (int64, error) {
	x, ok := e.vars[string(v)]
	if !ok {
		return 0, fmt.Errorf("minipy: name %q is not defined", string(v))
	}
	return x, nil
}

func (n *negExpr) eval(e *env) (int64, error) {
	x, err := n.x.eval(e)
	return -x, err
}

func (n *notExpr) eval(e *env) (int64, error) {
	x, err := n.x.eval(e)
	if x == 0 {
		return 1, err
	}
	return 0, err
}

func (b *binExpr) eval(e *env) (int64, error) {
	l, err := b.l.eval(e)
	if err != nil {
		return 0, err
	}
	r, err := b.r.eval(e)
	if err != nil {
		return 0, err
	}
	return arith(b.op, l, r)
}

// arith applies op with Python semantics; operands are within ±2^40, so
// sums and products cannot overflow int64 before the range check.
func arith(op string, l, r int64) (int64, error) {
	switch op {
	case "+":
		return checked(l + r)
	case "-":
		return checked(l - r)
	case "*":
		return checked(l * r)
	case "//", "%":
		if r == 0 {
			return 0, errors.New("minipy: division by zero")
		}
		q, m := l/r, l%r
		if m != 0 && (m < 0) != (r < 0) {
			q--
			m += r
		}
		if op == "//" {
			return q, nil
		}
		return m, nil
	}
	return 0, fmt.Errorf("minipy: unknown operator %q", op)
}

func (c *cmpExpr) eval(e *env) (int64, error) {
	l, err := c.xs[0].eval(e)
	if err != nil {
		return 0, err
	}
	for i, op := range c.ops {
		r, err := c.xs[i+1].eval(e)
		if err != nil {
			return 0, err
		}
		var ok bool
		switch op {
		case "<":
			ok = l < r
		case ">":
			ok = l > r
		case "<=":
			ok = l <= r
		case ">=":
			ok = l >= r
		case "==":
			ok = l == r
		case "!=":
			ok = l != r
		}
		if !ok {
			return 0, nil
		}
		l = r
	}
	return 1, nil
}

func (o *logicExpr) eval(e *env) (int64, error) {
	l, err := o.l.eval(e)
	if err != nil {
		return 0, err
	}
	if (l != 0) == o.or { // "or" with a true left, or "and" with a false left
		return l, nil
	}
	return o.r.eval(e)
}

func (c *callExpr) eval(e *env) (int64, error) {
	vals := make([]int64, len(c.args))
	for i, a := range c.args {
		v, err := a.eval(e)
		if err != nil {
			return 0, err
		}
		vals[i] = v
	}
	switch c.fn {
	case "abs":
		if vals[0] < 0 {
			return -vals[0], nil
		}
		return vals[0], nil
	case "min":
		m := vals[0]
		for _, v := range vals[1:] {
			m = min(m, v)
		}
		return m, nil
	default: // max
		m := vals[0]
		for _, v := range vals[1:] {
			m = max(m, v)
		}
		return m, nil
	}
}

type stmt interface {
	// exec runs the statement; ret reports a return with value v.
	exec(*env) (ret bool, v int64, err error)
}

type (
	returnStmt struct{ e expr }
	passStmt   struct{}
	assignStmt struct {
		name, op string
		e        expr
	}
	ifStmt struct {
		conds  []expr
		bodies [][]stmt
		orelse []stmt
	}
	forStmt struct {
		name   string
		lo, hi expr // lo may be nil (0)
		body   []stmt
	}
)

func execBlock(b []stmt, e *env) (bool, int64, error) {
	for _, s := range b {
		if err := e.step(); err != nil {
			return false, 0, err
		}
		if ret, v, err := s.exec(e); err != nil || ret {
			return ret, v, err
		}
	}
	return false, 0, nil
}

func (s *returnStmt) exec(e *env) (bool, int64, error) {
	v, err := s.e.eval(e)
	return err == nil, v, err
}

func (*passStmt) exec(*env) (bool, int64, error) { return false, 0, nil }

func (s *assignStmt) exec(e *env) (bool, int64, error) {
	v, err := s.e.eval(e)
	if err != nil {
		return false, 0, err
	}
	if s.op != "=" {
		old, ok := e.vars[s.name]
		if !ok {
			return false, 0, fmt.Errorf("minipy: name %q is not defined", s.name)
		}
		if v, err = arith(s.op[:1], old, v); err != nil {
			return false, 0, err
		}
	}
	e.vars[s.name] = v
	return false, 0, nil
}

func (s *ifStmt) exec(e *env) (bool, int64, error) {
	for i, c := range s.conds {
		v, err := c.eval(e)
		if err != nil {
			return false, 0, err
		}
		if v != 0 {
			return execBlock(s.bodies[i], e)
		}
	}
	return execBlock(s.orelse, e)
}

func (s *forStmt) exec(e *env) (bool, int64, error) {
	var lo int64
	if s.lo != nil {
		v, err := s.lo.eval(e)
		if err != nil {
			return false, 0, err
		}
		lo = v
	}
	hi, err := s.hi.eval(e)
	if err != nil {
		return false, 0, err
	}
	for i := lo; i < hi; i++ {
		if err := e.step(); err != nil {
			return false, 0, err
		}
		e.vars[s.name] = i
		if ret, v, err := execBlock(s.body, e); err != nil || ret {
			return ret, v, err
		}
	}
	return false, 0, nil
}
