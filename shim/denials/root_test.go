//go:build cgo && seccomp

package denials

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/cri"
	"github.com/stockade-dev/stockade/denial"
)

// The root tests re-execute the test binary as a stand-in for a container
// process: the child loads a real filter that notifies getppid, hands the fd
// to the agent exactly as libcontainer does, and makes the calls.
const (
	childEnv    = "STOCKADE_DENIALS_TEST_CHILD"
	childSocket = "STOCKADE_DENIALS_TEST_SOCKET"
	childID     = "STOCKADE_DENIALS_TEST_ID"
	childMode   = "STOCKADE_DENIALS_TEST_MODE"
	childCalls  = "STOCKADE_DENIALS_TEST_CALLS"
)

// childReport is what the child prints on stdout.
type childReport struct {
	Tid   int    `json:"tid"`
	EPERM int    `json:"eperm"`
	OK    int    `json:"ok"`
	Other int    `json:"other"`
	Err   string `json:"err,omitempty"`
}

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

func runChild() int {
	// The filter goes on this thread only; the process exits right after.
	runtime.LockOSThread()
	var rep childReport
	defer func() { _ = json.NewEncoder(os.Stdout).Encode(rep) }()
	calls, _ := strconv.Atoi(os.Getenv(childCalls))
	rep.Tid = unix.Gettid()
	fd, err := loadNotifyFilter(unix.SYS_GETPPID)
	if err != nil {
		rep.Err = err.Error()
		return 1
	}
	st := &specs.ContainerProcessState{
		Version:  specs.Version,
		Fds:      []string{specs.SeccompFdName},
		Pid:      os.Getpid(),
		Metadata: denial.ListenerMetadata(os.Getenv(childMode), "child-profile"),
		State: specs.State{
			Version: specs.Version, ID: os.Getenv(childID), Status: specs.StateRunning, Pid: os.Getpid(),
			Annotations: map[string]string{cri.AnnotationContainerType: cri.ContainerTypeContainer, cri.AnnotationSandboxNamespace: "from-annotations", cri.AnnotationContainerName: "ann-ctr"},
		},
	}
	err = sendProcessState(os.Getenv(childSocket), st, fd)
	_ = unix.Close(fd)
	if err != nil {
		rep.Err = err.Error()
		return 1
	}
	for range calls {
		switch _, _, e := unix.Syscall(unix.SYS_GETPPID, 0, 0, 0); e {
		case 0:
			rep.OK++
		case unix.EPERM:
			rep.EPERM++
		default:
			rep.Other++
		}
	}
	return 0
}

// requireNotify skips unless the test runs as root on a kernel with seccomp
// user notification.
func requireNotify(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads seccomp filters and runs the agent's root path")
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread and its filter die here
		fd, err := loadNotifyFilter(unix.SYS_GETPPID)
		if err == nil {
			_ = unix.Close(fd)
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Skipf("seccomp user notification unavailable: %v", err)
	}
}

func runChildProcess(t *testing.T, a *Agent, id, mode string, calls int) childReport {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childSocket+"="+a.ListenerPath(),
		childID+"="+id, childMode+"="+mode, childCalls+"="+strconv.Itoa(calls))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	var rep childReport
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		t.Fatalf("child: %v, output %q: %v", err, out, jerr)
	}
	if err != nil || rep.Err != "" {
		t.Fatalf("child failed: %v %s", err, rep.Err)
	}
	return rep
}

func rootAgent(t *testing.T) (*Agent, *memSink, string) {
	t.Helper()
	cfg := testConfig(t)
	sink := &memSink{}
	a, err := New(cfg, "node-1", WithSocketPath(filepath.Join(t.TempDir(), "a.sock")),
		WithSinks(NewFileSink(cfg.Dir, cfg.MaxFileBytes, cfg.MaxFiles), sink))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a, sink, cfg.Dir
}

// waitSourcesGone waits until every notify fd reported its filter gone, which
// proves the per-fd goroutines end on their own when processes exit.
func waitSourcesGone(t *testing.T, a *Agent) {
	waitFor(t, "notify fds to report POLLHUP", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.sources) == 0
	})
}

func TestNotifyEndToEndEnforce(t *testing.T) {
	requireNotify(t)
	const calls = 500
	a, sink, dir := rootAgent(t)
	if err := a.Register("ctr-e2e", testAttr, denial.ModeEnforce, "stockade-test"); err != nil {
		t.Fatal(err)
	}
	rep := runChildProcess(t, a, "ctr-e2e", denial.ModeEnforce, calls)
	if rep.EPERM != calls {
		t.Errorf("child saw %+v, want %d EPERM", rep, calls)
	}
	waitSourcesGone(t, a)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	recs := sink.records()
	if len(recs) == 0 {
		t.Fatal("no records")
	}
	first := recs[0]
	exe, _ := filepath.EvalSymlinks(os.Args[0])
	exe, _ = filepath.Abs(exe)
	comm := filepath.Base(os.Args[0])
	if len(comm) > 15 {
		comm = comm[:15]
	}
	if first.Pid != rep.Tid || first.Comm != comm || first.Exe != exe {
		t.Errorf("attribution pid %d comm %q exe %q, want %d %q %q", first.Pid, first.Comm, first.Exe, rep.Tid, comm, exe)
	}
	if first.Syscall != "getppid" || first.SyscallNr != unix.SYS_GETPPID || first.Arch == "" ||
		first.Action != ActionDenied || first.Errno != "EPERM" || first.Mode != denial.ModeEnforce ||
		first.Profile != "stockade-test" || first.ContainerID != "ctr-e2e" || first.Pod != testAttr.Pod || first.Count != 1 {
		t.Errorf("first record = %+v", first)
	}
	if d, g := account(recs); d+g != calls {
		t.Errorf("accounted %d + %d, want %d", d, g, calls)
	}
	if d, g, err := sumDir(dir); err != nil || d+g != calls {
		t.Errorf("file sink accounts %d + %d (%v), want %d", d, g, err, calls)
	}
}

func TestNotifyEndToEndComplain(t *testing.T) {
	requireNotify(t)
	a, sink, _ := rootAgent(t)
	_ = a.Register("ctr-c", testAttr, denial.ModeComplain, "p")
	rep := runChildProcess(t, a, "ctr-c", denial.ModeComplain, 100)
	if rep.OK != 100 {
		t.Errorf("child saw %+v, want 100 successful calls", rep)
	}
	waitSourcesGone(t, a)
	_ = a.Close()
	recs := sink.records()
	if len(recs) == 0 || recs[0].Action != ActionAllowed || recs[0].Errno != "" {
		t.Fatalf("records = %+v", recs)
	}
	if d, g := account(recs); d+g != 100 {
		t.Errorf("accounted %d + %d, want 100", d, g)
	}
}

// A container the shim never registered is still answered by its listener
// metadata and attributed from its annotations.
func TestNotifyUnregisteredContainer(t *testing.T) {
	requireNotify(t)
	a, sink, _ := rootAgent(t)
	rep := runChildProcess(t, a, "ctr-unknown", denial.ModeComplain, 10)
	if rep.OK != 10 {
		t.Errorf("child saw %+v, want the metadata's complain mode", rep)
	}
	waitSourcesGone(t, a)
	_ = a.Close()
	recs := sink.records()
	if len(recs) == 0 || recs[0].Namespace != "from-annotations" || recs[0].Container != "ann-ctr" || recs[0].Pod != "ctr-unknown" {
		t.Fatalf("records = %+v", recs)
	}
}

// With the agent gone, the kernel fails notified syscalls with ENOSYS: they
// stay denied, only unreported.
func TestAgentGoneMeansENOSYS(t *testing.T) {
	requireNotify(t)
	a, _, _ := rootAgent(t)
	_ = a.Register("ctr-gone", testAttr, denial.ModeComplain, "p")
	type result struct {
		before, after unix.Errno
		err           error
	}
	resc := make(chan result, 1)
	closed := make(chan struct{})
	handed := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		var r result
		defer func() { resc <- r }()
		fd, err := loadNotifyFilter(unix.SYS_GETPPID)
		if err != nil {
			r.err = err
			return
		}
		st := &specs.ContainerProcessState{Fds: []string{specs.SeccompFdName}, State: specs.State{ID: "ctr-gone"}}
		r.err = sendProcessState(a.ListenerPath(), st, fd)
		_ = unix.Close(fd)
		_, _, r.before = unix.Syscall(unix.SYS_GETPPID, 0, 0, 0)
		close(handed)
		<-closed
		_, _, r.after = unix.Syscall(unix.SYS_GETPPID, 0, 0, 0)
	}()
	<-handed
	_ = a.Close()
	close(closed)
	r := <-resc
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.before != 0 || r.after != unix.ENOSYS {
		t.Errorf("getppid before/after Close = %v/%v, want success (complain) then ENOSYS", r.before, r.after)
	}
}

func TestStormReal(t *testing.T) {
	requireNotify(t)
	for _, opt := range []StormOptions{
		{}, // node defaults: folded
		{Window: -1, QueueSize: 64, RecordsPerSecond: -1},    // every denial a record, tiny queue: gaps
		{Window: -1, RecordsPerSecond: 100},                  // no folding, but the rate limit
		{Mode: denial.ModeComplain, Window: 0, QueueSize: 0}, // complain: CONTINUE
		// Every way of receiving, with and without SYNC_WAKE_UP.
		{Receiver: "poller"},
		{Receiver: "thread"},
		{Receiver: "thread", NoSyncWakeUp: true},
		{Receiver: "adaptive", NoSyncWakeUp: true},
		// Every denial a record, through the thread receiver.
		{Window: -1, Receiver: "thread", RecordsPerSecond: -1},
	} {
		t.Run(fmt.Sprintf("window=%v,queue=%d,mode=%s,receiver=%s,nosync=%v", opt.Window, opt.QueueSize, opt.Mode, opt.Receiver, opt.NoSyncWakeUp), func(t *testing.T) {
			r, err := Storm(200000, opt)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%.0f denials/s, %v per denied syscall (p50 %v, p99 %v; baseline %v), agent CPU %v per 100k, delivered %d, gapped %d, stats %+v",
				r.Rate, r.Latency, r.P50, r.P99, r.Baseline, r.CPUPer100k(), r.Delivered, r.Gapped, r.Stats)
			if r.Lost != 0 || r.Wrong != 0 || r.Delivered+r.Gapped < 200000 {
				t.Errorf("lost %d, wrong %d, accounted %d", r.Lost, r.Wrong, r.Delivered+r.Gapped)
			}
		})
	}
}

// BenchmarkDenialRoundTrip measures what a denied syscall costs the
// workload with the agent answering: ns/denial is the mean round trip,
// added-ns/denial subtracts the same syscall without a filter. "folded" is
// a hot loop with the node defaults, "unfolded" writes a record per denial,
// "isolated" pauses between denials so each meets an idle agent.
func BenchmarkDenialRoundTrip(b *testing.B) {
	requireNotify(b)
	for _, bc := range []struct {
		name string
		opt  StormOptions
	}{
		{"folded", StormOptions{}},
		{"unfolded", StormOptions{Window: -1}},
		{"isolated", StormOptions{Pause: 100 * time.Microsecond}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r, err := Storm(b.N, bc.opt)
			if err != nil {
				b.Fatal(err)
			}
			if r.Lost != 0 {
				b.Errorf("%d denials unaccounted", r.Lost)
			}
			b.ReportMetric(float64(r.Latency.Nanoseconds()), "ns/denial")
			b.ReportMetric(float64((r.Latency - r.Baseline).Nanoseconds()), "added-ns/denial")
			b.ReportMetric(float64(r.P50.Nanoseconds()), "p50-ns/denial")
			b.ReportMetric(float64(r.P99.Nanoseconds()), "p99-ns/denial")
			b.ReportMetric(float64(r.CPUPer100k().Microseconds()), "agent-cpu-µs/100k")
			b.ReportMetric(r.Rate, "denials/s")
		})
	}
}
