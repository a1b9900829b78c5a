package minibench

import (
	"fmt"
	"index/suffixarray"
	"strings"
	"sync"
	"testing"
)

var (
	defaultOnce  sync.Once
	defaultBench *Bench
	defaultErr   error
	corpusIndex  *suffixarray.Index
)

// defaultBuild builds DefaultConfig once per test binary and indexes its
// corpus (documents joined by blank lines, as in corpus.txt).
func defaultBuild(t *testing.T) (*Bench, *suffixarray.Index) {
	t.Helper()
	defaultOnce.Do(func() {
		defaultBench, defaultErr = Build(DefaultConfig())
		if defaultErr == nil {
			corpusIndex = suffixarray.New([]byte(strings.Join(defaultBench.Corpus, "\n\n")))
		}
	})
	if defaultErr != nil {
		t.Fatal(defaultErr)
	}
	return defaultBench, corpusIndex
}

func count(idx *suffixarray.Index, s string) int { return len(idx.Lookup([]byte(s), -1)) }

func splitSteps(sol string) []string {
	var out []string
	for _, s := range strings.Split(strings.TrimSuffix(sol, "."), ". ") {
		out = append(out, s)
	}
	return out
}

// sscanEq parses "a<op>b=c".
func sscanEq(s string, op byte, a, b, c *int) (bool, error) {
	var rest string
	n, err := fmt.Sscanf(s+" end", "%d"+string(op)+"%d=%d %s", a, b, c, &rest)
	return n == 4 && rest == "end", err
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] > 126 || (s[i] < 32 && s[i] != '\n') {
			return false
		}
	}
	return true
}
