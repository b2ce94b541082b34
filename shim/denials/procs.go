package denials

import (
	"errors"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pidfdThread is PIDFD_THREAD (<linux/pidfd.h>, Linux 6.9+): a pidfd for a
// thread rather than a thread-group leader. Notifications name threads.
const pidfdThread = unix.O_EXCL

// procCacheSize bounds the threads one receiver keeps pinned (one pidfd
// each); past it the least recently used entry is dropped.
const procCacheSize = 16

// procTTL is how long a thread's comm and exe are reused before being read
// again (after an answer): an exec or PR_SET_NAME changes them without
// changing the thread.
const procTTL = time.Second

// procCache gives a record the comm and exe of the thread that made the
// syscall while costing that thread as little waiting as possible.
//
// The first time a thread is denied (lookup misses), its comm and exe are
// read while it is still blocked, and it is pinned with a pidfd taken then
// too (pin): that is the only moment they can be read for sure, since a
// program that is denied once often exits right after. The answer's
// success then proves the thread was alive from the notification to the
// answer, so the reads and the pidfd name it. Every later notification
// from the same pid (lookup hits: the pidfd's thread still lives, so the
// pid is still that thread's) costs no syscall at all before the answer;
// once the values are procTTL old they are read again after the answer
// (refresh), and kept only if the pidfd's thread still lived after the
// read. A pid whose pinned thread has exited is a miss: it may name
// someone else now. Reuse-safe by construction: a cached value is only
// ever given for the thread its pidfd holds.
//
// Where pidfds for threads are not supported (before Linux 6.9) pin fails
// and every record-worthy notification reads /proc while blocked.
//
// A procCache belongs to one receiver goroutine and is not locked.
type procCache struct {
	entries map[int]*procEntry
	// tick orders entries by last use.
	tick uint64
	// noPidfd is set once pidfd_open said threads cannot be pinned.
	noPidfd bool

	// The side effects, replaced by tests.
	open     func(pid int) (int, error)
	alive    func(pidfd int) bool
	readProc func(pid int) (comm, exe string)
	close    func(fd int)
	now      func() time.Time
}

type procEntry struct {
	pidfd     int
	comm, exe string
	readAt    time.Time
	used      uint64
	// proven is set once an answer succeeded after the pin.
	proven bool
}

func newProcCache(read func(pid int) (comm, exe string), now func() time.Time) *procCache {
	return &procCache{
		entries:  make(map[int]*procEntry),
		open:     openThreadPidfd,
		alive:    pidfdAlive,
		readProc: read,
		close:    func(fd int) { _ = unix.Close(fd) },
		now:      now,
	}
}

// lookup is called while the thread is blocked. It returns the cached comm
// and exe of pid's thread, or ok false when the caller must read them now
// (and pin the thread).
func (c *procCache) lookup(pid int) (comm, exe string, ok bool) {
	e := c.entries[pid]
	if e == nil {
		return "", "", false
	}
	if !c.alive(e.pidfd) {
		c.drop(pid, e)
		return "", "", false
	}
	c.tick++
	e.used = c.tick
	return e.comm, e.exe, true
}

// pin reads comm and exe of a blocked thread and keeps them with a pidfd
// for the thread. It returns what it read; without pidfd support nothing
// is kept.
func (c *procCache) pin(pid int) (comm, exe string) {
	comm, exe = c.readProc(pid)
	if pid <= 0 || c.noPidfd {
		return comm, exe
	}
	fd, err := c.open(pid)
	if err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
			c.noPidfd = true
		}
		return comm, exe
	}
	if old := c.entries[pid]; old != nil {
		c.drop(pid, old)
	}
	if len(c.entries) >= procCacheSize {
		c.evict()
	}
	c.tick++
	c.entries[pid] = &procEntry{pidfd: fd, comm: comm, exe: exe, readAt: c.now(), used: c.tick}
	return comm, exe
}

// answered is called after the notification was answered: the pin (if
// made for it) is proven, and values procTTL old are read again. It
// returns the comm and exe for the record.
func (c *procCache) answered(pid int, comm, exe string) (string, string) {
	e := c.entries[pid]
	if e == nil {
		return comm, exe
	}
	e.proven = true
	now := c.now()
	if now.Sub(e.readAt) < procTTL {
		return e.comm, e.exe
	}
	nc, ne := c.readProc(pid)
	if !c.alive(e.pidfd) {
		// Gone before the read ended: the read may be someone else's. The
		// old values were this thread's a moment ago.
		c.drop(pid, e)
		return comm, exe
	}
	e.comm, e.exe, e.readAt = nc, ne, now
	return nc, ne
}

// refused forgets pid after an answer the kernel refused: the thread was
// interrupted or died, and a pin taken for it may name a newcomer.
func (c *procCache) refused(pid int) {
	if e := c.entries[pid]; e != nil && !e.proven {
		c.drop(pid, e)
	}
}

func (c *procCache) drop(pid int, e *procEntry) {
	c.close(e.pidfd)
	delete(c.entries, pid)
}

// evict drops entries whose thread exited, or else the least recently used.
func (c *procCache) evict() {
	var (
		oldPid int
		old    *procEntry
	)
	for pid, e := range c.entries {
		if !c.alive(e.pidfd) {
			c.drop(pid, e)
			continue
		}
		if old == nil || e.used < old.used {
			oldPid, old = pid, e
		}
	}
	if len(c.entries) >= procCacheSize && old != nil {
		c.drop(oldPid, old)
	}
}

// closeAll releases every pidfd (the receiver is done).
func (c *procCache) closeAll() {
	for pid, e := range c.entries {
		c.drop(pid, e)
	}
}

func openThreadPidfd(pid int) (int, error) {
	return unix.PidfdOpen(pid, pidfdThread)
}

// pidfdAlive reports whether the thread behind a thread pidfd still runs:
// such a pidfd polls readable once its thread has exited.
func pidfdAlive(fd int) bool {
	pfd := unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	for {
		_, _, e := unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&zeroTimespec)), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		return e == 0 && pfd.Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) == 0
	}
}

// zeroTimespec makes ppoll return at once.
var zeroTimespec unix.Timespec
