// Package notebooks holds the GoNB (Go kernel for Jupyter) notebooks of alphatoken, committed
// without outputs, and their test: `go test ./notebooks/` executes every notebook headless with
// Jupyter's nbconvert and fails on any cell error. See README.md in this directory.
package notebooks
