package apparmor

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/stockade-dev/stockade/shim/denials"
)

type fakeReporter struct {
	mu  sync.Mutex
	got map[string][]denials.Record
}

func (f *fakeReporter) Report(id string, r *denials.Record) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.got == nil {
		f.got = map[string][]denials.Record{}
	}
	f.got[id] = append(f.got[id], *r)
	return true
}

func newTestWatcher(t *testing.T, cgroups map[int]string) (*Watcher, *fakeReporter) {
	t.Helper()
	rep := &fakeReporter{}
	w := New(context.Background(), rep)
	r, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.open = func() (*os.File, error) { return r, nil }
	w.readCgroup = func(pid int) (string, error) {
		if cg, ok := cgroups[pid]; ok {
			return cg, nil
		}
		return "", errors.New("gone")
	}
	t.Cleanup(func() { wr.Close(); w.Close() })
	return w, rep
}

// TestHandleAttributesByCgroup: a shared profile's denial goes to the
// container whose cgroup holds the process, never to another; a process in
// no tracked cgroup, or gone, is counted, not guessed; other profiles and
// non-denials are ignored.
func TestHandleAttributesByCgroup(t *testing.T) {
	w, rep := newTestWatcher(t, map[int]string{
		10: "/kubepods/pod1/c1",
		11: "/kubepods/pod1/c2/sub",
		12: "/kubepods/pod9/other",
	})
	const shared = "stockade-0123456789abcdef"
	if err := w.Track("c1", shared, "/kubepods/pod1/c1"); err != nil {
		t.Fatal(err)
	}
	if err := w.Track("c2", shared, "/kubepods/pod1/c2"); err != nil {
		t.Fatal(err)
	}
	w.handle(Event{Verdict: "DENIED", Operation: "mknod", Profile: shared, Path: "/x", Pid: 10, Comm: "sh", DeniedMask: "c"})
	w.handle(Event{Verdict: "ALLOWED", Operation: "open", Profile: shared + "//null-/bin/x", Path: "/y", Pid: 11})
	w.handle(Event{Verdict: "DENIED", Operation: "capable", Profile: shared, Capability: "sys_admin", Pid: 12})
	w.handle(Event{Verdict: "DENIED", Operation: "open", Profile: shared, Pid: 99})
	w.handle(Event{Verdict: "DENIED", Operation: "open", Profile: "stockade-ffffffffffffffff", Pid: 10})
	w.handle(Event{Verdict: "STATUS", Operation: "profile_load", Profile: shared, Pid: 10})

	if got := rep.got["c1"]; len(got) != 1 || got[0].Source != denials.SourceAppArmor || got[0].Path != "/x" ||
		got[0].Operation != "mknod" || got[0].Action != denials.ActionDenied || got[0].Errno != "EACCES" || got[0].Profile != shared || got[0].Pid != 10 {
		t.Errorf("c1: %+v", got)
	}
	if got := rep.got["c2"]; len(got) != 1 || got[0].Action != denials.ActionAllowed || got[0].Mode != "complain" || got[0].Profile != shared {
		t.Errorf("c2: %+v", got)
	}
	if s := w.Stats(); s.Filed != 2 || s.Unattributed != 2 {
		t.Errorf("stats %+v, want 2 filed, 2 unattributed", s)
	}
	w.Untrack("c1")
	w.handle(Event{Verdict: "DENIED", Operation: "mknod", Profile: shared, Pid: 10})
	if len(rep.got["c1"]) != 1 {
		t.Error("a record was filed for an untracked container")
	}
}

// TestSplitNetlink: audit records arrive with nlmsg_len unaligned; every
// message of a datagram is kept, the last one too.
func TestSplitNetlink(t *testing.T) {
	msg := func(typ uint16, data string) []byte {
		b := make([]byte, 16+len(data))
		binary.NativeEndian.PutUint32(b[0:4], uint32(len(b)))
		binary.NativeEndian.PutUint16(b[4:6], typ)
		copy(b[16:], data)
		return b
	}
	one := msg(1400, `audit(1.0:1): apparmor="DENIED" x=1`) // 16+35: unaligned
	if got := splitNetlink(one); len(got) != 1 || got[0].typ != 1400 || string(got[0].data) != `audit(1.0:1): apparmor="DENIED" x=1` {
		t.Fatalf("single unaligned message: %+v", got)
	}
	two := append(append([]byte{}, one...), 0, 0, 0, 0)[:(len(one)+3)&^3]
	two = append(two, msg(1300, "syscall")...)
	if got := splitNetlink(two); len(got) != 2 || got[1].typ != 1300 || string(got[1].data) != "syscall" {
		t.Fatalf("two messages: %+v", got)
	}
	if got := splitNetlink([]byte{1, 2, 3}); len(got) != 0 {
		t.Fatalf("short: %+v", got)
	}
	bad := msg(1400, "x")
	binary.NativeEndian.PutUint32(bad[0:4], 999)
	if got := splitNetlink(bad); len(got) != 0 {
		t.Fatalf("length beyond the datagram: %+v", got)
	}
}
