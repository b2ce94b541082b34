//go:build cgo && seccomp

package denials

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/denial"
	"github.com/stockade-dev/stockade/shim/denials/notifytest"
)

// filterThread is a thread with a filter that notifies getppid, standing in
// for a container process: it makes calls when asked and exits (taking its
// filter along) when its channel closes.
type filterThread struct {
	calls chan int
	res   chan [2]int // EPERM, other
	once  sync.Once
	tid   int
}

// startFilterThread loads the filter on a new thread and hands its fd to
// a as libcontainer would, for container id.
func startFilterThread(t *testing.T, a *Agent, id string) *filterThread {
	t.Helper()
	ft := &filterThread{calls: make(chan int), res: make(chan [2]int)}
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread and its filter die here
		ft.tid = unix.Gettid()
		fd, err := notifytest.LoadNotifyFilter(unix.SYS_GETPPID)
		if err == nil {
			st := &specs.ContainerProcessState{Fds: []string{specs.SeccompFdName}, State: specs.State{ID: id}}
			err = notifytest.SendProcessState(a.ListenerPath(), st, fd)
			_ = unix.Close(fd)
		}
		ready <- err
		if err != nil {
			return
		}
		for n := range ft.calls {
			var r [2]int
			for range n {
				switch _, _, e := unix.Syscall(unix.SYS_GETPPID, 0, 0, 0); e {
				case unix.EPERM:
					r[0]++
				default:
					r[1]++
				}
			}
			ft.res <- r
		}
	}()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	return ft
}

// call makes n denied calls and returns how many failed with EPERM and
// how many otherwise.
func (ft *filterThread) call(n int) [2]int {
	ft.calls <- n
	return <-ft.res
}

func (ft *filterThread) exit() { ft.once.Do(func() { close(ft.calls) }) }

func receiverAgent(t *testing.T, ro receiverOptions) (*Agent, *memSink) {
	t.Helper()
	cfg := testConfig(t)
	sink := &memSink{}
	a, err := New(cfg, "node-1", WithSocketPath(filepath.Join(t.TempDir(), "a.sock")), WithSinks(sink),
		withReceiver(ro))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	if err := a.Register("ctr", testAttr, denial.ModeEnforce, "p"); err != nil {
		t.Fatal(err)
	}
	return a, sink
}

// The adaptive receiver moves to a thread of its own for a burst, gives the
// thread back when the burst is over, and answers correctly throughout.
func TestReceiverSwitchesModes(t *testing.T) {
	notifytest.Require(t)
	a, sink := receiverAgent(t, receiverOptions{mode: receiveAdaptive})
	ft := startFilterThread(t, a, "ctr")
	defer ft.exit()

	// Isolated calls stay in the netpoller.
	for range 3 {
		if r := ft.call(1); r[0] != 1 {
			t.Fatalf("isolated call: %v", r)
		}
		time.Sleep(2 * burstGap)
	}
	if s := a.Stats(); s.Bursts != 0 || s.ThreadReceivers != 0 {
		t.Fatalf("isolated calls moved the receiver: %+v", s)
	}
	for round := 1; round <= 2; round++ {
		if r := ft.call(5000); r[0] != 5000 {
			t.Fatalf("burst %d: %v, want 5000 EPERM", round, r)
		}
		if s := a.Stats(); s.Bursts != uint64(round) {
			t.Fatalf("after burst %d: bursts %d", round, s.Bursts)
		}
		// busyIdle later the thread is given back.
		waitFor(t, "the receiver to leave its thread", func() bool { return a.Stats().ThreadReceivers == 0 })
		// Back in the netpoller, a single call is still answered.
		if r := ft.call(1); r[0] != 1 {
			t.Fatalf("call after burst %d: %v", round, r)
		}
		time.Sleep(2 * burstGap)
	}
	_ = a.Close()
	if d, g := account(sink.records()); d+g != 3+2*5001 {
		t.Errorf("accounted %d + %d, want %d", d, g, 3+2*5001)
	}
}

// A receiver blocked in RECV on its own thread ends by itself when the
// filter's last thread exits: from Linux 6.11 the kernel wakes the RECV
// (ENOENT) and the fd polls POLLHUP.
func TestThreadReceiverEndsWithFilter(t *testing.T) {
	notifytest.Require(t)
	if !kernelAtLeast(6, 11) {
		t.Skip("before Linux 6.11 a blocked RECV is not woken when its filter loses its last thread (the adaptive receiver's watchdog covers that)")
	}
	a, _ := receiverAgent(t, receiverOptions{mode: receiveThread})
	ft := startFilterThread(t, a, "ctr")
	if r := ft.call(100); r[0] != 100 {
		t.Fatalf("calls: %v", r)
	}
	if ft.tid == unix.Getpid() {
		ft.exit()
		t.Skip("the filter landed on the main thread, which Go never ends")
	}
	ft.exit()
	waitFor(t, "the receiver to end with its filter", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.sources) == 0
	})
	if s := a.Stats(); s.ThreadReceivers != 0 {
		t.Errorf("thread receivers = %d after the filter ended", s.ThreadReceivers)
	}
}

// kernelAtLeast reports whether the running kernel is major.minor or newer.
func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	var ma, mi int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// Close must not hang on, or leak, a receiver waiting on its own thread:
// the agent's eventfd wakes it, the fd is closed, and the filter's next
// call fails with ENOSYS (a dead agent still denies).
func TestCloseWhileReceiverOnThread(t *testing.T) {
	notifytest.Require(t)
	for name, ro := range map[string]receiverOptions{
		"thread": {mode: receiveThread},
		// The burst never ends on its own: Close meets it on its thread.
		"adaptive-in-burst": {mode: receiveAdaptive, idle: time.Hour},
	} {
		t.Run(name, func(t *testing.T) {
			a, _ := receiverAgent(t, ro)
			ft := startFilterThread(t, a, "ctr")
			defer ft.exit()
			if r := ft.call(2000); r[0] != 2000 {
				t.Fatalf("calls: %v", r)
			}
			if s := a.Stats(); s.ThreadReceivers != 1 {
				t.Fatalf("receiver not on its thread: %+v", s)
			}
			closed := make(chan error, 1)
			go func() { closed <- a.Close() }()
			select {
			case err := <-closed:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(time.Minute):
				t.Fatal("Close hangs on a receiver waiting on its thread")
			}
			if s := a.Stats(); s.ThreadReceivers != 0 {
				t.Errorf("receivers still on threads after Close: %d", s.ThreadReceivers)
			}
			if r := ft.call(1); r[1] != 1 {
				t.Errorf("call after Close: %v, want ENOSYS from the kernel", r)
			}
		})
	}
}

// The kernel facts behind fdSource's stopBusy, checked on this kernel: a
// blocking SECCOMP_IOCTL_NOTIF_RECV is neither ended by a signal (Go's
// handlers are SA_RESTART: the ioctl restarts) nor by replacing or closing
// its fd (the ioctl holds the file); after the fd was replaced, a signal
// restarts it on the new file, which fails with ENOTTY. Once it returns,
// the listener is released and the filter's calls fail with ENOSYS.
func TestBlockedRecvKernelFacts(t *testing.T) {
	notifytest.Require(t)
	fdc := make(chan int, 1)
	calls := make(chan struct{})
	callDone := make(chan unix.Errno, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the filter dies with the thread
		fd, err := notifytest.LoadNotifyFilter(unix.SYS_GETPPID)
		if err != nil {
			fdc <- -1
			return
		}
		fdc <- fd
		<-calls
		_, _, e := unix.Syscall(unix.SYS_GETPPID, 0, 0, 0)
		callDone <- e
	}()
	fd := <-fdc
	if fd < 0 {
		t.Fatal("cannot load filter")
	}
	got := make(chan unix.Errno, 1)
	tidc := make(chan int, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tidc <- unix.Gettid()
		var n seccompNotif
		got <- notifRecv(fd, &n)
	}()
	tid := <-tidc
	signal := func() {
		if err := unix.Tgkill(os.Getpid(), tid, unix.SIGURG); err != nil {
			t.Fatal(err)
		}
	}
	stillBlocked := func(what string) {
		select {
		case e := <-got:
			t.Fatalf("RECV returned (%v) after %s", e, what)
		case <-time.After(200 * time.Millisecond):
		}
	}
	stillBlocked("nothing")
	for range 5 {
		signal()
		time.Sleep(10 * time.Millisecond)
	}
	stillBlocked("signals")
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	if err := unix.Dup3(efd, fd, unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	stillBlocked("replacing its fd")
	// The signal may land before the thread is back in the ioctl; repeat
	// it until the RECV returns.
	var e unix.Errno
	for done := false; !done; {
		signal()
		select {
		case e = <-got:
			done = true
		case <-time.After(100 * time.Millisecond):
		}
	}
	_ = unix.Close(fd)
	if e != unix.ENOTTY {
		t.Errorf("RECV after its fd was replaced and a signal = %v, want ENOTTY", e)
	}
	close(calls)
	select {
	case e := <-callDone:
		if e != unix.ENOSYS {
			t.Errorf("call after the listener went = %v, want ENOSYS", e)
		}
	case <-time.After(time.Minute):
		t.Fatal("the notified call never returned")
	}
}

// BenchmarkRecvWaits compares ways of waiting for a notification, each
// answering with EPERM and doing nothing else: a bare blocking-RECV loop on
// a locked thread (the floor), fdSource on its own thread (busy mode:
// blocking RECV plus fdSource's bookkeeping), and fdSource in the
// netpoller (idle mode).
func BenchmarkRecvWaits(b *testing.B) {
	notifytest.Require(b)
	for _, bc := range []struct {
		name  string
		serve func(fd int)
	}{
		{"blocking-recv", func(fd int) {
			_ = notifSetSyncWakeUp(fd) // as newFDSource does
			runtime.LockOSThread()
			var req seccompNotif
			var resp seccompNotifResp
			for {
				switch e := notifRecv(fd, &req); e {
				case 0:
					notifSend(fd, &resp, req.id, unix.EPERM)
				case unix.EINTR:
				default:
					// ENOENT once the filter's thread is gone (Linux 6.11+).
					var p unix.PollFd
					if pollNow(&p, fd)&unix.POLLHUP != 0 {
						_ = unix.Close(fd)
						return
					}
				}
			}
		}},
		{"fdsource-thread", func(fd int) {
			src, _ := newFDSource(fd, receiverOptions{mode: receiveThread})
			serveRaw(src)
		}},
		{"fdsource-netpoller", func(fd int) {
			src, _ := newFDSource(fd, receiverOptions{mode: receivePoller})
			serveRaw(src)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			fdc := make(chan int, 1)
			start, done := make(chan struct{}), make(chan struct{})
			n := b.N
			go func() {
				defer close(done)
				runtime.LockOSThread() // never unlocked: the filter dies with the thread
				fd, err := notifytest.LoadNotifyFilter(unix.SYS_GETPPID)
				fdc <- fd
				if err != nil {
					return
				}
				<-start
				for range n {
					unix.Syscall(unix.SYS_GETPPID, 0, 0, 0)
				}
			}()
			fd := <-fdc
			if fd < 0 {
				b.Fatal("cannot load filter")
			}
			go bc.serve(fd)
			b.ResetTimer()
			close(start)
			<-done
		})
	}
}

// serveRaw answers every notification of src with EPERM until it is done.
func serveRaw(src source) {
	for {
		n, err := src.receive()
		if err != nil {
			if !errors.Is(err, errSourceDone) {
				panic(err)
			}
			return
		}
		_ = src.respond(n.id, unix.EPERM)
	}
}
