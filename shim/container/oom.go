package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

// The shim watches a container's memory cgroup for OOM kills itself instead
// of through libcontainer's NotifyOOM, for one reason: libcontainer reads its
// eventfd (cgroup v1) or inotify fd (cgroup v2) with a blocking read(2) in a
// goroutine. A goroutine blocked in a syscall keeps its P (Go's scheduler
// slot) until sysmon takes it back, and an idle shim's sysmon sleeps 10 ms
// between looks, so for 10-20 ms after every Create the shim's two Ps were
// held by this read and by the wait for the init, no thread was left in the
// netpoller, and containerd's next request (Start, a moment later) sat
// unread: the pod benchmark's Create→Start gap was 0.3-20 ms, 10 ms at the
// median, against about 3 ms with the runc shim. Here both fds are opened
// non-blocking and read through *os.File, so the waiting goroutine is parked
// in the netpoller and holds nothing.

// notifyOOM returns a channel that receives once per OOM kill in the memory
// cgroup dir, and is closed when the cgroup goes away (v1: its removal; v2:
// it has no process left).
func notifyOOM(dir string) (<-chan struct{}, error) {
	if dir == "" {
		return nil, errors.New("no memory cgroup")
	}
	if cgroups.IsCgroup2UnifiedMode() {
		return notifyOOMv2(dir)
	}
	return notifyOOMv1(dir)
}

// notifyOOMv1 registers an eventfd for memory.oom_control through
// cgroup.event_control. The kernel signals it at each OOM and once more when
// the cgroup is removed.
func notifyOOMv1(dir string) (<-chan struct{}, error) {
	control, err := os.Open(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		return nil, err
	}
	defer control.Close() // the registration holds its own reference
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	// A non-blocking fd: os.NewFile puts it in the netpoller.
	ev := os.NewFile(uintptr(efd), "oom eventfd")
	register := filepath.Join(dir, "cgroup.event_control")
	if err := os.WriteFile(register, []byte(fmt.Sprintf("%d %d", efd, control.Fd())), 0o600); err != nil {
		ev.Close()
		return nil, err
	}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		defer ev.Close()
		var buf [8]byte
		for {
			if _, err := ev.Read(buf[:]); err != nil {
				return
			}
			// The event a removed cgroup sends is no OOM.
			if _, err := os.Lstat(register); err != nil {
				return
			}
			ch <- struct{}{}
		}
	}()
	return ch, nil
}

// notifyOOMv2 watches memory.events for a rising oom_kill count, and
// cgroup.events for populated 0. The cgroup filesystem sends no delete
// events, so an empty cgroup ends the watch.
func notifyOOMv2(dir string) (<-chan struct{}, error) {
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	in := os.NewFile(uintptr(ifd), "oom inotify")
	events := filepath.Join(dir, "memory.events")
	memWatch, err := unix.InotifyAddWatch(ifd, events, unix.IN_MODIFY)
	if err != nil {
		in.Close()
		return nil, fmt.Errorf("inotify watch %s: %w", events, err)
	}
	populated := filepath.Join(dir, "cgroup.events")
	cgWatch, err := unix.InotifyAddWatch(ifd, populated, unix.IN_MODIFY)
	if err != nil {
		in.Close()
		return nil, fmt.Errorf("inotify watch %s: %w", populated, err)
	}
	seen, _ := eventCount(events, "oom_kill")
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		defer in.Close()
		var buf [16 * (unix.SizeofInotifyEvent + unix.NAME_MAX + 1)]byte
		for {
			n, err := in.Read(buf[:])
			if err != nil {
				return
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				e := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				off += unix.SizeofInotifyEvent + int(e.Len)
				switch int(e.Wd) {
				case memWatch:
					kills, err := eventCount(events, "oom_kill")
					for ; err == nil && seen < kills; seen++ {
						ch <- struct{}{}
					}
				case cgWatch:
					if p, err := eventCount(populated, "populated"); err != nil || p == 0 {
						return
					}
				}
			}
		}
	}()
	return ch, nil
}

// eventCount reads one "key value" line of a cgroup v2 events file.
func eventCount(file, key string) (uint64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+" "); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %q line", file, key)
}

// oomKilled reports whether memory.events counts an OOM kill.
func oomKilled(file string) bool {
	n, err := eventCount(file, "oom_kill")
	return err == nil && n > 0
}
