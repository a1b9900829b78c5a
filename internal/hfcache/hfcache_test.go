package hfcache

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HF_HOME", home)
	hash := strings.Repeat("ab", 20)
	repo := filepath.Join(home, "hub", "models--Qwen--Qwen3-0.6B")
	snap := filepath.Join(repo, "snapshots", hash)
	if err := os.MkdirAll(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(repo, "refs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(hash+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []string{"Qwen/Qwen3-0.6B", "Qwen/Qwen3-0.6B@main", "Qwen/Qwen3-0.6B@" + hash} {
		got, err := Resolve(spec)
		if err != nil || got != snap {
			t.Errorf("%s: %q, %v", spec, got, err)
		}
	}
	// A directory is used as it is.
	if got, err := Resolve(snap); err != nil || got != snap {
		t.Errorf("dir: %q %v", got, err)
	}
	// Absent: the error names the paths looked at.
	_, err := Resolve("meta-llama/Llama-3.2-1B")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(home, "hub", "models--meta-llama--Llama-3.2-1B")) {
		t.Errorf("absent: %v", err)
	}
	_, err = Resolve("Qwen/Qwen3-0.6B@v2")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(repo, "refs", "v2")) {
		t.Errorf("absent ref: %v", err)
	}
	// Paths that are not Org/Name are left to the loader, which names the missing file.
	for _, path := range []string{"./nope", "a/b/c", "../x/y", "/abs/dir"} {
		if got, err := Resolve(path); err != nil || got != path {
			t.Errorf("%s: %q %v", path, got, err)
		}
	}
}
