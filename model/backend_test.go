package model

import (
	"io"
	"os"
	"testing"
)

// TestNewBackendStdoutClean: creating the go backend writes nothing on stdout (GoMLX prints its
// parallelism setting there; NewBackend routes it to stderr).
func TestNewBackendStdoutClean(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	_, berr := NewBackend("go")
	os.Stdout = saved
	w.Close()
	out, _ := io.ReadAll(r)
	if berr != nil {
		t.Fatal(berr)
	}
	if len(out) != 0 {
		t.Fatalf("NewBackend wrote %q on stdout", out)
	}
}
