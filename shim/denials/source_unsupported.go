//go:build !(cgo && seccomp)

package denials

import (
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
