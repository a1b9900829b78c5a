// Package atomicfile writes files so that a reader (or a crash) never sees a half-written one:
// the content goes to a temporary file in the same directory, is synced, and is renamed over
// the destination.
package atomicfile

import (
	"bufio"
	"io"
	"os"
	"path/filepath"

	"github.com/pkg/errors"
)

// Write creates path (and its directory) atomically with the content written by fill.
// If fill or any step fails, path is left as it was and the temporary file is removed.
func Write(path string, fill func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return errors.Wrapf(err, "creating directory for %s", path)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return errors.Wrapf(err, "creating temporary file for %s", path)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err = fill(bw); err != nil {
		return errors.WithMessagef(err, "writing %s", path)
	}
	if err = bw.Flush(); err != nil {
		return errors.Wrapf(err, "writing %s", path)
	}
	if err = f.Sync(); err != nil {
		return errors.Wrapf(err, "syncing %s", path)
	}
	if err = f.Close(); err != nil {
		return errors.Wrapf(err, "closing %s", path)
	}
	if err = os.Chmod(tmp, 0o644); err != nil {
		return errors.Wrapf(err, "chmod %s", path)
	}
	if err = os.Rename(tmp, path); err != nil {
		return errors.Wrapf(err, "renaming into %s", path)
	}
	return nil
}

// WriteBytes is Write for content already in memory.
func WriteBytes(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}
