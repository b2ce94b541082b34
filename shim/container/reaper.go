package container

import (
	"bytes"
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// The shim is a child subreaper (containerd's shim framework sets it), so
// every process that loses its parent inside a container without its own
// pid namespace (a hostPID container's grandchildren, a daemon that double
// forks) becomes the shim's child. The framework's own reaper is off
// (shim.NoReaper: see doc.go), so without the orphan reaper below those
// children would stay zombies for the life of the pod's shim.
//
// The orphan reaper must never reap a process somebody else waits for by pid,
// or that waiter loses the exit status (libcontainer's Process.Wait would
// report an error instead of the container's exit code). Its rule:
//
//  1. Only zombies are looked at, found by listing the shim's children; a
//     zombie's pid stays allocated until it is reaped, and only the shim can
//     reap it, so the pid names the same process from the look to the
//     waitid(P_PID) that reaps it.
//  2. A pid that libcontainer started as a container's init or exec process
//     (knownPids) is left to its Process.Wait.
//  3. Registration of a pid happens only after libcontainer's Start/Run
//     returns, and while they run libcontainer reaps helper processes of its
//     own by pid (the first nsexec child). Both run under spawnMu read-locked;
//     the reaper holds spawnMu write-locked while it looks and reaps. So the
//     reaper never sees a process of an unfinished start: a just-started
//     init that died at once is either still unregistered and the reaper
//     waits for the start to finish, or registered and skipped.
//  4. Children the shim's own Go code starts with os/exec (apparmor_parser,
//     binary:// loggers, mount helpers) are waited for by pid by that code,
//     and are neither libcontainer's nor under spawnMu. They live in the
//     shim's own cgroup, whereas every orphan comes out of a container's
//     cgroup (a zombie still shows the cgroup v2 path it died in). So only
//     zombies whose cgroup v2 path differs from the shim's are reaped; on a
//     host with no cgroup v2 hierarchy at all the reaper stays off.
var (
	spawnMu   sync.RWMutex
	knownPids = pidSet{m: map[int]struct{}{}}

	reaperOnce sync.Once
)

type pidSet struct {
	mu sync.Mutex
	m  map[int]struct{}
}

func (s *pidSet) add(pid int) {
	if pid <= 0 {
		return
	}
	s.mu.Lock()
	s.m[pid] = struct{}{}
	s.mu.Unlock()
}

func (s *pidSet) remove(pid int) {
	s.mu.Lock()
	delete(s.m, pid)
	s.mu.Unlock()
}

func (s *pidSet) has(pid int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[pid]
	return ok
}

// startOrphanReaper starts the orphan reaper once per shim process.
func startOrphanReaper(ctx context.Context) {
	reaperOnce.Do(func() {
		own, err := unifiedCgroupOf(os.Getpid())
		if err != nil || own == "" {
			log.G(ctx).WithError(err).Warn("no cgroup v2 path for the shim: orphaned container processes will not be reaped")
			return
		}
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, unix.SIGCHLD)
		ctx := context.WithoutCancel(ctx)
		go func() {
			for range ch {
				reapOrphans(ctx, own)
			}
		}()
	})
}

// reapOrphans reaps every zombie child that is an orphan by the rules above.
// It returns the pids it reaped.
func reapOrphans(ctx context.Context, own string) []int {
	// Most SIGCHLDs are for processes whose waiter has already reaped
	// them (every container start forks and reaps nsexec's helpers): then
	// there is no zombie, and the scan below, with the lock that holds up
	// the next start, is skipped.
	if !anyZombie() {
		return nil
	}
	spawnMu.Lock()
	defer spawnMu.Unlock()
	var reaped []int
	for _, pid := range children() {
		if knownPids.has(pid) || !isZombie(pid) {
			continue
		}
		cg, err := unifiedCgroupOf(pid)
		if err != nil || cg == "" || cg == own {
			continue
		}
		var info unix.Siginfo
		// WNOHANG: the zombie is ours and nobody else may reap it (rule 1),
		// but never block the reaper on a surprise.
		if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG, nil); err != nil {
			log.G(ctx).WithError(err).WithField("pid", pid).Debug("reap orphan")
			continue
		}
		reaped = append(reaped, pid)
		log.G(ctx).WithFields(log.Fields{"pid": pid, "cgroup": cg}).Debug("reaped orphaned container process")
	}
	return reaped
}

// anyZombie reports whether the shim has an exited child not yet reaped,
// without reaping it (WNOWAIT), whatever its exit signal (__WALL). When it
// cannot tell, it says yes, and the caller looks the slow way.
func anyZombie() bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT|unix.WALL, nil)
	if err != nil {
		return err != unix.ECHILD
	}
	// With WNOHANG and no waitable child, Linux returns 0 with si_signo 0;
	// a waitable child sets it to SIGCHLD.
	return info.Signo != 0
}

// children lists the shim's child processes: /proc/self/task/*/children
// (children hang off the thread that forked them, or that adopted them).
func children() []int {
	files, _ := filepath.Glob("/proc/self/task/*/children")
	var pids []int
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, field := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(field); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// isZombie reads the process state from /proc/<pid>/stat.
func isZombie(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The command name may hold spaces and parentheses: the state follows
	// the last ')'.
	i := bytes.LastIndexByte(data, ')')
	return i >= 0 && i+2 < len(data) && data[i+2] == 'Z'
}

// unifiedCgroupOf is pid's cgroup v2 path ("0::" line), "" if none.
func unifiedCgroupOf(pid int) (string, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, nil
		}
	}
	return "", nil
}
