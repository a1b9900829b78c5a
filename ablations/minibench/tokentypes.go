package minibench

// Token types of MiniPy responses (issue 12, item 3). A response token is a "decision" token when
// it carries the choice that makes the program compute the asked function, and a "format" token when
// it is fixed by the program's syntax or template whatever the task. The rule works on the program
// text, byte by byte (the mini tokenizer is byte-level), by the byte's position in its line:
//
//   - format: newlines and indentation; the whole header line ("def f(x):"); keywords that only
//     structure the program (def, return, if, elif, else, while, for, in, pass); the function's and
//     its arguments' names wherever they occur (so "return x" and the target of "x=…" are format);
//     a simple assignment "="; parentheses, brackets, commas, colons and spaces;
//   - decision: number literals; arithmetic, comparison and augmented-assignment operators (+ - * /
//     % < > = ! in any operator but an assignment's "=", which stays format also before a unary
//     operator as in "x=-x"); every other identifier in the body — the
//     operation's function (abs, max, min) or a logical operator (and, or, not).
//
// So "def f(x):\n  x*=3\n  x=x%7\n  return x" has decision bytes "*=3" and "%7" and everything else
// is format, and "  return x*3+7" has decision bytes "*3+7". Bytes of anything else (e.g. a
// tokenizer's end-of-sequence token) are format.

// TokenType classifies one response byte.
type TokenType uint8

const (
	Format   TokenType = iota // syntax and template: fixed whatever the task
	Decision                  // constants, operators, the operation's identifiers
)

func (t TokenType) String() string {
	if t == Decision {
		return "decision"
	}
	return "format"
}

var formatKeywords = map[string]bool{"def": true, "return": true, "if": true, "elif": true, "else": true,
	"while": true, "for": true, "in": true, "pass": true}

func isIdentStart(c byte) bool { return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isOpChar(c byte) bool {
	switch c {
	case '+', '-', '*', '/', '%', '<', '>', '=', '!':
		return true
	}
	return false
}

// ProgramByteTypes returns the type of every byte of a MiniPy program text (a response of the code
// target), by the rule above.
func ProgramByteTypes(src string) []TokenType {
	out := make([]TokenType, len(src))
	names := map[string]bool{} // the function's and its arguments' names, from "def NAME(ARGS):" lines
	for start := 0; start < len(src); {
		end := start
		for end < len(src) && src[end] != '\n' {
			end++
		}
		line := src[start:end]
		trimmed := line
		for len(trimmed) > 0 && (trimmed[0] == ' ' || trimmed[0] == '\t') {
			trimmed = trimmed[1:]
		}
		if len(trimmed) >= 4 && trimmed[:4] == "def " { // header: every byte format; collect the names
			for i := 4; i < len(trimmed); {
				if isIdentStart(trimmed[i]) {
					j := i
					for j < len(trimmed) && (isIdentStart(trimmed[j]) || isDigit(trimmed[j])) {
						j++
					}
					names[trimmed[i:j]] = true
					i = j
					continue
				}
				i++
			}
		} else {
			classifyLine(line, start, out, names)
		}
		start = end + 1 // the newline stays format
	}
	return out
}

// classifyLine marks the decision bytes of one body line (offset: the line's position in out).
func classifyLine(line string, offset int, out []TokenType, names map[string]bool) {
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case isIdentStart(c):
			j := i
			for j < len(line) && (isIdentStart(line[j]) || isDigit(line[j])) {
				j++
			}
			if w := line[i:j]; !formatKeywords[w] && !names[w] {
				mark(out, offset+i, offset+j)
			}
			i = j
		case isDigit(c):
			j := i
			for j < len(line) && (isDigit(line[j]) || line[j] == '.') {
				j++
			}
			mark(out, offset+i, offset+j)
			i = j
		case isOpChar(c):
			j := i
			for j < len(line) && isOpChar(line[j]) {
				j++
			}
			from := i
			if line[i] == '=' && (j == i+1 || line[i+1] != '=') {
				from++ // an assignment's "=" (also before a unary operator, "x=-x") is syntax
			}
			mark(out, offset+from, offset+j)
			i = j
		default:
			i++
		}
	}
}

func mark(out []TokenType, from, to int) {
	for k := from; k < to; k++ {
		out[k] = Decision
	}
}
