package denials

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// auditArch is the AUDIT_ARCH value of the build's native syscall ABI.
func auditArch() (uint32, error) {
	switch runtime.GOARCH {
	case "amd64":
		return unix.AUDIT_ARCH_X86_64, nil
	case "arm64":
		return unix.AUDIT_ARCH_AARCH64, nil
	default:
		return 0, fmt.Errorf("no test filter for %s: %w", runtime.GOARCH, ErrNotSupported)
	}
}

// loadNotifyFilter installs, on the calling thread only, a seccomp filter
// that sends syscall nr to user notification and allows everything else,
// and returns the listener fd. It stands in for runc init in the storm
// measurement and the tests; the kernel mechanism is the same one runc's
// filters use (SECCOMP_FILTER_FLAG_NEW_LISTENER, SECCOMP_RET_USER_NOTIF).
//
// The caller must have locked its goroutine to the thread and must let the
// goroutine exit still locked: the runtime then ends the thread, and with it
// the filter's last user, which is what tells the agent the source is done.
// Without TSYNC the filter and no_new_privs stay on this one thread, and
// threads the runtime starts meanwhile come from its template thread, so
// they do not inherit either.
func loadNotifyFilter(nr uint32) (int, error) {
	return loadFilter(nr, unix.SECCOMP_RET_USER_NOTIF, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER)
}

// loadFilter installs, on the calling thread only, a filter that returns
// action for syscall nr and allows everything else; with
// SECCOMP_FILTER_FLAG_NEW_LISTENER in flags it returns the listener fd.
func loadFilter(nr, action uint32, flags uintptr) (int, error) {
	arch, err := auditArch()
	if err != nil {
		return -1, err
	}
	const (
		ldAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ret   = unix.BPF_RET | unix.BPF_K
		// offsets in struct seccomp_data
		offNr   = 0
		offArch = 4
	)
	prog := []unix.SockFilter{
		{Code: ldAbs, K: offArch},
		{Code: jeq, K: arch, Jt: 1, Jf: 0},
		{Code: ret, K: unix.SECCOMP_RET_ALLOW},
		{Code: ldAbs, K: offNr},
		{Code: jeq, K: nr, Jt: 0, Jf: 1},
		{Code: ret, K: action},
		{Code: ret, K: unix.SECCOMP_RET_ALLOW},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	// Unprivileged filter installation needs no_new_privs; it is per thread.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return -1, fmt.Errorf("failed to set no_new_privs: %w", err)
	}
	fd, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		flags, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return -1, fmt.Errorf("failed to load seccomp filter: %w", errno)
	}
	return int(fd), nil
}
