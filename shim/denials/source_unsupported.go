//go:build !(cgo && seccomp)

package denials

import (
	"time"

	"golang.org/x/sys/unix"
)

// Supported reports whether this build can serve seccomp notify fds.
const Supported = false

// newFDSource closes fd: without libseccomp the agent cannot answer it, and
// a closed listener makes the kernel fail notified syscalls with ENOSYS,
// which keeps them denied.
func newFDSource(fd int, _ receiverOptions) (source, error) {
	_ = unix.Close(fd)
	return nil, ErrNotSupported
}

// MeasureStorm needs seccomp user notification.
func MeasureStorm(n int) (rate float64, lost int, err error) {
	return 0, 0, ErrNotSupported
}

// MeasureKernelDeny needs the seccomp test filters of this build.
func MeasureKernelDeny(n int) ([]time.Duration, error) { return nil, ErrNotSupported }

// Storm needs seccomp user notification.
func Storm(n int, opt StormOptions) (StormResult, error) { return StormResult{}, ErrNotSupported }
