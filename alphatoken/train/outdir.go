package train

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pkg/errors"
)

// One writer per output directory.
//
// A run holds OUT/.alphatoken.lock while it writes OUT: the file records the holder (pid, host,
// start time, command) and the holder keeps an exclusive flock(2) on it. The kernel drops a flock
// when its process ends, however it ends, so a lock left behind by a killed or crashed run is
// recognised for what it is (the file is there, nobody holds it) and taken over automatically,
// with the previous holder reported (Lock.Stale); a live holder is never taken over, whatever its
// pid or host. Checkpoints are written under unique temporary names (checkpoint-N.tmp-<pid>-<random>)
// and renamed into place, and leftovers of dead runs are removed when the lock is taken.

// LockFile is the lock's name inside an output directory.
const LockFile = ".alphatoken.lock"

// LockInfo is what the lock file records of its holder.
type LockInfo struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Started time.Time `json:"started"`
	Command string    `json:"command"`
}

func (h LockInfo) String() string {
	return fmt.Sprintf("pid %d on host %s, started %s (%s)", h.PID, h.Host, h.Started.Format(time.RFC3339), h.Command)
}

// LockedError reports an output directory another run is writing.
type LockedError struct {
	Dir    string
	Holder LockInfo
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("train: %s is in use by another run: %s; wait for it to end or choose another --out", e.Dir, e.Holder)
}

// Lock is a held output-directory lock. Release it when the run ends.
type Lock struct {
	Dir string
	// Stale is the previous holder when the lock was taken over from a run that ended without
	// releasing it (killed or crashed); nil otherwise.
	Stale *LockInfo

	abs  string
	path string
	f    *os.File
	refs int
}

// held are this process's locks, by absolute directory: a process takes a directory's lock once
// (PrepareOutDir, then the trainer's own RunUntil, share it).
var held = struct {
	sync.Mutex
	m map[string]*Lock
}{m: map[string]*Lock{}}

func lockOutDir(dir string) (*Lock, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, errors.Wrapf(err, "train: output directory %s", dir)
	}
	held.Lock()
	defer held.Unlock()
	if l := held.m[abs]; l != nil {
		l.refs++
		return l, nil
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, errors.Wrapf(err, "train: creating %s", dir)
	}
	l, err := acquire(dir, filepath.Join(abs, LockFile))
	if err != nil {
		return nil, err
	}
	l.abs, l.refs = abs, 1
	held.m[abs] = l
	removeLeftovers(abs)
	return l, nil
}

// Release gives the lock back (the last of this process's holders removes the lock file).
func (l *Lock) Release() error {
	held.Lock()
	defer held.Unlock()
	if l.refs <= 0 {
		return nil
	}
	l.refs--
	if l.refs > 0 {
		return nil
	}
	delete(held.m, l.abs)
	return errors.Wrapf(l.release(), "train: releasing %s", l.path)
}

func myInfo() LockInfo {
	host, _ := os.Hostname()
	return LockInfo{PID: os.Getpid(), Host: host, Started: time.Now().Round(time.Second), Command: strings.Join(os.Args, " ")}
}

// readInfo reads a lock file's holder (nil when the file is empty or not a lock record).
func readInfo(f *os.File) *LockInfo {
	raw := make([]byte, 1<<16)
	n, _ := f.ReadAt(raw, 0)
	var info LockInfo
	if n == 0 || json.Unmarshal(raw[:n], &info) != nil || info.PID == 0 {
		return nil
	}
	return &info
}

// isLeftover reports whether an output directory entry is a dead run's temporary (removed when
// the lock is taken; only the lock's holder writes temporaries).
func isLeftover(name string) bool {
	return strings.HasPrefix(name, ".trash-") ||
		(strings.HasPrefix(name, "checkpoint-") && (strings.Contains(name, ".tmp") || strings.Contains(name, ".old-")))
}

func removeLeftovers(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if isLeftover(e.Name()) {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// uniqueSuffix is "<pid>-<random hex>", for temporary names no other writer can produce.
func uniqueSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%d-%s", os.Getpid(), hex.EncodeToString(b[:]))
}

// PrepareOutDir takes the lock of a training run's output directory (creating it) and checks
// that the run may write there: a directory holding anything (a finished run, checkpoints,
// metrics) is refused unless resume (continue the run in it) or overwrite (replace it: its
// content is first moved aside into one temporary directory, then deleted, so a crash midway
// leaves nothing that looks like a run). Release the returned lock when the run ends; if it was
// taken over from a run that died without releasing it, Lock.Stale names that run.
func PrepareOutDir(dir string, resume, overwrite bool) (*Lock, error) {
	if dir == "" {
		return nil, errors.New("train: no output directory")
	}
	if resume && overwrite {
		return nil, errors.New("train: --resume and --overwrite exclude each other (continue the run in the directory, or replace it)")
	}
	l, err := lockOutDir(dir)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(l.abs)
	if err != nil {
		l.Release()
		return nil, errors.Wrapf(err, "train: reading %s", dir)
	}
	var names []string
	for _, e := range entries {
		if e.Name() != LockFile && !isLeftover(e.Name()) {
			names = append(names, e.Name())
		}
	}
	switch {
	case len(names) == 0 || resume:
		return l, nil
	case !overwrite:
		l.Release()
		shown := strings.Join(names, ", ")
		if len(names) > 4 {
			shown = fmt.Sprintf("%s, and %d more", strings.Join(names[:4], ", "), len(names)-4)
		}
		return nil, errors.Errorf("train: --out %s is not empty (%s): use --resume to continue the run in it, "+
			"--overwrite to replace it, or another --out", dir, shown)
	}
	trash := filepath.Join(l.abs, ".trash-"+uniqueSuffix())
	if err := os.Mkdir(trash, 0o755); err != nil {
		l.Release()
		return nil, errors.Wrapf(err, "train: --overwrite %s", dir)
	}
	for _, n := range names {
		if err := os.Rename(filepath.Join(l.abs, n), filepath.Join(trash, n)); err != nil {
			l.Release()
			return nil, errors.Wrapf(err, "train: --overwrite %s: moving %s aside", dir, n)
		}
	}
	if err := os.RemoveAll(trash); err != nil {
		l.Release()
		return nil, errors.Wrapf(err, "train: --overwrite %s: deleting the old run", dir)
	}
	return l, nil
}
