package denials

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/denial"
)

// fakeProcs is a procCache over fake pidfds: fd = 1000+pid, dead marks
// threads that exited, reads counts /proc reads, names overrides comm.
type fakeProcs struct {
	*procCache
	clock  time.Time
	dead   map[int]bool
	names  map[int]string
	opens  int
	reads  int
	closed map[int]bool
	// onRead, if set, runs at every /proc read.
	onRead func(pid int)
}

func newFakeProcs() *fakeProcs {
	f := &fakeProcs{clock: time.Unix(1000, 0), dead: map[int]bool{}, names: map[int]string{}, closed: map[int]bool{}}
	f.procCache = newProcCache(func(pid int) (string, string) {
		f.reads++
		if f.onRead != nil {
			f.onRead(pid)
		}
		if n := f.names[pid]; n != "" {
			return n, "/bin/" + n
		}
		return "comm-" + strconv.Itoa(pid), "/bin/exe-" + strconv.Itoa(pid)
	}, func() time.Time { return f.clock })
	f.open = func(pid int) (int, error) {
		if f.dead[pid] {
			return -1, syscall.ESRCH
		}
		f.opens++
		return 1000 + pid, nil
	}
	f.alive = func(fd int) bool { return !f.dead[fd-1000] }
	f.close = func(fd int) { f.closed[fd] = true }
	return f
}

// notify is what handle does with the cache around a successful answer.
func (f *fakeProcs) notify(pid int) (comm, exe string) {
	comm, exe, ok := f.lookup(pid)
	if !ok {
		comm, exe = f.pin(pid)
	}
	return f.answered(pid, comm, exe)
}

func TestProcCacheReadsOncePerThread(t *testing.T) {
	f := newFakeProcs()
	if c, e := f.notify(7); c != "comm-7" || e != "/bin/exe-7" || f.reads != 1 || f.opens != 1 {
		t.Fatalf("first = %q %q after %d reads, %d opens", c, e, f.reads, f.opens)
	}
	// Denied again: nothing opened, nothing read.
	if c, _ := f.notify(7); c != "comm-7" || f.reads != 1 || f.opens != 1 {
		t.Fatalf("second = %q after %d reads, %d opens", c, f.reads, f.opens)
	}
	// procTTL later comm and exe are read again, after the answer (an
	// exec changes them).
	f.clock = f.clock.Add(procTTL)
	f.names[7] = "sh"
	if c, e := f.notify(7); c != "sh" || e != "/bin/sh" || f.reads != 2 || f.opens != 1 {
		t.Errorf("after TTL = %q %q after %d reads, %d opens", c, e, f.reads, f.opens)
	}
}

func TestProcCacheNeverNamesAReusedPid(t *testing.T) {
	f := newFakeProcs()
	f.notify(9)
	// The thread exits; its pid comes back as another program's thread.
	f.dead[9] = true
	if _, _, ok := f.lookup(9); ok {
		t.Fatal("lookup hit for a pid whose pinned thread exited")
	}
	if !f.closed[1009] || len(f.entries) != 0 {
		t.Errorf("dead thread's pidfd not dropped: closed %v, entries %d", f.closed, len(f.entries))
	}
	f.dead[9] = false
	f.names[9] = "other"
	if c, _ := f.notify(9); c != "other" || f.opens != 2 {
		t.Errorf("new thread on pid 9: comm %q, opens %d", c, f.opens)
	}
	// A refresh whose thread dies before the read ends may have read a
	// newcomer: the old values (this thread's a moment ago) are kept.
	f.clock = f.clock.Add(procTTL)
	f.onRead = func(pid int) { f.dead[pid] = true; f.names[pid] = "newcomer" }
	if c, _ := f.notify(9); c != "other" {
		t.Errorf("refresh of a dying thread gave %q, want the cached %q", c, "other")
	}
	if len(f.entries) != 0 {
		t.Errorf("dying thread's entry kept")
	}
}

func TestProcCacheRefusedAnswer(t *testing.T) {
	f := newFakeProcs()
	f.pin(5)
	// The answer failed: the thread may have died before the pidfd was
	// opened, so the pidfd may name a newcomer. It goes.
	f.refused(5)
	if len(f.entries) != 0 || !f.closed[1005] {
		t.Errorf("entries %d closed %v", len(f.entries), f.closed)
	}
	// An entry proven by an earlier answer stays.
	f.notify(6)
	f.lookup(6)
	f.refused(6)
	if len(f.entries) != 1 {
		t.Errorf("proven entry dropped on a refused answer")
	}
}

func TestProcCacheWithoutPidfds(t *testing.T) {
	f := newFakeProcs()
	f.open = func(int) (int, error) { return -1, syscall.EINVAL }
	for range 3 {
		if c, _ := f.notify(3); c != "comm-3" {
			t.Fatalf("comm = %q", c)
		}
	}
	if f.reads != 3 || len(f.entries) != 0 || !f.noPidfd {
		t.Errorf("reads %d entries %d noPidfd %v: want a read per call and nothing kept", f.reads, len(f.entries), f.noPidfd)
	}
}

func TestProcCacheBounded(t *testing.T) {
	f := newFakeProcs()
	for pid := 1; pid <= procCacheSize; pid++ {
		f.notify(pid)
	}
	f.notify(1) // most recently used now
	f.notify(procCacheSize + 1)
	if len(f.entries) != procCacheSize {
		t.Fatalf("entries = %d, want %d", len(f.entries), procCacheSize)
	}
	if f.entries[2] != nil || f.entries[1] == nil || !f.closed[1002] {
		t.Errorf("evicted the wrong entry: 1 %v, 2 %v", f.entries[1] != nil, f.entries[2] != nil)
	}
	// Dead threads go first.
	f.dead[5] = true
	f.notify(procCacheSize + 2)
	if f.entries[5] != nil || f.entries[3] == nil {
		t.Errorf("evicted a live entry before a dead one")
	}
	f.closeAll()
	if len(f.entries) != 0 || len(f.closed) != procCacheSize+2 {
		t.Errorf("closeAll left %d entries, closed %d", len(f.entries), len(f.closed))
	}
}

// The pidfd path against real threads: this test's own thread and one
// that exits.
func TestProcCacheRealThreads(t *testing.T) {
	if fd, err := openThreadPidfd(unix.Gettid()); err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
			t.Skipf("no thread pidfds on this kernel (Linux 6.9+): %v", err)
		}
		t.Fatal(err)
	} else {
		_ = unix.Close(fd)
	}
	c := newProcCache(readProc, time.Now)
	defer c.closeAll()
	exe, _ := os.Executable()
	exe, _ = filepath.EvalSymlinks(exe)

	type got struct {
		tid       int
		pinned    bool
		comm, exe string
	}
	ch := make(chan got)
	release := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		g := got{tid: unix.Gettid()}
		g.comm, g.exe = c.pin(g.tid)
		g.pinned = c.entries[g.tid] != nil
		ch <- g
		<-release
	}()
	g := <-ch
	close(release)
	if !g.pinned || g.exe != exe || g.comm == "" {
		t.Errorf("own thread: pinned %v comm %q exe %q, want exe %q", g.pinned, g.comm, g.exe, exe)
	}

	// A thread that exits: its cached entry must not be used any more.
	done := make(chan int)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		tid := unix.Gettid()
		if c.pin(tid); c.entries[tid] == nil {
			t.Error("cannot pin a live thread")
		}
		done <- tid
	}()
	tid := <-done
	if tid == unix.Getpid() {
		// Go never ends the main thread; it keeps it wedged instead.
		t.Skip("the exiting goroutine ran on the main thread, which never exits")
	}
	waitFor(t, "the exited thread's pidfd to report it", func() bool { return !c.alive(c.entries[tid].pidfd) })
	if _, _, ok := c.lookup(tid); ok {
		t.Error("lookup hit for an exited thread")
	}
}

// A thread denied again is answered without reading /proc; its first
// denial is read while it waits (the only moment that is sure to work).
func TestAgentReadsProcOncePerThread(t *testing.T) {
	cfg := testConfig(t)
	cfg.AggregateWindow = "0" // every call a record of its own
	sink := &memSink{}
	a := newTestAgent(t, cfg, sink)
	_ = a.Register("c1", testAttr, denial.ModeEnforce, "p")
	src := newFakeSource()
	var procs *fakeProcs
	var answeredAtRead []bool
	a.newProcs = func() *procCache {
		procs = newFakeProcs()
		procs.onRead = func(pid int) {
			_, ok := src.answer(uint64(pid))
			answeredAtRead = append(answeredAtRead, ok)
		}
		return procs.procCache
	}
	a.serve(a.registration("c1"), src)
	for i := range 10 {
		nt := note(31, 31, 165, "mount") // id = pid so onRead can look the answer up
		nt.args[2] = uint64(i)
		src.ch <- nt
	}
	waitFor(t, "ten records", func() bool { return len(sink.records()) == 10 })
	close(src.ch)
	_ = a.Close()
	if len(answeredAtRead) != 1 || answeredAtRead[0] {
		t.Errorf("reads (answered at the time): %v, want one, before the answer", answeredAtRead)
	}
	for _, r := range sink.records() {
		if r.Comm != "comm-31" || r.Exe != "/bin/exe-31" {
			t.Errorf("record = %+v", r)
		}
	}
}

// A thread that was interrupted or died before its answer is not counted,
// and its pin (which may name a newcomer on its pid) is dropped.
func TestAgentUnpinsOnRefusedAnswer(t *testing.T) {
	sink := &memSink{}
	a := newTestAgent(t, testConfig(t), sink)
	_ = a.Register("c1", testAttr, denial.ModeEnforce, "p")
	src := newFakeSource()
	src.failRespond[40] = true
	var procs *fakeProcs
	a.newProcs = func() *procCache {
		procs = newFakeProcs()
		return procs.procCache
	}
	a.serve(a.registration("c1"), src)
	src.ch <- note(40, 40, 165, "mount")
	src.ch <- note(41, 41, 165, "mount")
	waitFor(t, "record", func() bool { return len(sink.records()) == 1 })
	close(src.ch)
	_ = a.Close()
	if r := sink.records()[0]; r.Pid != 41 || r.Comm != "comm-41" {
		t.Errorf("record = %+v, want pid 41's only", r)
	}
	if !procs.closed[1040] {
		t.Errorf("pin of the refused answer kept: closed %v", procs.closed)
	}
}
