//go:build cgo && seccomp

package denials

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/cri"
	"github.com/stockade-dev/stockade/denial"
	"github.com/stockade-dev/stockade/shim/denials/notifytest"
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
	fd, err := notifytest.LoadNotifyFilter(unix.SYS_GETPPID)
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
	err = notifytest.SendProcessState(os.Getenv(childSocket), st, fd)
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
	notifytest.Require(t)
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
	if d, g, err := notifytest.SumDir(dir); err != nil || d+g != calls {
		t.Errorf("file sink accounts %d + %d (%v), want %d", d, g, err, calls)
	}
}

func TestNotifyEndToEndComplain(t *testing.T) {
	notifytest.Require(t)
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
	notifytest.Require(t)
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
	notifytest.Require(t)
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
		fd, err := notifytest.LoadNotifyFilter(unix.SYS_GETPPID)
		if err != nil {
			r.err = err
			return
		}
		st := &specs.ContainerProcessState{Fds: []string{specs.SeccompFdName}, State: specs.State{ID: "ctr-gone"}}
		r.err = notifytest.SendProcessState(a.ListenerPath(), st, fd)
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
