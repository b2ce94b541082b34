// Package fileutil holds the two file primitives node state is built on:
// a durable replace (a reader or a crash sees the old content or the new,
// never half) and an exclusive lock shared between shims.
package fileutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// WriteFile replaces path with data durably: a synced temporary file in the
// same directory is renamed over it and the directory synced. perm is set
// explicitly because the temporary file is created 0600.
func WriteFile(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	// Sync before rename, or a crash could leave the new name on an
	// empty file.
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// IsTemp reports whether name is one of WriteFile's temporary files, which
// a crash can leave behind and listings must skip.
func IsTemp(name string) bool {
	return len(name) > 0 && name[0] == '.'
}

// SyncDir makes a rename or removal in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Flock applies flock(2) operation how to fd, retrying when a signal
// interrupts the wait (the Go runtime's preemption signals do).
func Flock(fd int, how int) error {
	for {
		err := unix.Flock(fd, how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// Lock takes an exclusive lock on path, creating the file with perm, and
// returns the function that releases it. Holders may delete the lock file
// while holding it (so empty directories can go), which means a waiter can
// win the lock of an unlinked file; Lock then compares the locked inode
// with the path's and starts over on a mismatch.
func Lock(path string, perm os.FileMode) (unlock func(), err error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, perm)
		if err != nil {
			return nil, err
		}
		if err := Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		var held, now unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &held); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("stat %s: %w", path, err)
		}
		if unix.Stat(path, &now) == nil && now.Dev == held.Dev && now.Ino == held.Ino {
			// Closing the only descriptor of this open file drops the lock.
			return func() { _ = f.Close() }, nil
		}
		_ = f.Close()
	}
}
