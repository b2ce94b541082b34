package denials

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/denial"
)

// DefaultSocketDir is where agent sockets go when the shim names none. It is
// short on purpose: sun_path holds 107 bytes, which bundle paths overrun.
const DefaultSocketDir = "/run/stockade/denials"

// maxSocketPath is sizeof(sun_path) minus the terminating NUL.
const maxSocketPath = 107

// ErrClosed is returned by Register after Close.
var ErrClosed = errors.New("denial agent closed")

// SocketPath returns a listener path under dir that is unique per id (the
// shim's ID, say) and short enough for a unix socket whatever id's length.
func SocketPath(dir, id string) string {
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(dir, hex.EncodeToString(sum[:12])+".sock")
}

// Option configures an Agent.
type Option func(*options)

type options struct {
	ctx        context.Context
	socketPath string
	sinks      []Sink
	readProc   func(pid int) (comm, exe string)
	now        func() time.Time
	recv       receiverOptions
}

// withClock replaces time.Now (tests).
func withClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// withReceiver sets how notify fds are received.
func withReceiver(r receiverOptions) Option { return func(o *options) { o.recv = r } }

// WithReceiver sets how the agent waits for notifications, for
// measurements that compare the ways (stormtest): "" or "adaptive" (the
// default: the netpoller when idle, a thread of its own in a burst),
// "poller" (always the netpoller) or "thread" (always its own thread);
// noSyncWakeUp leaves SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP off.
func WithReceiver(mode string, noSyncWakeUp bool) (Option, error) {
	var m int
	switch mode {
	case "", "adaptive":
		m = receiveAdaptive
	case "poller":
		m = receivePoller
	case "thread":
		m = receiveThread
	default:
		return nil, fmt.Errorf("unknown receiver %q (adaptive, poller, thread)", mode)
	}
	return withReceiver(receiverOptions{mode: m, noSyncWakeUp: noSyncWakeUp}), nil
}

// WithContext sets the context whose logger (log.G) the agent uses.
func WithContext(ctx context.Context) Option { return func(o *options) { o.ctx = ctx } }

// WithSocketPath sets the listener socket path (libcontainer connects to it).
func WithSocketPath(path string) Option { return func(o *options) { o.socketPath = path } }

// WithSinks replaces the sinks the config would build (file, log, syslog,
// socket) by the given ones.
func WithSinks(s ...Sink) Option { return func(o *options) { o.sinks = s } }

// RegisterOptions are the optional parts of a registration.
type RegisterOptions struct {
	// Verdict, when set, answers notifications instead of the mode alone.
	Verdict denial.Verdict
}

// RegisterOption sets a RegisterOptions field.
type RegisterOption func(*RegisterOptions)

// WithVerdict makes the agent answer by v instead of by mode alone. A
// profile can mix rules that deny in every mode with rules that only log in
// complain mode; only the original rule knows which answer is right.
func WithVerdict(v denial.Verdict) RegisterOption { return func(o *RegisterOptions) { o.Verdict = v } }

// registration is what the shim told the agent about one container.
type registration struct {
	id      string
	attr    denial.Attribution
	mode    string
	profile string
	verdict denial.Verdict
}

// answer decides the errno for a notification: 0 means let it run.
func (r *registration) answer(n notification) syscall.Errno {
	if r.verdict != nil {
		if errno, ok := r.verdict(n.syscall, n.args); ok {
			return errno
		}
		return unix.EPERM
	}
	if r.mode == denial.ModeComplain {
		return 0
	}
	return unix.EPERM
}

// Agent is the in-shim seccomp agent. libcontainer hands it one notify fd
// per container process (init and every exec) over ListenerPath; the agent
// answers each notified syscall as the rule it came from would have (see
// denial.Verdict) and turns it into a record for the sinks.
type Agent struct {
	cfg  config.Denials
	node string
	ctx  context.Context
	path string
	ln   *net.UnixListener

	agg   *aggregator
	pipe  *pipeline
	stats counters

	readProc func(pid int) (comm, exe string)
	now      func() time.Time
	// newProcs makes a receiver's comm/exe cache; tests replace it.
	newProcs func() *procCache

	// recv is how sources receive; threads counts receivers on threads
	// of their own.
	recv    receiverOptions
	threads atomic.Int32

	mu      sync.Mutex
	closed  bool
	regs    map[string]*registration
	sources map[source]struct{}
	serving sync.WaitGroup

	stop     chan struct{}
	loopsEnd sync.WaitGroup
}

// New starts an agent listening on a filesystem unix socket (mode 0600 in a
// 0700 directory; never an abstract socket, which any process in the host
// network namespace could reach). New does not look at cfg.Enabled: the
// shim decides whether to run an agent at all.
func New(cfg config.Denials, node string, opts ...Option) (*Agent, error) {
	o := options{ctx: context.Background(), readProc: readProc, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.socketPath == "" {
		o.socketPath = SocketPath(DefaultSocketDir, strconv.Itoa(os.Getpid()))
	}
	if len(o.socketPath) > maxSocketPath {
		return nil, fmt.Errorf("denial agent socket %s: longer than %d bytes", o.socketPath, maxSocketPath)
	}
	if cfg.QueueSize < 1 {
		cfg.QueueSize = config.DefaultDenialsQueueSize
	}
	sinks := o.sinks
	if sinks == nil {
		fileSink := NewFileSink(cfg.Dir, cfg.MaxFileBytes, cfg.MaxFiles).Bound(cfg.RetentionPeriod(), cfg.MaxTotalBytes, o.now)
		sinks = []Sink{fileSink, NewLogSink(o.ctx, cfg.LogPerMinute)}
		if cfg.Syslog {
			sinks = append(sinks, NewSyslogSink())
		}
		if cfg.Socket != "" {
			sinks = append(sinks, NewDatagramSink(cfg.Socket))
		}
	}
	ln, err := listen(o.socketPath)
	if err != nil {
		return nil, err
	}
	// Sockets of shims killed before they could unlink theirs.
	if n, err := sweepStale(filepath.Dir(o.socketPath), o.socketPath, "/proc/net/unix", time.Now()); err != nil {
		log.G(o.ctx).WithError(err).Debug("denial agent: sweep stale sockets")
	} else if n > 0 {
		log.G(o.ctx).WithField("removed", n).Info("denial agent: removed sockets of shims that are gone")
	}
	a := &Agent{
		cfg:      cfg,
		node:     node,
		ctx:      o.ctx,
		path:     o.socketPath,
		ln:       ln,
		agg:      newAggregator(cfg.Window(), cfg.MaxRecordsPerSecond),
		readProc: o.readProc,
		now:      o.now,
		regs:     make(map[string]*registration),
		sources:  make(map[source]struct{}),
		stop:     make(chan struct{}),
		recv:     o.recv,
	}
	a.newProcs = func() *procCache { return newProcCache(a.readProc, a.now) }
	a.recv.threads = &a.threads
	a.recv.bursts = &a.stats.bursts
	if a.recv.maxThreads <= 0 {
		// Receivers on threads of their own block in RECV, holding no P;
		// a few more than there are Ps serve concurrent bursts.
		a.recv.maxThreads = int32(max(2, runtime.GOMAXPROCS(0)))
	}
	a.pipe = newPipeline(o.ctx, cfg.QueueSize, sinks, &a.stats)
	a.loopsEnd.Add(3)
	go a.acceptLoop()
	go a.flushLoop()
	go a.sweepLoop(sinks)
	return a, nil
}

// sweeper is a sink with retention (FileSink).
type sweeper interface {
	Sweep() (SweepStats, error)
}

// holder is a sink that tracks which pods are alive (FileSink).
type holder interface {
	Hold(a denial.Attribution)
}

// sweepLoop sweeps the sinks at start (the pods of shims long gone) and
// then every sweepInterval. Every shim on the node does this; the sweeps
// lock what they remove, so they never race each other or a writer.
func (a *Agent) sweepLoop(sinks []Sink) {
	defer a.loopsEnd.Done()
	var sw []sweeper
	for _, s := range sinks {
		if x, ok := s.(sweeper); ok {
			sw = append(sw, x)
		}
	}
	if len(sw) == 0 || a.cfg.RetentionPeriod() <= 0 && a.cfg.MaxTotalBytes <= 0 {
		return
	}
	tick := time.NewTicker(sweepInterval(a.cfg.RetentionPeriod()))
	defer tick.Stop()
	for {
		for _, s := range sw {
			st, err := s.Sweep()
			if err != nil {
				log.G(a.ctx).WithError(err).Warn("denial sink sweep")
			}
			if st.Pods > 0 || st.Files > 0 {
				log.G(a.ctx).WithFields(log.Fields{"pods": st.Pods, "files": st.Files, "bytes": st.Bytes, "total": st.Total}).Info("denial sink swept")
			}
		}
		select {
		case <-a.stop:
			return
		case <-tick.C:
		}
	}
}

// listen creates the socket, replacing a stale one left by a crashed shim.
func listen(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("failed to create denial agent socket directory: %w", err)
	}
	if st, err := os.Lstat(path); err == nil && st.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("failed to listen on denial agent socket %s: %w", path, err)
	}
	// The directory already keeps others out; the mode is belt and braces.
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("failed to restrict denial agent socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	return ln, nil
}

// ListenerPath is the socket libcontainer must send notify fds to
// (spec.Linux.Seccomp.ListenerPath).
func (a *Agent) ListenerPath() string { return a.path }

// Register tells the agent who containerID is and how to answer its
// notified syscalls: mode denial.ModeEnforce fails them with EPERM, denial.ModeComplain
// lets them run, unless WithVerdict gives a per-rule answer. profile names
// the seccomp profile, for the records. Call it before the container's
// process starts, so its first syscall is attributed; registering an ID
// again replaces the registration for fds handed over from then on.
func (a *Agent) Register(containerID string, attr denial.Attribution, mode, profile string, opts ...RegisterOption) error {
	if containerID == "" {
		return fmt.Errorf("denial agent: empty container ID")
	}
	if mode != denial.ModeEnforce && mode != denial.ModeComplain {
		return fmt.Errorf("denial agent: unknown mode %q for container %s", mode, containerID)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	var o RegisterOptions
	for _, opt := range opts {
		opt(&o)
	}
	old := a.regs[containerID]
	a.regs[containerID] = &registration{id: containerID, attr: attr, mode: mode, profile: profile, verdict: o.Verdict}
	// The pod is alive while one of its containers is registered: sinks
	// with retention must not sweep it. Re-registering holds once.
	if old == nil || old.attr != attr {
		a.pipe.hold(attr)
		if old != nil {
			a.pipe.release(old.attr)
		}
	}
	return nil
}

// Unregister forgets a container: what its open aggregation windows hold is
// emitted now, and the sinks release its files once its records are out.
// Notify fds still open for it (a process that outlived the container's
// deletion) keep being answered with the registration they started with.
func (a *Agent) Unregister(containerID string) {
	a.mu.Lock()
	reg := a.regs[containerID]
	delete(a.regs, containerID)
	a.mu.Unlock()
	for _, r := range a.agg.forget(containerID) {
		a.pipe.emit(r)
	}
	a.pipe.forget(containerID)
	if reg != nil {
		a.pipe.release(reg.attr)
	}
}

// Stats returns a snapshot of the agent's counters.
func (a *Agent) Stats() Stats {
	s := a.stats.snapshot()
	s.ThreadReceivers = int(a.threads.Load())
	return s
}

// Close stops the agent: no more fds are accepted, every notify fd is closed
// (from then on the kernel fails the notified syscalls of those containers
// with ENOSYS: still denied, but no longer reported), pending aggregates are
// emitted and the queue is drained into the sinks.
func (a *Agent) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	srcs := make([]source, 0, len(a.sources))
	for s := range a.sources {
		srcs = append(srcs, s)
	}
	a.mu.Unlock()

	err := a.ln.Close()
	close(a.stop)
	for _, s := range srcs {
		_ = s.close()
	}
	a.serving.Wait()
	a.loopsEnd.Wait()
	for _, r := range a.agg.flushAll() {
		a.pipe.emit(r)
	}
	a.pipe.close()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("failed to close denial agent socket: %w", err)
	}
	return nil
}

// flushLoop emits aggregates whose window ended. The tick is a tenth of the
// window, so an aggregate is at most that late.
func (a *Agent) flushLoop() {
	defer a.loopsEnd.Done()
	w := a.cfg.Window()
	if !a.agg.active() {
		return
	}
	every := 100 * time.Millisecond
	if w > 0 {
		every = min(max(w/10, 5*time.Millisecond), every)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-tick.C:
			for _, r := range a.agg.due(a.now()) {
				a.pipe.emit(r)
			}
		}
	}
}

// serve answers the notifications of one source until its filter is gone.
func (a *Agent) serve(reg *registration, src source) bool {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		_ = src.close()
		return false
	}
	a.sources[src] = struct{}{}
	a.serving.Add(1)
	a.mu.Unlock()
	go func() {
		rc := &receiver{reg: reg, src: src, procs: a.newProcs()}
		defer a.serving.Done()
		defer func() {
			a.mu.Lock()
			delete(a.sources, src)
			a.mu.Unlock()
			_ = src.close()
			rc.procs.closeAll()
		}()
		for {
			n, err := src.receive()
			if err != nil {
				if !errors.Is(err, errSourceDone) {
					log.G(a.ctx).WithError(err).WithField("container_id", reg.id).Warn("stopped serving seccomp notifications")
				}
				return
			}
			a.handle(rc, n)
		}
	}()
	return true
}

// receiver is the state of one source's serving goroutine.
type receiver struct {
	reg   *registration
	src   source
	procs *procCache
	// memo is the last verdict: a loop repeats one call with the same
	// arguments, and a verdict may have to evaluate argument rules.
	memo struct {
		ok    bool
		nr    int
		arch  string
		args  [6]uint64
		errno syscall.Errno
	}
}

// answer is reg.answer with the memo in front.
func (rc *receiver) answer(n notification) syscall.Errno {
	m := &rc.memo
	if m.ok && m.nr == n.nr && m.arch == n.arch && m.args == n.args {
		return m.errno
	}
	m.ok, m.nr, m.arch, m.args = true, n.nr, n.arch, n.args
	m.errno = rc.reg.answer(n)
	return m.errno
}

// handle answers one notification and produces its record. The kernel is
// answered as soon as it can be: while the thread waits, only its verdict
// is computed and, when the notification will be a record of its own (not
// a repeat folded into a window), its comm and exe are looked up in the
// receiver's procCache, which reads /proc only the first time a thread is
// denied (the one moment they are certain to be readable: a program denied
// once often exits right after). The answer's success proves the thread
// was alive from notification to answer, so what was read names it.
// Everything else (refreshing stale values, folding, the record, the
// queue) comes after the answer: the sinks never delay a workload.
//
// A notification the kernel no longer accepts an answer for is not counted:
// its process was interrupted by a signal (the syscall restarts and is
// notified again) or died, so the workload never saw that denial.
func (a *Agent) handle(rc *receiver, n notification) {
	reg, src := rc.reg, rc.src
	a.stats.notifications.Add(1)
	errno := rc.answer(n)
	now := a.now()
	// The answer is part of the key: with per-rule verdicts one syscall can
	// be denied for some arguments and only logged for others. The pid and
	// the arguments are too: folding must never merge two processes or two
	// argument sets into a record that names only one of them.
	key := aggKey{containerID: reg.id, arch: n.arch, nr: n.nr, errno: errno, pid: n.pid, args: n.args}
	fold, comm, exe := a.agg.folds(key, now)
	if !fold {
		var ok bool
		if comm, exe, ok = rc.procs.lookup(n.pid); !ok {
			comm, exe = rc.procs.pin(n.pid)
		}
	}
	if err := src.respond(n.id, errno); err != nil {
		a.stats.responseErrs.Add(1)
		rc.procs.refused(n.pid)
		return
	}
	// Answered: the workload runs again. Everything below is bookkeeping.
	if !fold {
		comm, exe = rc.procs.answered(n.pid, comm, exe)
	}
	action := ActionDenied
	if errno == 0 {
		action = ActionAllowed
	}
	if isRuntimeProbe(n, comm) {
		a.stats.runtimeProbes.Add(1)
		return
	}
	// The window keeps comm and exe for the repeats; keep them bounded
	// there too (the record's own copy is cut, and flagged, below).
	wcomm, _ := truncateField(comm)
	wexe, _ := truncateField(exe)
	key, res := a.agg.observe(key, now, wcomm, wexe)
	if res == obsFolded {
		a.stats.folded.Add(1)
		return
	}
	r := &Record{
		Time:      now,
		Pid:       n.pid,
		Comm:      comm,
		Exe:       exe,
		Syscall:   n.syscall,
		SyscallNr: n.nr,
		Arch:      n.arch,
		Args:      hexArgs(n.args),
		Action:    action,
		Errno:     errnoName(errno),
		Mode:      reg.mode,
		Profile:   reg.profile,
		Count:     1,
	}
	r.setAttribution(a.node, reg.id, reg.attr)
	r.truncateFields()
	if res == obsSuppressed {
		// Over the container's rate limit: counted in its window, whose
		// aggregate will carry this record's attribution.
		a.stats.rateLimited.Add(1)
		a.agg.setTemplate(key, r)
		return
	}
	a.pipe.emit(r)
	a.agg.setTemplate(key, r)
}

// Report files a record that another denial source (AppArmor's audit
// records) made for containerID: it gets the container's attribution and
// sequence number and goes through the same queue and sinks as the
// agent's own. It reports false, filing nothing, when containerID is not
// registered.
func (a *Agent) Report(containerID string, r *Record) bool {
	reg := a.registration(containerID)
	if reg == nil {
		return false
	}
	// The same folding and rate limit as seccomp denials: a container
	// writing to a denied path in a loop must not flood the sink. The key
	// stands in for (arch, nr, args): the operation, and a hash of what it
	// named in place of the arguments, per process (so that past the
	// window bound, one overflow window per operation takes the rest).
	now := a.now()
	key := aggKey{containerID: reg.id, arch: r.Source + ":" + r.Operation, errno: syscall.EACCES,
		pid: r.Pid, args: [6]uint64{reportKey(r)}}
	key, res := a.agg.observe(key, now, r.Comm, r.Exe)
	if res == obsFolded {
		a.stats.folded.Add(1)
		return true
	}
	r.setAttribution(a.node, reg.id, reg.attr)
	r.truncateFields()
	if res == obsSuppressed {
		a.stats.rateLimited.Add(1)
		a.agg.setTemplate(key, r)
		return true
	}
	a.pipe.emit(r)
	a.agg.setTemplate(key, r)
	return true
}

// reportKey folds what a reported denial named (path, capability, denied
// permissions) into the number an aggregation key holds.
func reportKey(r *Record) uint64 {
	h := fnv.New32a()
	for _, s := range []string{r.Path, r.Capability, r.DeniedMask} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return uint64(h.Sum32())
}

// registration returns the registration of id, or nil.
func (a *Agent) registration(id string) *registration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.regs[id]
}
