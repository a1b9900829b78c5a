package ablations

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alphatoken/alphatoken/alphatoken/train"
)

// trainRunEnv makes the test binary a helper process standing for another suite training a run:
// it takes the lock of the run directory it names, prints "locked", and when its stdin closes
// writes the run's result.json and releases the lock.
const trainRunEnv = "ALPHATOKEN_TEST_TRAIN_RUN"

func TestMain(m *testing.M) {
	if dir := os.Getenv(trainRunEnv); dir != "" {
		l, err := train.PrepareOutDir(dir, true, false)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		_, _ = io.Copy(io.Discard, os.Stdin)
		if err := writeJSON(filepath.Join(dir, "result.json"), RunResult{Config: RunConfig{Method: "full", Seed: 7}}); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		_ = l.Release()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestClaimRunWaits: while another process trains a run, a suite that needs the same run waits
// for it and then takes its result instead of training it again; a free run is claimed at once.
func TestClaimRunWaits(t *testing.T) {
	defer func(w time.Duration) { lockWait = w }(lockWait)
	lockWait = 20 * time.Millisecond
	dir := filepath.Join(t.TempDir(), "full-abc")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), trainRunEnv+"="+dir)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); strings.TrimSpace(line) != "locked" {
		_ = cmd.Process.Kill()
		t.Fatalf("helper: %q", line)
	}
	type claimed struct {
		lock *train.Lock
		res  *RunResult
		err  error
	}
	done := make(chan claimed, 1)
	var log bytes.Buffer
	go func() {
		l, r, err := claimRun[RunConfig, RunResult](dir, "cached run", "Full FT", RunConfig{Method: "full", Seed: 7}, &log)
		done <- claimed{l, r, err}
	}()
	select {
	case c := <-done:
		t.Fatalf("claimRun returned while another process held the run: %+v", c)
	case <-time.After(300 * time.Millisecond):
	}
	stdin.Close()
	_ = cmd.Wait()
	c := <-done
	if c.err != nil || c.lock != nil || c.res == nil || c.res.Config.Seed != 7 {
		t.Fatalf("after the other process finished: lock %v, result %+v, err %v", c.lock, c.res, c.err)
	}
	if !strings.Contains(log.String(), "another process is training this run") {
		t.Errorf("log: %q", log.String())
	}
	// A run nobody trains: claimed at once, with the lock held.
	free := filepath.Join(t.TempDir(), "full-def")
	l, res, err := claimRun[RunConfig, RunResult](free, "cached run", "Full FT", RunConfig{Method: "full"}, io.Discard)
	if err != nil || l == nil || res != nil {
		t.Fatalf("free run: lock %v, result %v, err %v", l, res, err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
}
