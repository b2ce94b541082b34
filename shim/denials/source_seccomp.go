//go:build cgo && seccomp

package denials

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// Supported reports whether this build can serve seccomp notify fds.
const Supported = true

// fdSource serves one seccomp notify fd with raw ioctls on buffers it owns
// (notif_linux.go): no cgo call and no allocation per notification.
//
// It waits in one of two ways:
//
//   - idle: a dup of the fd sits in Go's netpoller, so an idle filter costs
//     no thread, and closing that dup wakes the waiter;
//   - busy: during a burst, the receiving goroutine locks itself to its
//     thread and blocks in SECCOMP_IOCTL_NOTIF_RECV on a dup of its own.
//     The kernel wakes that thread directly from the filter's wait queue,
//     without epoll and the netpoller's goroutine hand-off (with
//     SYNC_WAKE_UP, on the notifying CPU). After busyIdle without a
//     notification a watchdog ends the burst and the receiver goes back to
//     the netpoller, so an idle pod pins no threads.
//
// Nothing ends a blocking RECV by itself: closing the fd does not (the
// ioctl holds the file), and a signal only restarts it (Go's handlers are
// SA_RESTART); TestBlockedRecvKernelFacts checks both on the running
// kernel. So a busy receiver is stopped (stopBusy) by replacing its dup
// with an eventfd (dup2: the number stays taken, so it cannot be reused
// under the receiver) and then signalling its thread: the restarted RECV
// finds a file that is not a seccomp listener and fails with ENOTTY at
// once, as does any RECV entered after the swap. The signal is SIGURG,
// which Go's runtime sends itself for preemption and ignores when spurious.
//
// One goroutine receives per fd (several receivers per fd are possible,
// but one thread per filter already answers as fast as the workload's
// thread can be denied). A filter whose processes have all exited polls
// POLLHUP and, from Linux 6.11, fails a blocked RECV with ENOENT: the
// source is done.
type fdSource struct {
	// fd is the notify fd. Only the receiving goroutine uses it; it closes
	// it on its way out (or close does, when no receive is running).
	fd  int
	opt receiverOptions

	mu     sync.Mutex
	closed bool
	// receiving is set once the receiving goroutine runs: from then on
	// only it closes fd, since it may be using it.
	receiving bool
	fdClosed  bool
	// f is the netpoller's dup of fd in idle mode, nil in busy mode.
	f  *os.File
	rc syscall.RawConn
	// busyFd is the receiver's dup of fd during a burst, -1 otherwise;
	// tid is the thread blocked on it. stopping is set once stopBusy has
	// swapped busyFd for an eventfd.
	busyFd   int
	tid      int
	stopping bool
	// session numbers bursts, so a stop or a watchdog of an earlier burst
	// never acts on a later one.
	session uint64
	// lastRecv is when the busy receiver last got a notification
	// (UnixNano), for the watchdog.
	lastRecv atomic.Int64
	watchdog *time.Timer

	// State of the receiving goroutine.
	busy   bool
	locked bool
	// slot is set while this source counts in opt.threads.
	slot    bool
	last    time.Time
	streak  int
	req     seccompNotif
	resp    seccompNotifResp
	pfd     unix.PollFd
	lastKey uint64
	lastN   string
	lastA   string
}

func newFDSource(fd int, opt receiverOptions) (source, error) {
	if !opt.noSyncWakeUp {
		// Best effort: before Linux 6.6 the flag does not exist, and the
		// wake-ups simply stay as they were.
		_ = notifSetSyncWakeUp(fd)
	}
	s := &fdSource{fd: fd, opt: opt, lastKey: ^uint64(0), busyFd: -1}
	if opt.mode == receiveThread {
		return s, nil
	}
	if err := s.attachPoller(); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return s, nil
}

// attachPoller puts a dup of fd into the netpoller (idle mode). Called by
// the receiving goroutine, or before it starts.
func (s *fdSource) attachPoller() error {
	dup, err := unix.FcntlInt(uintptr(s.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("failed to dup seccomp notify fd: %w", err)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		_ = unix.Close(dup)
		return fmt.Errorf("failed to make seccomp notify fd non-blocking: %w", err)
	}
	f := os.NewFile(uintptr(dup), "seccomp-notify")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("failed to poll seccomp notify fd: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = f.Close()
		return errSourceDone
	}
	s.f, s.rc = f, rc
	return nil
}

// detachPoller takes the fd out of the netpoller: closing the dup removes
// its epoll registration, so wake-ups during a burst do not also wake a
// thread in epoll_wait for nothing.
func (s *fdSource) detachPoller() {
	s.mu.Lock()
	f := s.f
	s.f, s.rc = nil, nil
	s.mu.Unlock()
	if f != nil {
		_ = f.Close()
	}
}

// enter marks a receive as running, or reports the source closed.
func (s *fdSource) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.receiving = true
	return true
}

// finish ends the receiving goroutine's use of the source for good.
func (s *fdSource) finish() {
	s.endBusy()
	s.detachPoller()
	s.mu.Lock()
	s.receiving = false
	s.closed = true
	if !s.fdClosed {
		s.fdClosed = true
		_ = unix.Close(s.fd)
	}
	s.mu.Unlock()
}

func (s *fdSource) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *fdSource) receive() (notification, error) {
	if !s.enter() {
		s.finish()
		return notification{}, errSourceDone
	}
	var err error
	for {
		if s.busy || s.opt.mode == receiveThread {
			err = s.receiveBusy()
		} else {
			err = s.receiveIdle()
		}
		if err != errRetry {
			break
		}
	}
	if err != nil {
		s.finish()
		return notification{}, err
	}
	s.noteArrival()
	return s.notification(), nil
}

// errRetry asks receive to wait again (mode switched, notification withdrawn).
var errRetry = errors.New("retry")

// receiveIdle waits for a notification in the netpoller.
func (s *fdSource) receiveIdle() error {
	s.mu.Lock()
	rc := s.rc
	s.mu.Unlock()
	if rc == nil {
		if err := s.attachPoller(); err != nil {
			return err
		}
		return errRetry
	}
	var rerr error
	err := rc.Read(func(fd uintptr) bool {
		for {
			switch ev := pollNow(&s.pfd, s.fd); {
			case ev&unix.POLLIN != 0:
				// POLLIN means a notification is pending, so the receive,
				// which cannot be made non-blocking, returns at once.
				switch e := notifRecv(s.fd, &s.req); e {
				case 0:
					return true
				case unix.ENOENT, unix.EINTR:
					// The thread was interrupted or killed between the
					// wake-up and the receive; its notification went
					// with it.
					continue
				default:
					rerr = fmt.Errorf("failed to receive seccomp notification: %w", e)
					return true
				}
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
		if s.isClosed() {
			return errSourceDone
		}
		return fmt.Errorf("failed to wait on seccomp notify fd: %w", err)
	}
	return rerr
}

// receiveBusy waits for a notification on this goroutine's own thread,
// blocked in RECV.
func (s *fdSource) receiveBusy() error {
	if s.busyFd < 0 {
		if err := s.startBusy(); err != nil {
			return err
		}
	}
	for {
		e := notifRecv(s.busyFd, &s.req)
		switch e {
		case 0:
			s.lastRecv.Store(time.Now().UnixNano())
			return nil
		case unix.EINTR:
			continue
		case unix.ENOENT:
			// Withdrawn between wake-up and receive, or, from Linux
			// 6.11, the filter lost its last process.
			if pollNow(&s.pfd, s.busyFd)&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 && !s.isStopping() {
				return errSourceDone
			}
			if !s.isStopping() {
				continue
			}
		}
		if s.isStopping() {
			// stopBusy swapped the dup: the burst is over or the source
			// closed.
			s.endBusy()
			if s.isClosed() {
				return errSourceDone
			}
			return errRetry
		}
		return fmt.Errorf("failed to receive seccomp notification: %w", e)
	}
}

// startBusy moves the receiver onto its thread: locked, the netpoller's dup
// closed (its epoll registration would otherwise wake a netpoller thread for
// every notification), a dup of its own to block on, and the watchdog that
// ends the burst armed.
func (s *fdSource) startBusy() error {
	s.lockThread()
	s.detachPoller()
	dup, err := unix.FcntlInt(uintptr(s.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		s.unlockThread()
		return fmt.Errorf("failed to dup seccomp notify fd: %w", err)
	}
	s.lastRecv.Store(time.Now().UnixNano())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = unix.Close(dup)
		s.unlockThread()
		return errSourceDone
	}
	s.busyFd, s.tid, s.stopping = dup, unix.Gettid(), false
	s.session++
	if s.opt.mode == receiveAdaptive {
		idle := busyIdle
		if s.opt.idle > 0 {
			idle = s.opt.idle
		}
		session := s.session
		s.watchdog = time.AfterFunc(idle, func() { s.checkIdle(session, idle) })
	}
	return nil
}

// checkIdle ends a burst that has had no notification for idle.
func (s *fdSource) checkIdle(session uint64, idle time.Duration) {
	since := time.Since(time.Unix(0, s.lastRecv.Load()))
	s.mu.Lock()
	if s.session != session || s.busyFd < 0 || s.stopping {
		s.mu.Unlock()
		return
	}
	if since < idle {
		s.watchdog.Reset(idle - since)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.stopBusy(session)
}

func (s *fdSource) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// stopBusy ends burst session (0: whichever runs) from any goroutine: the
// receiver's dup becomes an eventfd, then its thread is signalled until it
// has left RECV.
func (s *fdSource) stopBusy(session uint64) {
	s.mu.Lock()
	if s.busyFd < 0 || s.stopping || session != 0 && session != s.session {
		s.mu.Unlock()
		return
	}
	nfd, err := notAListener()
	if err == nil {
		err = unix.Dup3(nfd, s.busyFd, unix.O_CLOEXEC)
	}
	if err != nil {
		// Cannot happen short of running out of fds; the receiver then
		// stays on its thread until the filter's next notification.
		s.mu.Unlock()
		return
	}
	s.stopping = true
	session, tid := s.session, s.tid
	s.mu.Unlock()
	go func() {
		// One signal suffices (a RECV entered after the swap fails at
		// once; one in progress restarts into the failure), but a signal
		// is cheap and a lost one would pin the thread: repeat until the
		// receiver has let go of its dup.
		for wait := 50 * time.Microsecond; ; wait = min(2*wait, 10*time.Millisecond) {
			s.mu.Lock()
			gone := s.session != session || s.busyFd < 0
			s.mu.Unlock()
			if gone {
				return
			}
			_ = unix.Tgkill(unix.Getpid(), tid, unix.SIGURG)
			time.Sleep(wait)
		}
	}()
}

// endBusy closes the receiver's dup and gives the thread back. Called by
// the receiving goroutine.
func (s *fdSource) endBusy() {
	s.mu.Lock()
	if s.watchdog != nil {
		s.watchdog.Stop()
		s.watchdog = nil
	}
	if s.busyFd >= 0 {
		_ = unix.Close(s.busyFd)
		s.busyFd, s.tid, s.stopping = -1, 0, false
	}
	s.mu.Unlock()
	s.unlockThread()
}

// notAListener returns an fd that is not a seccomp listener, for stopBusy
// to swap in: an eventfd, made once per process.
var notAListener = sync.OnceValues(func() (int, error) {
	return unix.Eventfd(0, unix.EFD_CLOEXEC)
})

// noteArrival tracks bursts and moves the receiver to a thread of its own
// when one starts (adaptive mode).
func (s *fdSource) noteArrival() {
	if s.opt.mode != receiveAdaptive || s.busy {
		return
	}
	now := time.Now()
	if now.Sub(s.last) < burstGap {
		s.streak++
	} else {
		s.streak = 0
	}
	s.last = now
	if s.streak < burstLen {
		return
	}
	if t := s.opt.threads; t != nil {
		if t.Add(1) > s.opt.maxThreads {
			t.Add(-1)
			return
		}
	}
	s.busy = true
	s.slot = true
	s.streak = 0
	if s.opt.bursts != nil {
		s.opt.bursts.Add(1)
	}
}

func (s *fdSource) lockThread() {
	if !s.locked {
		runtime.LockOSThread()
		s.locked = true
	}
	if s.opt.mode == receiveThread && !s.slot && s.opt.threads != nil {
		// Counted, not bounded: this mode is for measurements.
		s.opt.threads.Add(1)
		s.slot = true
	}
}

// unlockThread gives the thread back to the runtime and the slot (taken
// by noteArrival or lockThread) back to the agent's count. The slot goes
// even if the thread was never locked: the source may close between a
// burst's start and its first wait.
func (s *fdSource) unlockThread() {
	if s.locked {
		runtime.UnlockOSThread()
		s.locked = false
	}
	if s.slot {
		s.slot = false
		if s.opt.threads != nil {
			s.opt.threads.Add(-1)
		}
	}
	s.busy = false
}

// notification converts the received buffer. Names come from caches, so
// this allocates nothing once a syscall has been seen.
func (s *fdSource) notification() notification {
	d := &s.req.data
	key := uint64(d.arch)<<32 | uint64(uint32(d.nr))
	if key != s.lastKey {
		s.lastKey = key
		s.lastA, s.lastN = archName(d.arch), syscallName(d.arch, d.nr)
	}
	return notification{
		id:      s.req.id,
		pid:     int(s.req.pid),
		nr:      int(d.nr),
		arch:    s.lastA,
		syscall: s.lastN,
		args:    d.args,
	}
}

// respond is only called by the receiving goroutine, between receives, so
// the fd is open.
func (s *fdSource) respond(id uint64, errno syscall.Errno) error {
	if e := notifSend(s.fd, &s.resp, id, errno); e != 0 {
		return fmt.Errorf("failed to answer seccomp notification: %w", e)
	}
	return nil
}

// close stops the source from any goroutine. A receive in progress is
// woken (the netpoller's dup is closed; a receiver blocked in RECV is
// stopped by stopBusy) and closes the fd on its way out; with no receive
// in progress the fd is closed here. Either way the kernel then fails this
// filter's notified syscalls with ENOSYS.
func (s *fdSource) close() error {
	s.mu.Lock()
	if s.closed && s.fdClosed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	f := s.f
	s.f, s.rc = nil, nil
	if !s.receiving && !s.fdClosed {
		s.fdClosed = true
		_ = unix.Close(s.fd)
	}
	s.mu.Unlock()
	if f != nil {
		_ = f.Close()
	}
	s.stopBusy(0)
	return nil
}

// pollNow polls fd without waiting and returns its events.
func pollNow(p *unix.PollFd, fd int) int16 {
	*p = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	for {
		_, _, e := unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(p)), 1, uintptr(unsafe.Pointer(&zeroTimespec)), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return unix.POLLERR
		}
		return p.Revents
	}
}

// nameCache maps (audit arch, nr) to syscall names: libseccomp resolves
// them by scanning tables, through cgo. A plain map under a lock, not a
// sync.Map: boxing the key would allocate per lookup.
var nameCache = struct {
	sync.RWMutex
	m map[uint64]string
}{m: make(map[uint64]string)}

func syscallName(arch uint32, nr int32) string {
	key := uint64(arch)<<32 | uint64(uint32(nr))
	nameCache.RLock()
	name, ok := nameCache.m[key]
	nameCache.RUnlock()
	if ok {
		return name
	}
	name = fmt.Sprintf("syscall_%d", nr)
	if a, ok := scmpArch(arch); ok {
		if n, err := libseccomp.ScmpSyscall(nr).GetNameByArch(a); err == nil {
			name = n
		}
	}
	nameCache.Lock()
	nameCache.m[key] = name
	nameCache.Unlock()
	return name
}

// scmpArch maps an AUDIT_ARCH value to libseccomp's arch, as libseccomp
// does for a notification (x32 calls come as x86_64 with a flagged nr).
func scmpArch(arch uint32) (libseccomp.ScmpArch, bool) {
	switch arch {
	case unix.AUDIT_ARCH_X86_64:
		return libseccomp.ArchAMD64, true
	case unix.AUDIT_ARCH_I386:
		return libseccomp.ArchX86, true
	case unix.AUDIT_ARCH_AARCH64:
		return libseccomp.ArchARM64, true
	case unix.AUDIT_ARCH_ARM:
		return libseccomp.ArchARM, true
	case unix.AUDIT_ARCH_PPC64LE:
		return libseccomp.ArchPPC64LE, true
	case unix.AUDIT_ARCH_S390X:
		return libseccomp.ArchS390X, true
	case unix.AUDIT_ARCH_RISCV64:
		return libseccomp.ArchRISCV64, true
	}
	return 0, false
}

// archName is the record's arch: libseccomp's name, or the raw value.
func archName(arch uint32) string {
	if a, ok := scmpArch(arch); ok {
		return a.String()
	}
	return fmt.Sprintf("audit_arch_%#x", arch)
}
