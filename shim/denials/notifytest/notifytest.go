// Package notifytest stands in for runc in tests and measurements of the
// denial agent: it loads seccomp filters that notify a syscall on the
// calling thread, hands the listener fd to the agent the way libcontainer
// does, and accounts what reached a file sink. None of it is on the
// shim's path.
package notifytest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"unsafe"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stockade-dev/stockade/internal/roottest"
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
		return 0, fmt.Errorf("no test filter for %s: %w", runtime.GOARCH, errors.ErrUnsupported)
	}
}

// LoadNotifyFilter installs, on the calling thread only, a seccomp filter
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
func LoadNotifyFilter(nr uint32) (int, error) {
	return LoadFilter(nr, unix.SECCOMP_RET_USER_NOTIF, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER)
}

// LoadFilter installs, on the calling thread only, a filter that returns
// action for syscall nr and allows everything else; with
// SECCOMP_FILTER_FLAG_NEW_LISTENER in flags it returns the listener fd.
func LoadFilter(nr, action uint32, flags uintptr) (int, error) {
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

// SendProcessState does what libcontainer does for every container process:
// connect to the listener, send the state JSON with the notify fd attached,
// close. Used by the storm measurement and the tests in place of runc.
func SendProcessState(path string, st *specs.ContainerProcessState, fd int) error {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("failed to connect to seccomp agent: %w", err)
	}
	defer c.Close()
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("failed to encode container process state: %w", err)
	}
	if _, _, err := c.WriteMsgUnix(b, unix.UnixRights(fd), nil); err != nil {
		return fmt.Errorf("failed to send seccomp fd: %w", err)
	}
	return nil
}

// SumDir adds up the counts of denial records and the dropped counts of gap
// records in every file under dir.
func SumDir(dir string) (delivered, gapped uint64, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			// The fields of the sink's record format that accounting needs;
			// the full type is the denials package's, which imports this one
			// in its tests.
			var r struct {
				Type    string `json:"type"`
				Count   uint64 `json:"count"`
				Dropped uint64 `json:"dropped"`
			}
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if r.Type == "gap" {
				gapped += r.Dropped
			} else {
				delivered += r.Count
			}
		}
		return sc.Err()
	})
	return delivered, gapped, err
}

// Require skips unless the test runs as root on a kernel with seccomp
// user notification.
func Require(t testing.TB) {
	t.Helper()
	roottest.Require(t, "loads seccomp filters and runs the agent's root path")
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread and its filter die here
		fd, err := LoadNotifyFilter(unix.SYS_GETPPID)
		if err == nil {
			_ = unix.Close(fd)
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Skipf("seccomp user notification unavailable: %v", err)
	}
}
