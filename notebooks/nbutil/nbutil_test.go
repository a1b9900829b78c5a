package nbutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRootAndCache(t *testing.T) {
	root := Root() // the test runs in notebooks/nbutil of the checkout
	if _, err := os.Stat(filepath.Join(root, "notebooks", "nbutil", "nbutil.go")); err != nil {
		t.Fatalf("Root() = %s: not this checkout (%v)", root, err)
	}
	t.Setenv("ALPHATOKEN_CACHE", "")
	if got, want := CacheDir(), filepath.Join(root, ".cache", "alphatoken"); got != want {
		t.Errorf("CacheDir() = %s, want %s", got, want)
	}
	t.Setenv("ALPHATOKEN_CACHE", "/elsewhere")
	if got := CacheDir(); got != "/elsewhere" {
		t.Errorf("CacheDir() with $ALPHATOKEN_CACHE = %s", got)
	}
	t.Setenv("GONB_TMP_DIR", "/tmp/x")
	if got := Scratch("m"); got != "/tmp/x/m" {
		t.Errorf("Scratch = %s", got)
	}
}
