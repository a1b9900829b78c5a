// Command nbstrip removes outputs, execution counts and run metadata from Jupyter notebooks, in
// place, so they can be committed (see notebooks/README.md):
//
//	go run ./internal/nbstrip/cmd/nbstrip                  # every notebooks/*.ipynb
//	go run ./internal/nbstrip/cmd/nbstrip a.ipynb b.ipynb  # the given notebooks
//	go run ./internal/nbstrip/cmd/nbstrip -check           # list what needs stripping; exit 1 if any
//
// Without arguments it takes notebooks/*.ipynb relative to the current directory (the repository
// root), leaving out nbconvert's *.nbconvert.ipynb results.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/alphatoken/alphatoken/internal/nbstrip"
)

func main() {
	check := flag.Bool("check", false, "only report notebooks that need stripping (exit status 1 if any)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: nbstrip [-check] [notebook.ipynb ...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	paths := flag.Args()
	if len(paths) == 0 {
		all, _ := filepath.Glob(filepath.Join("notebooks", "*.ipynb"))
		for _, p := range all {
			if !strings.HasSuffix(p, ".nbconvert.ipynb") {
				paths = append(paths, p)
			}
		}
		if len(paths) == 0 {
			fmt.Fprintln(os.Stderr, "nbstrip: no notebooks/*.ipynb here (run it from the repository root, or name the notebooks)")
			os.Exit(2)
		}
	}
	dirty := false
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			fail(err)
		}
		if *check {
			probs, err := nbstrip.Problems(data)
			if err != nil {
				fail(fmt.Errorf("%s: %w", p, err))
			}
			for _, pr := range probs {
				fmt.Printf("%s: %s\n", p, pr)
			}
			dirty = dirty || len(probs) > 0
			continue
		}
		out, err := nbstrip.Strip(data)
		if err != nil {
			fail(fmt.Errorf("%s: %w", p, err))
		}
		if bytes.Equal(out, data) {
			continue
		}
		if err := os.WriteFile(p, out, 0o644); err != nil {
			fail(err)
		}
		fmt.Printf("stripped %s\n", p)
	}
	if dirty {
		fmt.Fprintln(os.Stderr, "nbstrip: run `go run ./internal/nbstrip/cmd/nbstrip` to strip them")
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "nbstrip:", err)
	os.Exit(2)
}
