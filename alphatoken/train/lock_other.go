//go:build !unix

package train

import (
	"encoding/json"
	"os"

	"github.com/pkg/errors"
)

// acquire creates the lock file at path exclusively (O_EXCL). Without flock(2) a lock left by a
// dead run cannot be told from a live one: it is reported, and removing the file is the user's call.
func acquire(dir, path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if os.IsExist(err) {
			info := &LockInfo{Command: "unknown"}
			if g, err := os.Open(path); err == nil {
				if i := readInfo(g); i != nil {
					info = i
				}
				g.Close()
			}
			return nil, &LockedError{Dir: dir, Holder: *info}
		}
		return nil, errors.Wrapf(err, "train: creating the lock %s", path)
	}
	rec, _ := json.Marshal(myInfo())
	if _, err := f.Write(append(rec, '\n')); err != nil {
		f.Close()
		return nil, errors.Wrapf(err, "train: writing the lock %s", path)
	}
	return &Lock{Dir: dir, path: path, f: f}, nil
}

func (l *Lock) release() error {
	err := l.f.Close()
	if rerr := os.Remove(l.path); err == nil {
		err = rerr
	}
	return err
}
