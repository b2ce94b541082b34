package apparmor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/shim/denials"
)

const (
	// auditAVC is the record type AppArmor's audit records carry.
	auditAVC = 1400
	// auditNlgrpReadlog is the audit multicast group every record is
	// copied to (linux/audit.h AUDIT_NLGRP_READLOG).
	auditNlgrpReadlog = 1
)

// Reporter files a record for a container; *denials.Agent is one.
type Reporter interface {
	Report(containerID string, r *denials.Record) bool
}

// Stats counts what the watcher saw.
type Stats struct {
	// Filed records went to a container's sink.
	Filed uint64
	// Unattributed records named a profile this shim's containers use but
	// a process in none of their cgroups, or one that was gone before the
	// record was read: another pod's (the profile is shared), or lost.
	Unattributed uint64
	// Lost counts overruns of the socket's receive buffer (ENOBUFS).
	Lost uint64
}

// Watcher files the AppArmor denials of the containers it tracks.
type Watcher struct {
	rep Reporter
	ctx context.Context
	// readCgroup returns pid's cgroup v2 path; tests replace it.
	readCgroup func(pid int) (string, error)
	// open opens the audit subscription; tests replace it.
	open func() (*os.File, error)

	mu        sync.Mutex
	byProfile map[string]map[string]string // profile -> container ID -> cgroup path
	f         *os.File
	done      chan struct{}
	closed    bool

	filed, unattributed, lost atomic.Uint64
}

// New returns a watcher filing records through rep. It subscribes to the
// audit stream only when the first container is tracked, so a shim on a
// host without AppArmor never does.
func New(ctx context.Context, rep Reporter) *Watcher {
	return &Watcher{rep: rep, ctx: ctx, readCgroup: readCgroup, open: openAudit, byProfile: map[string]map[string]string{}}
}

// Track files the denials of profile made by processes in cgroupPath (a
// cgroup v2 path as /proc/<pid>/cgroup shows it) as containerID's.
func (w *Watcher) Track(containerID, profile, cgroupPath string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("apparmor denials: watcher closed")
	}
	if w.f == nil {
		f, err := w.open()
		if err != nil {
			return fmt.Errorf("apparmor denials: subscribe to the audit stream: %w", err)
		}
		w.f, w.done = f, make(chan struct{})
		go w.loop(f, w.done)
	}
	m := w.byProfile[profile]
	if m == nil {
		m = map[string]string{}
		w.byProfile[profile] = m
	}
	m[containerID] = path.Clean(cgroupPath)
	return nil
}

// Untrack stops filing containerID's records.
func (w *Watcher) Untrack(containerID string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for p, m := range w.byProfile {
		delete(m, containerID)
		if len(m) == 0 {
			delete(w.byProfile, p)
		}
	}
}

// Stats returns the counters.
func (w *Watcher) Stats() Stats {
	return Stats{Filed: w.filed.Load(), Unattributed: w.unattributed.Load(), Lost: w.lost.Load()}
}

// Close ends the subscription.
func (w *Watcher) Close() error {
	w.mu.Lock()
	w.closed = true
	f, done := w.f, w.done
	w.f = nil
	w.mu.Unlock()
	if f == nil {
		return nil
	}
	err := f.Close()
	<-done
	return err
}

func (w *Watcher) loop(f *os.File, done chan struct{}) {
	defer close(done)
	buf := make([]byte, 1<<16)
	for {
		n, err := f.Read(buf)
		switch {
		case err == nil:
		case errors.Is(err, unix.ENOBUFS):
			w.lost.Add(1)
			continue
		case errors.Is(err, os.ErrClosed):
			return
		default:
			log.G(w.ctx).WithError(err).Warn("apparmor denials: audit stream ended")
			return
		}
		for _, m := range splitNetlink(buf[:n]) {
			if m.typ != auditAVC {
				continue
			}
			if ev, ok := Parse(string(m.data)); ok {
				w.handle(ev)
			}
		}
	}
}

// handle files ev for the tracked container whose cgroup holds its process.
func (w *Watcher) handle(ev Event) {
	if ev.Verdict != "DENIED" && ev.Verdict != "ALLOWED" {
		return
	}
	// A hat or a child profile ("name//child") belongs to its parent.
	profile, _, _ := strings.Cut(ev.Profile, "//")
	w.mu.Lock()
	var cands map[string]string
	if m := w.byProfile[profile]; len(m) > 0 {
		cands = make(map[string]string, len(m))
		for id, cg := range m {
			cands[id] = cg
		}
	}
	w.mu.Unlock()
	if cands == nil {
		return // not a profile of this shim's containers
	}
	cg, err := w.readCgroup(ev.Pid)
	id := ""
	if err == nil {
		for cid, ccg := range cands {
			if cg == ccg || strings.HasPrefix(cg, ccg+"/") {
				id = cid
				break
			}
		}
	}
	if id == "" {
		// Usually another pod's process under a shared profile; said once
		// per shim at info level so a misconfigured node is visible.
		if w.unattributed.Add(1) == 1 {
			log.G(w.ctx).WithFields(log.Fields{"profile": profile, "pid": ev.Pid, "cgroup": cg, "error": err}).
				Info("apparmor denial of a watched profile by a process in none of this shim's containers")
		}
		return
	}
	r := &denials.Record{
		Source:     denials.SourceAppArmor,
		Time:       ev.Time,
		Pid:        ev.Pid,
		Comm:       ev.Comm,
		Operation:  ev.Operation,
		Path:       ev.Path,
		Capability: ev.Capability,
		DeniedMask: ev.DeniedMask,
		Profile:    profile,
		Count:      1,
	}
	if ev.Verdict == "DENIED" {
		r.Action, r.Mode, r.Errno = denials.ActionDenied, "enforce", "EACCES"
		if ev.Operation == "capable" {
			r.Errno = "EPERM"
		}
	} else {
		r.Action, r.Mode = denials.ActionAllowed, "complain"
	}
	if w.rep.Report(id, r) {
		w.filed.Add(1)
	}
}

type netlinkMsg struct {
	typ  uint16
	data []byte
}

// splitNetlink splits a datagram into its messages. The kernel's audit
// records set nlmsg_len to the record's exact length, not a multiple of 4,
// and the datagram ends there: syscall.ParseNetlinkMessage rejects such a
// last message (it wants the aligned length), which lost most records.
func splitNetlink(b []byte) []netlinkMsg {
	var msgs []netlinkMsg
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return msgs
		}
		msgs = append(msgs, netlinkMsg{typ: binary.NativeEndian.Uint16(b[4:6]), data: b[unix.NLMSG_HDRLEN:l]})
		next := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if next >= len(b) {
			return msgs
		}
		b = b[next:]
	}
	return msgs
}

// openAudit subscribes to the audit multicast group. The socket is
// non-blocking so the runtime poller serves it and Close ends a Read.
func openAudit() (*os.File, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_AUDIT)
	if err != nil {
		return nil, fmt.Errorf("audit netlink socket: %w", err)
	}
	// A burst of denials must not overrun the default buffer.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (auditNlgrpReadlog - 1)}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("join the audit log group (needs CAP_AUDIT_READ): %w", err)
	}
	return os.NewFile(uintptr(fd), "audit-netlink"), nil
}

// readCgroup returns pid's cgroup v2 path ("0::<path>" in /proc/<pid>/cgroup).
func readCgroup(pid int) (string, error) {
	if pid <= 0 {
		return "", fmt.Errorf("no pid")
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return path.Clean(p), nil
		}
	}
	return "", fmt.Errorf("pid %d: no cgroup v2 entry", pid)
}
