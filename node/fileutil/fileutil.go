// Package fileutil holds the file primitives node state is built on: a
// durable replace (a reader or a crash sees the old content or the new,
// never half), an atomic but volatile replace for state a reboot voids, and
// an exclusive lock shared between shims.
package fileutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// WriteFile replaces path with data durably: a synced temporary file in the
// same directory is renamed over it and the directory synced. perm is set
// explicitly because the temporary file is created 0600.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	if err := replace(path, data, perm, true); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// ReplaceFile replaces path with data atomically for every reader and for a
// crash of the writing process (a temporary file in the same directory is
// renamed over it), but not durably: nothing is synced, so a crash of the
// machine may leave path empty or torn. It is for state that a reboot voids
// anyway, such as a lease held by a process of this boot, where WriteFile's
// two fsyncs would be paid on every pod start for nothing. Readers of such
// files tell a torn file from an earlier boot by its mtime (ModifiedBeforeBoot).
func ReplaceFile(path string, data []byte, perm os.FileMode) error {
	return replace(path, data, perm, false)
}

func replace(path string, data []byte, perm os.FileMode, sync bool) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
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
	if sync {
		// Sync before rename, or a crash could leave the new name on an
		// empty file.
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// ModifiedBeforeBoot reports whether path was last changed before the
// machine booted (its mtime is earlier than /proc/stat's btime): a file that
// ReplaceFile left torn can only be such a file, since within one boot every
// reader sees the renamed file whole.
func ModifiedBeforeBoot(path string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return false, err
	}
	boot, err := bootTime()
	if err != nil {
		return false, err
	}
	return st.Mtim.Sec < boot, nil
}

// bootTime is the boot time in seconds since the epoch (/proc/stat btime).
func bootTime() (int64, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.New("/proc/stat: no btime")
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
