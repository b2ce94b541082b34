package denials

import (
	"errors"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/denial"
)

// fakeSource is a notification source driven by the test.
type fakeSource struct {
	ch     chan notification
	closed chan struct{}
	once   sync.Once

	mu          sync.Mutex
	answers     map[uint64]syscall.Errno
	failRespond map[uint64]bool
}

func newFakeSource() *fakeSource {
	return &fakeSource{
		ch:          make(chan notification, 1024),
		closed:      make(chan struct{}),
		answers:     make(map[uint64]syscall.Errno),
		failRespond: make(map[uint64]bool),
	}
}

func (f *fakeSource) receive() (notification, error) {
	select {
	case n, ok := <-f.ch:
		if !ok {
			return notification{}, errSourceDone
		}
		return n, nil
	case <-f.closed:
		return notification{}, errSourceDone
	}
}

func (f *fakeSource) respond(id uint64, errno syscall.Errno) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failRespond[id] {
		return syscall.ENOENT
	}
	f.answers[id] = errno
	return nil
}

func (f *fakeSource) close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

func (f *fakeSource) answer(id uint64) (syscall.Errno, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.answers[id]
	return e, ok
}

// memSink records what it gets. gate, when set, makes every Write wait for a
// token; fail, when set, decides per record whether the write fails.
type memSink struct {
	mu      sync.Mutex
	recs    []Record
	gate    chan struct{}
	fail    func(r *Record) error
	closed  bool
	release []denial.Attribution
}

func (m *memSink) Name() string { return "mem" }

func (m *memSink) Write(r *Record, line []byte) error {
	if m.gate != nil {
		<-m.gate
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		if err := m.fail(r); err != nil {
			return err
		}
	}
	m.recs = append(m.recs, *r)
	return nil
}

func (m *memSink) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

func (m *memSink) Release(a denial.Attribution) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.release = append(m.release, a)
}

func (m *memSink) records() []Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Record(nil), m.recs...)
}

// account sums what the records stand for: denials in denial records and
// denials in gap records.
func account(recs []Record) (delivered, gapped uint64) {
	for _, r := range recs {
		if r.Type == TypeGap {
			gapped += r.Dropped
		} else {
			delivered += r.Count
		}
	}
	return delivered, gapped
}

var errFull = errors.New("fake: no space left on device")

// testConfig is the node default with a sink under t's temp dir.
func testConfig(t *testing.T) config.Denials {
	cfg := config.Default().Denials
	cfg.Dir = filepath.Join(t.TempDir(), "log")
	return cfg
}

// newTestAgent starts an agent on a short socket path with the given sinks
// and a fake /proc.
func newTestAgent(t *testing.T, cfg config.Denials, sinks ...Sink) *Agent {
	t.Helper()
	return newTestAgentWith(t, cfg, sinks)
}

// newTestAgentWith is newTestAgent with more options.
func newTestAgentWith(t *testing.T, cfg config.Denials, sinks []Sink, opts ...Option) *Agent {
	t.Helper()
	opts = append([]Option{WithSocketPath(filepath.Join(t.TempDir(), "a.sock")), WithSinks(sinks...)}, opts...)
	a, err := New(cfg, "node-1", opts...)
	if err != nil {
		t.Fatal(err)
	}
	a.readProc = func(pid int) (string, string) { return "comm-" + strconv.Itoa(pid), "/bin/exe-" + strconv.Itoa(pid) }
	// The fake pids are not threads of this machine: no pidfds, so /proc
	// is "read" before the answer (the path kernels before 6.9 take).
	// Tests of the pidfd path install their own cache.
	a.newProcs = func() *procCache {
		c := newProcCache(a.readProc, a.now)
		c.open = func(int) (int, error) { return -1, syscall.ENOSYS }
		return c
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// waitFor polls cond for up to 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

var testAttr = denial.Attribution{Namespace: "team-a", Pod: "web-0", PodUID: "0f6c-uid", Container: "app", Image: "registry.example/app:1"}
