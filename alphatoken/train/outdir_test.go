package train

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// holdLockEnv makes the test binary a helper process that takes the lock of the directory it
// names, prints "locked", and holds it until its stdin closes (or it is killed).
const holdLockEnv = "ALPHATOKEN_TEST_HOLD_LOCK"

func TestMain(m *testing.M) {
	if dir := os.Getenv(holdLockEnv); dir != "" {
		l, err := PrepareOutDir(dir, true, false)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = l.Release()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// holder starts a helper process holding dir's lock.
func holder(t *testing.T, dir string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdLockEnv+"="+dir)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "locked" {
		_ = cmd.Process.Kill()
		t.Fatalf("helper: %q", line)
	}
	return cmd, stdin
}

// TestOneWriterPerDirectory: while another process holds an output directory, PrepareOutDir and a
// trainer's Run fail naming it; once it is killed (its lock left behind), the lock is taken over,
// the dead run reported and its temporaries removed; a clean release lets the next run in.
func TestOneWriterPerDirectory(t *testing.T) {
	dir := t.TempDir()
	cmd, stdin := holder(t, dir)
	_, err := PrepareOutDir(dir, true, false)
	var locked *LockedError
	if !errors.As(err, &locked) || locked.Holder.PID != cmd.Process.Pid || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", cmd.Process.Pid)) {
		t.Fatalf("want the holder pid %d named, got %v", cmd.Process.Pid, err)
	}
	host, _ := os.Hostname()
	if locked.Holder.Host != host || !strings.Contains(locked.Holder.Command, "-test.run") || locked.Holder.Started.IsZero() {
		t.Errorf("holder %+v", locked.Holder)
	}
	cfg := DefaultConfig(2)
	cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet, cfg.OutDir = 4, 32, 16, true, dir
	tr, err := New(tinyLM(t, 1), nil, cfg, Full{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(copyTask(8)); !errors.As(err, &locked) {
		t.Fatalf("a trainer writing a locked directory: %v", err)
	}
	// Killed: the lock file stays, nobody holds it.
	for _, n := range []string{"checkpoint-4.tmp-1-ab", "checkpoint-2.old-1-cd", ".trash-1-ef"} {
		if err := os.Mkdir(filepath.Join(dir, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if _, err := os.Stat(filepath.Join(dir, LockFile)); err != nil {
		t.Fatalf("the killed holder's lock file: %v", err)
	}
	l, err := PrepareOutDir(dir, false, false)
	if err != nil {
		t.Fatalf("after the holder died: %v", err)
	}
	if l.Stale == nil || l.Stale.PID != cmd.Process.Pid {
		t.Fatalf("stale holder not reported: %+v", l.Stale)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != LockFile {
		t.Fatalf("left in the directory: %v", entries)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, LockFile))
	var mine LockInfo
	if json.Unmarshal(raw, &mine) != nil || mine.PID != os.Getpid() {
		t.Fatalf("lock file %s", raw)
	}
	// The same process may take it again (the trainer inside a CLI run); releasing both frees it.
	if err := tr.Run(copyTask(8)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, LockFile)); err != nil {
		t.Fatalf("the trainer released the lock PrepareOutDir holds: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, LockFile)); !os.IsNotExist(err) {
		t.Fatalf("lock file after release: %v", err)
	}
	// A holder that ends cleanly leaves no lock, and no stale report.
	cmd, stdin = holder(t, dir)
	stdin.Close()
	_ = cmd.Wait()
	l, err = PrepareOutDir(dir, true, false)
	if err != nil || l.Stale != nil {
		t.Fatalf("after a clean release: %v, stale %+v", err, l.Stale)
	}
	l.Release()
}

// TestPrepareOutDir: a directory holding a run is refused unless resume or overwrite; overwrite
// leaves it empty.
func TestPrepareOutDir(t *testing.T) {
	dir := t.TempDir()
	l, err := PrepareOutDir(filepath.Join(dir, "new"), false, false)
	if err != nil {
		t.Fatalf("a new directory: %v", err)
	}
	l.Release()
	run := filepath.Join(dir, "run")
	for _, n := range []string{"checkpoint-40", "checkpoint-40/model.safetensors", "metrics.jsonl", "model.safetensors"} {
		p := filepath.Join(run, n)
		if filepath.Ext(n) == "" {
			_ = os.MkdirAll(p, 0o755)
		} else if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := PrepareOutDir(run, false, false); err == nil || !strings.Contains(err.Error(), "is not empty (checkpoint-40, metrics.jsonl, model.safetensors)") ||
		!strings.Contains(err.Error(), "--overwrite") {
		t.Fatalf("non-empty: %v", err)
	}
	if _, err := PrepareOutDir(run, true, true); err == nil {
		t.Fatal("--resume with --overwrite accepted")
	}
	l, err = PrepareOutDir(run, true, false)
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	if _, err := os.Stat(filepath.Join(run, "checkpoint-40")); err != nil {
		t.Fatal("resume removed the run")
	}
	l, err = PrepareOutDir(run, false, true)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(run)
	if len(entries) != 1 || entries[0].Name() != LockFile {
		t.Fatalf("after --overwrite: %v", entries)
	}
	l.Release()
}
