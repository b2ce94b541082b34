package denials

import (
	"errors"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNotSupported is returned where seccomp user notification is not
// compiled in (built without cgo or without the seccomp tag).
var ErrNotSupported = errors.New("seccomp user notification not supported by this build (needs cgo and -tags seccomp)")

// errSourceDone ends serving a source: the filter has no users left (every
// process holding it exited) or the agent closed it.
var errSourceDone = errors.New("notification source finished")

// Receiver modes (receiverOptions.mode).
const (
	// receiveAdaptive waits in the netpoller while a filter is idle and
	// moves to a thread of its own during a burst (the default).
	receiveAdaptive = iota
	// receivePoller always waits in the netpoller.
	receivePoller
	// receiveThread always waits on a thread of its own.
	receiveThread
)

// Adaptive receiver tuning. A burst is burstLen notifications each less
// than burstGap after the previous one: a loop retrying a denied call, not
// a program that trips a denial now and then. busyIdle without a
// notification ends the burst and frees the thread.
const (
	burstLen = 8
	burstGap = 2 * time.Millisecond
	busyIdle = 100 * time.Millisecond
)

// receiverOptions tune how notify fds are received. The zero value is the
// production setting.
type receiverOptions struct {
	mode int
	// noSyncWakeUp leaves SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP off.
	noSyncWakeUp bool
	// threads bounds the receivers on threads of their own at one time
	// (shared by the agent's sources); nil means no bound.
	threads *atomic.Int32
	// maxThreads is the bound threads is checked against.
	maxThreads int32
	// idle overrides busyIdle (tests).
	idle time.Duration
	// bursts, if set, counts moves to a thread of its own.
	bursts *atomic.Uint64
}

// notification is one notified syscall, in the agent's own terms so the
// agent's logic can be tested with a fake source and no kernel.
type notification struct {
	id      uint64
	pid     int
	nr      int
	arch    string
	syscall string
	args    [6]uint64
}

// source is one seccomp notify fd: all processes of one container that share
// one filter (the init process and its descendants, or one exec'd process).
type source interface {
	// receive blocks until a syscall is notified. It returns errSourceDone
	// when the filter is gone or the source was closed.
	receive() (notification, error)
	// respond answers id: errno != 0 fails the syscall with it, errno == 0
	// lets the kernel run the syscall (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
	respond(id uint64, errno syscall.Errno) error
	// close releases the fd. The kernel then fails pending and future
	// notified syscalls of this filter with ENOSYS.
	close() error
}

// readProc reads the command name and executable of a thread from /proc.
// Raw syscalls instead of os.ReadFile: this runs while the workload waits.
func readProc(pid int) (comm, exe string) {
	if pid <= 0 {
		return "", ""
	}
	base := "/proc/" + strconv.Itoa(pid)
	if fd, err := unix.Open(base+"/comm", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		var buf [64]byte
		n, err := unix.Read(fd, buf[:])
		_ = unix.Close(fd)
		if err == nil && n > 0 {
			if buf[n-1] == '\n' {
				n--
			}
			comm = string(buf[:n])
		}
	}
	var buf [unix.PathMax]byte
	if n, err := unix.Readlink(base+"/exe", buf[:]); err == nil {
		exe = string(buf[:n])
	}
	return comm, exe
}

// errnoName is the symbolic name of the errno the agent answers with.
func errnoName(e syscall.Errno) string {
	switch e {
	case 0:
		return ""
	case unix.EPERM:
		return "EPERM"
	default:
		return unix.ErrnoName(e)
	}
}
