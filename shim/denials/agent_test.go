package denials

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/denial"
)

func note(id uint64, pid, nr int, name string) notification {
	return notification{id: id, pid: pid, nr: nr, arch: "amd64", syscall: name, args: [6]uint64{1, 0xff, 0, 0, 0, 0}}
}

func TestAgentEnforceAnswersEPERMAndAggregates(t *testing.T) {
	cfg := testConfig(t)
	cfg.AggregateWindow = "1h" // only Close flushes: the test controls when
	sink := &memSink{}
	a := newTestAgent(t, cfg, sink)
	if err := a.Register("c1", testAttr, denial.ModeEnforce, "stockade-baseline"); err != nil {
		t.Fatal(err)
	}
	src := newFakeSource()
	a.serve(a.registration("c1"), src)

	src.ch <- note(1, 100, 165, "mount")
	waitFor(t, "first record", func() bool { return len(sink.records()) == 1 })
	src.ch <- note(2, 100, 165, "mount")
	src.ch <- note(3, 101, 165, "mount")
	src.ch <- note(4, 100, 101, "ptrace")
	// pid 101's mount is its own first occurrence: a window is per pid.
	waitFor(t, "ptrace record", func() bool { return len(sink.records()) == 3 })
	for id := uint64(1); id <= 4; id++ {
		if e, ok := src.answer(id); !ok || e != unix.EPERM {
			t.Errorf("notification %d answered %v (answered: %v), want EPERM", id, e, ok)
		}
	}
	close(src.ch)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	recs := sink.records()
	if len(recs) != 4 {
		t.Fatalf("got %d records, want first mount of 100 and 101, first ptrace, mount aggregate of 100: %+v", len(recs), recs)
	}
	first := recs[0]
	want := Record{
		Node: "node-1", Namespace: "team-a", Pod: "web-0", PodUID: "0f6c-uid", Container: "app",
		ContainerID: "c1", Image: "registry.example/app:1", Pid: 100, Comm: "comm-100", Exe: "/bin/exe-100",
		Syscall: "mount", SyscallNr: 165, Arch: "amd64", Action: ActionDenied, Errno: "EPERM",
		Mode: denial.ModeEnforce, Profile: "stockade-baseline", Seq: 1, Count: 1,
	}
	first.Time = want.Time
	first.Args = nil
	if first.Since != want.Since {
		t.Errorf("first occurrence has Since %v", first.Since)
	}
	if !equalRecords(first, want) {
		t.Errorf("first record\n got %+v\nwant %+v", first, want)
	}
	if got := recs[0].Args; len(got) != 6 || got[0] != "0x1" || got[1] != "0xff" {
		t.Errorf("args = %v, want hex strings", got)
	}
	if r := recs[1]; r.Pid != 101 || r.Comm != "comm-101" || r.Exe != "/bin/exe-101" || r.Count != 1 {
		t.Errorf("pid 101's mount = %+v, want its own record", r)
	}
	agg := recs[3]
	if agg.Syscall != "mount" || agg.Count != 1 || agg.Seq != 4 || agg.Since.IsZero() {
		t.Errorf("aggregate = %+v, want mount count 1 seq 4 with since", agg)
	}
	// The aggregate names only the process whose repeats it counts.
	if agg.Pid != 100 || agg.Comm != "comm-100" || agg.Exe != "/bin/exe-100" || agg.Overflow {
		t.Errorf("aggregate attributed pid %d comm %q exe %q, want 100 comm-100 /bin/exe-100", agg.Pid, agg.Comm, agg.Exe)
	}
	if s := a.Stats(); s.Notifications != 4 || s.Folded != 1 || s.Records != 4 {
		t.Errorf("stats = %+v", s)
	}
}

func equalRecords(a, b Record) bool {
	a.Args, b.Args = nil, nil
	return reflect.DeepEqual(a, b)
}

func TestAgentComplainContinues(t *testing.T) {
	cfg := testConfig(t)
	cfg.AggregateWindow = "0"
	sink := &memSink{}
	a := newTestAgent(t, cfg, sink)
	if err := a.Register("c1", testAttr, denial.ModeComplain, "p"); err != nil {
		t.Fatal(err)
	}
	src := newFakeSource()
	a.serve(a.registration("c1"), src)
	src.ch <- note(7, 55, 165, "mount")
	src.ch <- note(8, 55, 165, "mount")
	close(src.ch)
	waitFor(t, "two records (no folding)", func() bool { return len(sink.records()) == 2 })
	if e, ok := src.answer(7); !ok || e != 0 {
		t.Errorf("complain answered %v, want continue (0)", e)
	}
	r := sink.records()[1]
	if r.Action != ActionAllowed || r.Errno != "" || r.Mode != denial.ModeComplain || r.Count != 1 || r.Seq != 2 {
		t.Errorf("record = %+v", r)
	}
}

func TestAgentDoesNotAttributeReusedPid(t *testing.T) {
	cfg := testConfig(t)
	cfg.AggregateWindow = "0"
	sink := &memSink{}
	a := newTestAgent(t, cfg, sink)
	_ = a.Register("c1", testAttr, denial.ModeEnforce, "p")
	src := newFakeSource()
	procs := newFakeProcs()
	a.newProcs = func() *procCache { return procs.procCache }
	a.serve(a.registration("c1"), src)
	src.ch <- note(1, 42, 165, "mount")
	waitFor(t, "record", func() bool { return len(sink.records()) == 1 })
	// Thread 42 exits and its pid goes to another program: the cached
	// comm and exe must not be given to it.
	procs.names[42] = "other"
	// The old pidfd reports its thread gone; the newcomer gets a new one.
	procs.alive = func(fd int) bool { return fd != 1042 }
	procs.open = func(pid int) (int, error) { return 2000 + pid, nil }
	src.ch <- note(2, 42, 165, "mount")
	waitFor(t, "second record", func() bool { return len(sink.records()) == 2 })
	close(src.ch)
	_ = a.Close()
	if r := sink.records()[1]; r.Comm != "other" || r.Exe != "/bin/other" || r.Pid != 42 {
		t.Errorf("record = %+v, want the newcomer's comm and exe", r)
	}
}

func TestAgentSkipsUnansweredNotification(t *testing.T) {
	sink := &memSink{}
	a := newTestAgent(t, testConfig(t), sink)
	_ = a.Register("c1", testAttr, denial.ModeEnforce, "p")
	src := newFakeSource()
	src.failRespond[1] = true // interrupted: it will be notified again
	a.serve(a.registration("c1"), src)
	src.ch <- note(1, 42, 165, "mount")
	src.ch <- note(2, 42, 165, "mount")
	waitFor(t, "record", func() bool { return len(sink.records()) == 1 })
	close(src.ch)
	_ = a.Close()
	recs := sink.records()
	if d, _ := account(recs); d != 1 {
		t.Errorf("accounted %d denials, want 1 (the interrupted one never happened): %+v", d, recs)
	}
	if s := a.Stats(); s.ResponseErrors != 1 {
		t.Errorf("response errors = %d, want 1", s.ResponseErrors)
	}
}

func TestAgentUnregisterFlushesAndReleases(t *testing.T) {
	cfg := testConfig(t)
	cfg.AggregateWindow = "1h"
	sink := &memSink{}
	a := newTestAgent(t, cfg, sink)
	_ = a.Register("c1", testAttr, denial.ModeEnforce, "p")
	src := newFakeSource()
	a.serve(a.registration("c1"), src)
	for i := uint64(1); i <= 5; i++ {
		src.ch <- note(i, 9, 165, "mount")
	}
	waitFor(t, "answers", func() bool { _, ok := src.answer(5); return ok })
	a.Unregister("c1")
	waitFor(t, "aggregate on unregister", func() bool { return len(sink.records()) == 2 })
	if r := sink.records()[1]; r.Count != 4 {
		t.Errorf("aggregate count = %d, want 4", r.Count)
	}
	waitFor(t, "release", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return len(sink.release) == 1 && sink.release[0] == testAttr
	})
	if a.registration("c1") != nil {
		t.Error("still registered")
	}
}

func TestRegisterValidates(t *testing.T) {
	a := newTestAgent(t, testConfig(t), &memSink{})
	if err := a.Register("", testAttr, denial.ModeEnforce, ""); err == nil {
		t.Error("empty ID accepted")
	}
	if err := a.Register("c", testAttr, "audit", ""); err == nil {
		t.Error("unknown mode accepted")
	}
	_ = a.Close()
	if err := a.Register("c", testAttr, denial.ModeEnforce, ""); err != ErrClosed {
		t.Errorf("register after close: %v, want ErrClosed", err)
	}
}

func TestNewListener(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "a.sock")
	// A stale socket from a crashed shim is replaced.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0); err == nil {
		_ = unix.Bind(fd, &unix.SockaddrUnix{Name: path})
		_ = unix.Close(fd)
	}
	a, err := New(testConfig(t), "n", WithSocketPath(path), WithSinks(&memSink{}))
	if err != nil {
		t.Fatal(err)
	}
	if a.ListenerPath() != path {
		t.Errorf("ListenerPath = %s", a.ListenerPath())
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Errorf("socket %v mode %v, want a 0600 socket", err, st.Mode())
	}
	_ = a.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket left behind after Close: %v", err)
	}

	long := "/run/" + strings.Repeat("x", 120) + ".sock"
	if _, err := New(testConfig(t), "n", WithSocketPath(long)); err == nil {
		t.Error("over-long socket path accepted")
	}
	if p := SocketPath("/run/stockade/denials", strings.Repeat("id", 100)); len(p) > maxSocketPath {
		t.Errorf("SocketPath too long: %s", p)
	}
}

func TestErrnoName(t *testing.T) {
	for e, want := range map[syscall.Errno]string{0: "", unix.EPERM: "EPERM", unix.ENOSYS: "ENOSYS"} {
		if got := errnoName(e); got != want {
			t.Errorf("errnoName(%d) = %q, want %q", e, got, want)
		}
	}
}

// A complain-mode profile still hard-denies some calls: the verdict, not the
// mode, decides, and unidentifiable calls fail closed.
func TestAgentVerdictOverridesMode(t *testing.T) {
	cfg := testConfig(t)
	cfg.AggregateWindow = "1h"
	sink := &memSink{}
	a := newTestAgent(t, cfg, sink)
	verdict := func(name string, args [6]uint64) (syscall.Errno, bool) {
		switch {
		case name == "mount":
			return unix.EPERM, true
		case name == "unshare" && args[0] == 1:
			return 0, true
		case name == "unshare":
			return unix.EPERM, true
		}
		return 0, false
	}
	if err := a.Register("c1", testAttr, denial.ModeComplain, "p", WithVerdict(verdict)); err != nil {
		t.Fatal(err)
	}
	src := newFakeSource()
	a.serve(a.registration("c1"), src)
	n := func(id uint64, name string, arg0 uint64) notification {
		return notification{id: id, pid: 1, nr: len(name), arch: "amd64", syscall: name, args: [6]uint64{arg0}}
	}
	src.ch <- n(1, "mount", 0)
	src.ch <- n(2, "unshare", 1)
	src.ch <- n(3, "unshare", 2)
	src.ch <- n(4, "socketcall", 0)
	close(src.ch)
	waitFor(t, "records", func() bool { return len(sink.records()) == 4 })
	want := map[uint64]syscall.Errno{1: unix.EPERM, 2: 0, 3: unix.EPERM, 4: unix.EPERM}
	for id, w := range want {
		if got, _ := src.answer(id); got != w {
			t.Errorf("notification %d answered %v, want %v", id, got, w)
		}
	}
	// unshare was answered two ways: two first occurrences, not one folded.
	recs := sink.records()
	if recs[1].Action != ActionAllowed || recs[2].Action != ActionDenied || recs[2].Errno != "EPERM" {
		t.Errorf("records = %+v", recs)
	}
}

// TestAgentDecoyCannotHideAttacker is issue 21 item 5 through the agent: a
// decoy process named nginx loops on unshare(0) while another process makes
// 500 unshare(CLONE_NEWUSER) calls. Both must appear in the sink with their
// own pid, comm, arguments and counts.
func TestAgentDecoyCannotHideAttacker(t *testing.T) {
	const cloneNewUser = 0x10000000
	cfg := testConfig(t)
	cfg.AggregateWindow = "1h" // everything folds; Close flushes
	sink := &memSink{}
	a := newTestAgent(t, cfg, sink)
	a.readProc = func(pid int) (string, string) {
		if pid == 10 {
			return "nginx", "/usr/sbin/nginx"
		}
		return "sh", "/bin/sh"
	}
	if err := a.Register("c1", testAttr, denial.ModeEnforce, "p"); err != nil {
		t.Fatal(err)
	}
	src := newFakeSource()
	a.serve(a.registration("c1"), src)
	id := uint64(0)
	for i := 0; i < 2500; i++ {
		id++
		src.ch <- notification{id: id, pid: 10, nr: 272, arch: "amd64", syscall: "unshare"}
		if i%5 == 0 {
			id++
			src.ch <- notification{id: id, pid: 66, nr: 272, arch: "amd64", syscall: "unshare", args: [6]uint64{cloneNewUser}}
		}
	}
	waitFor(t, "every answer", func() bool { _, ok := src.answer(id); return ok })
	close(src.ch)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	var decoy, attacker uint64
	for _, r := range sink.records() {
		switch {
		case r.Pid == 10 && r.Comm == "nginx" && r.Args[0] == "0x0":
			decoy += r.Count
		case r.Pid == 66 && r.Comm == "sh" && r.Args[0] == "0x10000000":
			attacker += r.Count
		default:
			t.Errorf("record names a mix of processes or arguments: pid %d comm %q args %v count %d", r.Pid, r.Comm, r.Args, r.Count)
		}
	}
	if decoy != 2500 || attacker != 500 {
		t.Errorf("decoy %d, attacker %d: want 2500 and 500, each in records of its own", decoy, attacker)
	}
}

// TestAgentTruncatesLongExe: a 4 KiB exe path reaches the sink cut to
// maxFieldBytes with a marker, in first records and aggregates alike.
func TestAgentTruncatesLongExe(t *testing.T) {
	cfg := testConfig(t)
	cfg.AggregateWindow = "1h"
	sink := &memSink{}
	a := newTestAgent(t, cfg, sink)
	long := "/" + strings.Repeat("d/", 2040) + "probe"
	a.readProc = func(int) (string, string) { return "probe", long }
	if err := a.Register("c1", testAttr, denial.ModeEnforce, "p"); err != nil {
		t.Fatal(err)
	}
	src := newFakeSource()
	a.serve(a.registration("c1"), src)
	for id := uint64(1); id <= 3; id++ {
		src.ch <- note(id, 100, 165, "mount")
	}
	waitFor(t, "answers", func() bool { _, ok := src.answer(3); return ok })
	close(src.ch)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	recs := sink.records()
	if len(recs) != 2 {
		t.Fatalf("%d records, want first + aggregate", len(recs))
	}
	for _, r := range recs {
		if len(r.Exe) > maxFieldBytes || !strings.Contains(r.Exe, "...[truncated ") || len(r.Truncated) != 1 || r.Truncated[0] != "exe" {
			t.Errorf("exe %d bytes, truncated %v", len(r.Exe), r.Truncated)
		}
	}
}
