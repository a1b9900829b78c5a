package notebooks_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// killOnCancel makes cmd's cancellation (its context ending) kill everything it started:
// nbconvert's process group, and the kernel with the cell program it runs, which jupyter_client
// starts in a session of their own; those are found by marker, an environment entry
// ("KEY=value") that only this run's processes carry.
func killOnCancel(cmd *exec.Cmd, marker string) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		procs, _ := filepath.Glob("/proc/[0-9]*/environ")
		for _, p := range procs {
			env, err := os.ReadFile(p)
			if err != nil || !bytes.Contains(append([]byte{0}, env...), append(append([]byte{0}, marker...), 0)) {
				continue
			}
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		return nil
	}
}
