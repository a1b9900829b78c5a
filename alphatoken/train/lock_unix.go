//go:build unix

package train

import (
	"encoding/json"
	"os"
	"syscall"
	"time"

	"github.com/pkg/errors"
)

// acquire takes the flock of the lock file at path (see outdir.go).
func acquire(dir, path string) (*Lock, error) {
	for attempt := 0; attempt < 50; attempt++ {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, errors.Wrapf(err, "train: creating the lock %s", path)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			info := readInfo(f)
			f.Close()
			if !errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, errors.Wrapf(err, "train: locking %s", path)
			}
			if info == nil && attempt < 49 { // the holder has not written its record yet
				time.Sleep(20 * time.Millisecond)
				continue
			}
			if info == nil {
				info = &LockInfo{Command: "unknown: the lock file is empty"}
			}
			return nil, &LockedError{Dir: dir, Holder: *info}
		}
		// The holder may have released (removed) the file between our open and our flock.
		st, err := os.Stat(path)
		fst, ferr := f.Stat()
		if err != nil || ferr != nil || !os.SameFile(st, fst) {
			f.Close()
			continue
		}
		l := &Lock{Dir: dir, path: path, f: f, Stale: readInfo(f)}
		rec, _ := json.Marshal(myInfo())
		err = f.Truncate(0)
		if err == nil {
			_, err = f.WriteAt(append(rec, '\n'), 0)
		}
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			f.Close()
			return nil, errors.Wrapf(err, "train: writing the lock %s", path)
		}
		return l, nil
	}
	return nil, errors.Errorf("train: could not take the lock %s: it keeps being replaced", path)
}

// release removes the lock file while still holding it (a process that opened it meanwhile finds,
// once it gets the flock, that the path no longer names the file it locked, and starts over),
// then drops the flock.
func (l *Lock) release() error {
	err := os.Remove(l.path)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}
