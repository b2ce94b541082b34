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
// threads that exited, reads counts /proc reads.
type fakeProcs struct {
	*procCache
	clock  time.Time
	dead   map[int]bool
	opens  int
	reads  int
	closed map[int]bool
	// onRead, if set, runs at every /proc read.
	onRead func(pid int)
}

func newFakeProcs() *fakeProcs {
	f := &fakeProcs{clock: time.Unix(1000, 0), dead: map[int]bool{}, closed: map[int]bool{}}
	f.procCache = newProcCache(func(pid int) (string, string) {
		f.reads++
		if f.onRead != nil {
			f.onRead(pid)
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

func TestProcCachePinsAndRereads(t *testing.T) {
	f := newFakeProcs()
	if !f.pin(7) || f.opens != 1 {
		t.Fatalf("pin: opens %d", f.opens)
	}
	if c, e := f.read(7); c != "comm-7" || e != "/bin/exe-7" || f.reads != 1 {
		t.Fatalf("read = %q %q after %d reads", c, e, f.reads)
	}
	// Denied again: no pidfd opened, no /proc read.
	if !f.pin(7) || f.opens != 1 {
		t.Fatalf("second pin opened again: %d", f.opens)
	}
	if c, _ := f.read(7); c != "comm-7" || f.reads != 1 {
		t.Fatalf("cached read = %q after %d reads", c, f.reads)
	}
	// After procTTL comm and exe are read again (an exec changes them).
	f.clock = f.clock.Add(procTTL)
	f.pin(7)
	if f.read(7); f.reads != 2 {
		t.Errorf("reads after TTL = %d, want 2", f.reads)
	}
}

func TestProcCacheNeverNamesAReusedPid(t *testing.T) {
	f := newFakeProcs()
	f.pin(9)
	// The thread exits while its /proc entries are read: whoever has the
	// pid by then may have been read, so nothing is attributed.
	f.onRead = func(pid int) { f.dead[pid] = true }
	if c, e := f.read(9); c != "" || e != "" {
		t.Errorf("read of a thread that died = %q %q, want empty", c, e)
	}
	if !f.closed[1009] || len(f.entries) != 0 {
		t.Errorf("dead thread's pidfd not dropped: closed %v, entries %d", f.closed, len(f.entries))
	}
	// Its pid comes back as another thread: a fresh pin, a fresh read.
	f.onRead = nil
	f.dead[9] = false
	f.pin(9)
	if c, _ := f.read(9); c != "comm-9" || f.opens != 2 {
		t.Errorf("new thread on pid 9: comm %q, opens %d", c, f.opens)
	}
	// A cached entry whose thread exited is replaced at the next pin.
	f.dead[9] = true
	if f.pin(9) {
		t.Error("pinned a pid whose thread exited and that no thread holds")
	}
	if len(f.entries) != 0 {
		t.Errorf("entries = %d, want the dead one dropped", len(f.entries))
	}
}

func TestProcCacheUnpinAfterRefusedAnswer(t *testing.T) {
	f := newFakeProcs()
	f.pin(5)
	// The answer failed: the thread may have died before the pidfd was
	// opened, so the pidfd may name a newcomer. It goes.
	f.unpin(5)
	if len(f.entries) != 0 || !f.closed[1005] {
		t.Errorf("entries %d closed %v", len(f.entries), f.closed)
	}
	// An entry proven by an earlier answer stays.
	f.pin(6)
	f.read(6)
	f.pin(6)
	f.unpin(6)
	if len(f.entries) != 1 {
		t.Errorf("proven entry dropped on a refused answer")
	}
}

func TestProcCacheBounded(t *testing.T) {
	f := newFakeProcs()
	for pid := 1; pid <= procCacheSize; pid++ {
		f.pin(pid)
	}
	f.pin(1) // most recently used now
	f.pin(procCacheSize + 1)
	if len(f.entries) != procCacheSize {
		t.Fatalf("entries = %d, want %d", len(f.entries), procCacheSize)
	}
	if f.entries[2] != nil || f.entries[1] == nil || !f.closed[1002] {
		t.Errorf("evicted the wrong entry: 1 %v, 2 %v", f.entries[1] != nil, f.entries[2] != nil)
	}
	// Dead threads go first.
	f.dead[5] = true
	f.pin(procCacheSize + 2)
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
		g.pinned = c.pin(g.tid)
		g.comm, g.exe = c.read(g.tid)
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
		if !c.pin(tid) {
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
	if cm, ex := c.read(tid); cm != "" || ex != "" {
		t.Errorf("exited thread read as %q %q, want nothing", cm, ex)
	}
}

// The kernel is answered before comm and exe are read when threads can be
// pinned, and the record still carries them.
func TestAgentAnswersBeforeReadingProc(t *testing.T) {
	sink := &memSink{}
	a := newTestAgent(t, testConfig(t), sink)
	_ = a.Register("c1", testAttr, denial.ModeEnforce, "p")
	src := newFakeSource()
	var answeredAtRead []bool
	a.newProcs = func() *procCache {
		f := newFakeProcs()
		f.onRead = func(pid int) {
			_, ok := src.answer(uint64(pid))
			answeredAtRead = append(answeredAtRead, ok)
		}
		return f.procCache
	}
	a.serve(a.registration("c1"), src)
	// id = pid so onRead can look the answer up.
	src.ch <- note(31, 31, 165, "mount")
	src.ch <- note(32, 32, 101, "ptrace")
	waitFor(t, "two records", func() bool { return len(sink.records()) == 2 })
	close(src.ch)
	_ = a.Close()
	if len(answeredAtRead) != 2 || !answeredAtRead[0] || !answeredAtRead[1] {
		t.Errorf("answered when /proc was read: %v, want both true", answeredAtRead)
	}
	for _, r := range sink.records() {
		if r.Comm != "comm-"+strconv.Itoa(r.Pid) || r.Exe != "/bin/exe-"+strconv.Itoa(r.Pid) {
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
	if r := sink.records()[0]; r.Pid != 41 {
		t.Errorf("record = %+v, want pid 41's only", r)
	}
	if !procs.closed[1040] || procs.reads != 1 {
		t.Errorf("pin of the refused answer: closed %v, reads %d", procs.closed, procs.reads)
	}
}
