package denials

import (
	"time"

	"golang.org/x/sys/unix"
)

// pidfdThread is PIDFD_THREAD (<linux/pidfd.h>, Linux 6.9+): a pidfd for a
// thread rather than a thread-group leader. Notifications name threads.
const pidfdThread = unix.O_EXCL

// procCacheSize bounds the threads one receiver keeps pinned (one pidfd
// each); past it the least recently used entry is dropped.
const procCacheSize = 16

// procTTL is how long a thread's comm and exe are reused before being read
// again: an exec or PR_SET_NAME changes them without changing the thread.
const procTTL = time.Second

// procCache gives a record the comm and exe of the thread that made the
// syscall without reading /proc while that thread waits for its answer.
//
// Reading /proc after the answer is only safe if the pid cannot have been
// reused meanwhile, so each thread is pinned by a pidfd taken while it is
// still blocked (pin): a successful answer afterwards proves the thread was
// alive from the notification to the answer, so the pidfd names it, and a
// /proc read followed by a check that the pidfd's thread is still alive
// (read) can only have read that thread. A thread that died in between gets
// empty comm and exe, as before. This is reuse-safe by construction: a pid
// is never looked up without the pidfd that proves who it is.
//
// Entries stay valid while their thread lives, so a thread denied again
// costs no syscall on the blocked path at all; comm and exe are re-read
// (after the answer) once they are procTTL old. Where pidfds for threads
// are not supported (before Linux 6.9) pin fails and the caller falls back
// to reading /proc before the answer and checking the notification is
// still valid, the slower way that is just as exact.
//
// A procCache belongs to one receiver goroutine and is not locked.
type procCache struct {
	entries map[int]*procEntry
	// tick orders entries by last use.
	tick uint64

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

// pin is called while the thread that made the notification is blocked.
// It returns false when the thread cannot be pinned; the caller must then
// read /proc before answering. A cached entry whose thread has exited is
// replaced: its pid may already name another thread.
func (c *procCache) pin(pid int) bool {
	if pid <= 0 {
		return false
	}
	c.tick++
	if e := c.entries[pid]; e != nil {
		if c.alive(e.pidfd) {
			e.used = c.tick
			return true
		}
		c.drop(pid, e)
	}
	fd, err := c.open(pid)
	if err != nil {
		return false
	}
	if len(c.entries) >= procCacheSize {
		c.evict()
	}
	c.entries[pid] = &procEntry{pidfd: fd, used: c.tick}
	return true
}

// read returns comm and exe of a pinned thread after its notification was
// answered. It returns empty strings if the thread is gone by the time the
// reads are done: then they may have read whoever has the pid now.
func (c *procCache) read(pid int) (comm, exe string) {
	e := c.entries[pid]
	if e == nil {
		return "", ""
	}
	now := c.now()
	if e.readAt.IsZero() || now.Sub(e.readAt) >= procTTL {
		comm, exe := c.readProc(pid)
		if !c.alive(e.pidfd) {
			c.drop(pid, e)
			return "", ""
		}
		e.comm, e.exe, e.readAt = comm, exe, now
	}
	return e.comm, e.exe
}

// unpin forgets pid after an answer the kernel refused: the thread was
// interrupted or died, and an entry opened for it may name someone else.
func (c *procCache) unpin(pid int) {
	if e := c.entries[pid]; e != nil && e.readAt.IsZero() {
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
	pfd := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd[:], 0)
		if err == unix.EINTR {
			continue
		}
		return err == nil && (n == 0 || pfd[0].Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) == 0)
	}
}
