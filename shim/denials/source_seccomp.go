//go:build cgo && seccomp

package denials

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// Supported reports whether this build can serve seccomp notify fds.
const Supported = true

// fdSource serves one seccomp notify fd.
//
// The fd goes into Go's netpoller rather than a blocking receive: the
// SECCOMP_IOCTL_NOTIF_RECV ioctl sleeps on a semaphore that is not woken
// when the filter's last process exits (only poll reports that, as POLLHUP),
// so a blocking receive would pin a thread forever per exited process. With
// the poller an idle fd costs no thread, and closing the file wakes it.
type fdSource struct {
	f      *os.File
	rc     syscall.RawConn
	closed atomic.Bool
}

func newFDSource(fd int) (source, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("failed to make seccomp notify fd non-blocking: %w", err)
	}
	f := os.NewFile(uintptr(fd), "seccomp-notify")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("failed to poll seccomp notify fd: %w", err)
	}
	return &fdSource{f: f, rc: rc}, nil
}

func (s *fdSource) receive() (notification, error) {
	var (
		req  *libseccomp.ScmpNotifReq
		rerr error
	)
	err := s.rc.Read(func(fd uintptr) bool {
		for {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if _, err := unix.Poll(pfd, 0); err != nil {
				if errors.Is(err, unix.EINTR) {
					continue
				}
				rerr = fmt.Errorf("failed to poll seccomp notify fd: %w", err)
				return true
			}
			ev := pfd[0].Revents
			switch {
			case ev&unix.POLLIN != 0:
				// POLLIN means a notification is pending, so the receive,
				// which cannot be made non-blocking, returns at once.
				req, rerr = libseccomp.NotifReceive(libseccomp.ScmpFd(fd))
				if errors.Is(rerr, unix.ENOENT) {
					// The process was killed between the wake-up and the
					// receive; its notification went with it.
					req, rerr = nil, nil
					continue
				}
				return true
			case ev&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0:
				rerr = errSourceDone
				return true
			default:
				return false
			}
		}
	})
	if err != nil {
		// The poller reports a closed file with an internal error value;
		// the flag says whether the close was ours.
		if s.closed.Load() {
			return notification{}, errSourceDone
		}
		return notification{}, fmt.Errorf("failed to wait on seccomp notify fd: %w", err)
	}
	if rerr != nil {
		return notification{}, rerr
	}
	n := notification{
		id:   req.ID,
		pid:  int(req.Pid),
		nr:   int(req.Data.Syscall),
		arch: req.Data.Arch.String(),
	}
	copy(n.args[:], req.Data.Args)
	n.syscall = syscallName(req.Data.Arch, req.Data.Syscall)
	return n, nil
}

func (s *fdSource) valid(id uint64) bool {
	ok := false
	_ = s.rc.Control(func(fd uintptr) {
		ok = libseccomp.NotifIDValid(libseccomp.ScmpFd(fd), id) == nil
	})
	return ok
}

func (s *fdSource) respond(id uint64, errno syscall.Errno) error {
	resp := &libseccomp.ScmpNotifResp{ID: id}
	if errno == 0 {
		resp.Flags = libseccomp.NotifRespFlagContinue
	} else {
		resp.Error = int32(errno)
	}
	var rerr error
	if err := s.rc.Control(func(fd uintptr) {
		rerr = libseccomp.NotifRespond(libseccomp.ScmpFd(fd), resp)
	}); err != nil {
		return fmt.Errorf("failed to answer seccomp notification: %w", err)
	}
	if rerr != nil {
		return fmt.Errorf("failed to answer seccomp notification: %w", rerr)
	}
	return nil
}

func (s *fdSource) close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.f.Close()
}

type sysKey struct {
	arch libseccomp.ScmpArch
	nr   libseccomp.ScmpSyscall
}

// names caches syscall names: libseccomp resolves them by scanning tables.
var names sync.Map

func syscallName(arch libseccomp.ScmpArch, nr libseccomp.ScmpSyscall) string {
	k := sysKey{arch, nr}
	if v, ok := names.Load(k); ok {
		return v.(string)
	}
	name, err := nr.GetNameByArch(arch)
	if err != nil {
		name = fmt.Sprintf("syscall_%d", int(nr))
	}
	names.Store(k, name)
	return name
}
