package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	cdseccomp "github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/integration/harness"
)

// The in-place start breakdown watches a container start from outside with
// eight kernel tracepoints in a private tracefs instance (so the global
// trace buffer and other users of ftrace are untouched): process and thread
// creation (sched_process_fork), exec (sched_process_exec), and entry and
// exit of seccomp(2), prctl(2) (a filter without flags is loaded with
// PR_SET_SECCOMP) and openat(2) (runc's init blocks in openat on its exec
// FIFO until Start, and opens /proc/self/fd just before it compiles the
// filter). Nothing in the shim or runc changes and nothing is
// added to their start path; the kernel records a few dozen events per
// container. The timestamps use CLOCK_MONOTONIC (trace_clock mono), which
// the benchmark reads too, so the client's request times line up with them.

const tracefs = "/sys/kernel/tracing"

// traceDumpEnv names a directory to write every sample's raw trace to.
const traceDumpEnv = "STOCKADE_BENCH_TRACE_DUMP"

// traceEvents are the tracepoints the breakdown needs.
var traceEvents = []string{
	"sched/sched_process_fork", "sched/sched_process_exec",
	"syscalls/sys_enter_seccomp", "syscalls/sys_exit_seccomp",
	"syscalls/sys_enter_openat", "syscalls/sys_exit_openat",
	"syscalls/sys_enter_prctl", "syscalls/sys_exit_prctl",
}

// tracer is one tracefs instance.
type tracer struct{ dir string }

func newTracer() (*tracer, error) {
	if _, err := os.Stat(filepath.Join(tracefs, "instances")); err != nil {
		// tracefs is not mounted here: mount it, as perf and trace-cmd do.
		if err := unix.Mount("nodev", tracefs, "tracefs", 0, ""); err != nil {
			return nil, fmt.Errorf("tracefs at %s: %w", tracefs, err)
		}
	}
	dir := filepath.Join(tracefs, "instances", fmt.Sprintf("stockade-bench-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tracefs instance: %w", err)
	}
	t := &tracer{dir: dir}
	set := func(file, val string) error {
		return os.WriteFile(filepath.Join(dir, file), []byte(val), 0o600)
	}
	if err := set("trace_clock", "mono"); err != nil {
		t.close()
		return nil, fmt.Errorf("trace_clock mono: %w", err)
	}
	_ = set("buffer_size_kb", "4096")
	for _, e := range traceEvents {
		if err := set(filepath.Join("events", e, "enable"), "1"); err != nil {
			t.close()
			return nil, fmt.Errorf("tracepoint %s: %w", e, err)
		}
	}
	if err := set("tracing_on", "1"); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// reset empties the instance's buffer.
func (t *tracer) reset() error {
	f, err := os.OpenFile(filepath.Join(t.dir, "trace"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

func (t *tracer) read() ([]traceEvent, error) {
	f, err := os.Open(filepath.Join(t.dir, "trace"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []traceEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if e, ok := parseTraceLine(sc.Text()); ok {
			out = append(out, e)
		}
	}
	return out, sc.Err()
}

func (t *tracer) close() {
	_ = os.WriteFile(filepath.Join(t.dir, "tracing_on"), []byte("0"), 0o600)
	// Removing an instance frees its buffers; it fails while a reader
	// holds a file open, which nothing here does past read.
	_ = os.Remove(t.dir)
}

// traceEvent is one line of the trace.
type traceEvent struct {
	tid  int
	at   time.Duration // CLOCK_MONOTONIC
	kind string        // "fork", "exec", "seccomp_enter", "seccomp_exit", "openat_enter", "openat_exit"
	// fork: child; exec: filename; seccomp_enter: op and uargs.
	child    int
	filename string
	op, args uint64
}

// traceLine matches "<comm>-<tid> [cpu] <flags> <secs.usecs>: <rest>"; the
// flags column depends on tracefs options and comm may hold '-' or spaces.
var traceLine = regexp.MustCompile(`^\s*(.*)-(\d+)\s+\[\d+\]\s+(?:\S+\s+)?(\d+)\.(\d+):\s+(.*)$`)

func parseTraceLine(line string) (traceEvent, bool) {
	m := traceLine.FindStringSubmatch(line)
	if m == nil {
		return traceEvent{}, false
	}
	tid, _ := strconv.Atoi(m[2])
	secs, _ := strconv.ParseInt(m[3], 10, 64)
	frac := m[4]
	usecs, _ := strconv.ParseInt((frac + "000000")[:6], 10, 64)
	e := traceEvent{tid: tid, at: time.Duration(secs)*time.Second + time.Duration(usecs)*time.Microsecond}
	rest := m[5]
	field := func(key string) string {
		i := strings.Index(rest, key+"=")
		if i < 0 {
			return ""
		}
		v := rest[i+len(key)+1:]
		if j := strings.IndexByte(v, ' '); j >= 0 {
			v = v[:j]
		}
		return v
	}
	switch {
	case strings.HasPrefix(rest, "sched_process_fork:"):
		e.kind = "fork"
		e.child, _ = strconv.Atoi(field("child_pid"))
	case strings.HasPrefix(rest, "sched_process_exec:"):
		e.kind = "exec"
		e.filename = field("filename")
	case strings.HasPrefix(rest, "sys_seccomp("):
		// sys_seccomp(op: 1, flags: 0xe, uargs: 0x1f0467e9f5b0)
		e.kind = "seccomp_enter"
		hex := func(key string) uint64 {
			i := strings.Index(rest, key+": ")
			if i < 0 {
				return 0
			}
			v := rest[i+len(key)+2:]
			v = v[:strings.IndexAny(v+")", ",)")]
			n, _ := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 64)
			return n
		}
		e.op, e.args = hex("op"), hex("uargs")
	case strings.HasPrefix(rest, "sys_seccomp ->"):
		e.kind = "seccomp_exit"
	case strings.HasPrefix(rest, "sys_prctl("):
		// sys_prctl(option: 0x16, arg2: 2, arg3: 0x..., ...): only
		// PR_SET_SECCOMP with SECCOMP_MODE_FILTER counts, as a load.
		if !strings.HasPrefix(rest, "sys_prctl(option: 0x16, arg2: 2,") && !strings.HasPrefix(rest, "sys_prctl(option: 16, arg2: 2,") {
			e.kind = "prctl_enter"
			return e, true
		}
		e.kind, e.op, e.args = "seccomp_enter", unix.SECCOMP_SET_MODE_FILTER, 1
	case strings.HasPrefix(rest, "sys_prctl ->"):
		e.kind = "prctl_exit"
	case strings.HasPrefix(rest, "sys_openat("):
		e.kind = "openat_enter"
	case strings.HasPrefix(rest, "sys_openat ->"):
		e.kind = "openat_exit"
	default:
		return traceEvent{}, false
	}
	return e, true
}

func monotonic() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

// startTimeline is one traced start, every mark relative to the create
// request; a mark that was not seen is negative.
type startTimeline struct {
	shimExec      time.Duration // the shim daemon's exec (containerd-shim-*)
	initFork      time.Duration // runc init (the first /proc/self/exe) is forked
	containerFork time.Duration // the container's own process is forked
	waitStart     time.Duration // its init blocks on the exec FIFO: created
	started       time.Duration // the FIFO opens: Start reached runc
	compileStart  time.Duration // last openat before the filter: libseccomp compiles
	loadEnter     time.Duration // seccomp(SECCOMP_SET_MODE_FILTER, prog) entered
	loadExit      time.Duration // and returned: the filter is loaded
	createDone    time.Duration // Create returned to the client
	startSent     time.Duration // the client sends Start
	running       time.Duration // Start returned to the client
	exec          time.Duration // the container's process execs the workload
}

// timeline finds the marks of the container whose process is pid.
func timeline(events []traceEvent, pid int, created, createDone, startSent, running time.Duration) (startTimeline, error) {
	tl := startTimeline{shimExec: -1, initFork: -1, containerFork: -1, waitStart: -1, started: -1,
		compileStart: -1, loadEnter: -1, loadExit: -1, exec: -1}
	tl.createDone, tl.startSent, tl.running = createDone-created, startSent-created, running-created
	parent := map[int]int{}
	forkedAt := map[int]time.Duration{}
	execs := map[int][]traceEvent{}
	for _, e := range events {
		switch e.kind {
		case "fork":
			parent[e.child], forkedAt[e.child] = e.tid, e.at
		case "exec":
			execs[e.tid] = append(execs[e.tid], e)
		}
	}
	if _, ok := forkedAt[pid]; !ok {
		return tl, fmt.Errorf("no fork of the container's process %d in the trace", pid)
	}
	tl.containerFork = forkedAt[pid] - created
	// Up the ancestry to the shim daemon (the nearest exec of a
	// containerd-shim binary); the highest ancestor below it that exec'd
	// /proc/self/exe is runc init (libcontainer's, in both runtimes).
	// Go threads are created by other threads, so the chain is long.
	for p, depth := parent[pid], 0; p != 0 && depth < 512; p, depth = parent[p], depth+1 {
		shim := false
		for _, e := range execs[p] {
			switch {
			case strings.Contains(filepath.Base(e.filename), "containerd-shim"):
				tl.shimExec, shim = e.at-created, true
			case e.filename == "/proc/self/exe" || strings.HasPrefix(e.filename, "/proc/self/fd/"):
				if at, ok := forkedAt[p]; ok {
					tl.initFork = at - created
				}
			}
		}
		if shim {
			break
		}
	}
	// The container's threads: every task forked from its process.
	threads := map[int]bool{pid: true}
	for changed := true; changed; {
		changed = false
		for c, p := range parent {
			if threads[p] && !threads[c] {
				threads[c], changed = true, true
			}
		}
	}
	openAt := map[int]time.Duration{}
	var longest time.Duration
	loadTid := -1
	for _, e := range events {
		if !threads[e.tid] {
			continue
		}
		switch {
		case e.kind == "openat_enter" && tl.exec < 0:
			openAt[e.tid] = e.at
		case e.kind == "openat_exit" && tl.exec < 0:
			if t0, ok := openAt[e.tid]; ok {
				// The longest open is the exec FIFO's, which blocks
				// until Start opens the other end.
				if d := e.at - t0; d > longest {
					longest, tl.waitStart, tl.started = d, t0-created, e.at-created
				}
				if tl.loadEnter < 0 {
					tl.compileStart = e.at - created
				}
				delete(openAt, e.tid)
			}
		case e.kind == "seccomp_enter" && e.op == unix.SECCOMP_SET_MODE_FILTER && e.args != 0 && tl.loadEnter < 0:
			// libseccomp's feature probes pass no program (uargs 0).
			tl.loadEnter, loadTid = e.at-created, e.tid
		case (e.kind == "seccomp_exit" || e.kind == "prctl_exit") && e.tid == loadTid && tl.loadEnter >= 0 && tl.loadExit < 0:
			tl.loadExit = e.at - created
		case e.kind == "exec" && e.tid == pid && tl.exec < 0:
			tl.exec = e.at - created
		}
	}
	return tl, nil
}

// tracePhase is one row of the breakdown: the time between two marks.
type tracePhase struct {
	name     string
	from, to func(startTimeline) time.Duration
}

func zero(startTimeline) time.Duration { return 0 }

var tracePhases = []tracePhase{
	{"create request → shim daemon exec'd (containerd starts the shim)",
		zero, func(t startTimeline) time.Duration { return t.shimExec }},
	{"shim daemon exec'd → runc init forked (shim start, Create: spec pipeline and profiles, userns, AppArmor, denial agent, libcontainer create; for runc, the `runc create` process too)",
		func(t startTimeline) time.Duration { return t.shimExec }, func(t startTimeline) time.Duration { return t.initFork }},
	{"runc init forked → container process forked (init exec, sealed exe, nsexec: namespaces, id maps)",
		func(t startTimeline) time.Duration { return t.initFork }, func(t startTimeline) time.Duration { return t.containerFork }},
	{"container process forked → seccomp compile begins (rootfs, mounts, syncs with the shim)",
		func(t startTimeline) time.Duration { return t.containerFork }, func(t startTimeline) time.Duration { return t.compileStart }},
	{"seccomp compile (libseccomp and runc's ENOSYS patch, in the container's init)",
		func(t startTimeline) time.Duration { return t.compileStart }, func(t startTimeline) time.Duration { return t.loadEnter }},
	{"seccomp load (seccomp(2) or prctl(2))",
		func(t startTimeline) time.Duration { return t.loadEnter }, func(t startTimeline) time.Duration { return t.loadExit }},
	{"filter loaded → workload exec'd (stockade: the notify fd handed to the denial agent; Create returns, the client sends Start)",
		func(t startTimeline) time.Duration { return t.loadExit }, func(t startTimeline) time.Duration { return t.exec }},
	{"  of which blocked opening the exec FIFO (waiting for Start)",
		func(t startTimeline) time.Duration { return t.waitStart }, func(t startTimeline) time.Duration { return t.started }},
	{"client: create request → Create returned",
		zero, func(t startTimeline) time.Duration { return t.createDone }},
	{"client: Start sent → Start returned",
		func(t startTimeline) time.Duration { return t.startSent }, func(t startTimeline) time.Duration { return t.running }},
	{"create request → workload exec'd",
		zero, func(t startTimeline) time.Duration { return t.exec }},
}

// startBreakdown (issue 14) traces `run --rm true` on both runtimes,
// interleaved, and reports the time between the marks the kernel sees.
func (b *runner) startBreakdown(ctx context.Context) ([]Metric, error) {
	tr, err := newTracer()
	if err != nil {
		b.notMeasured = append(b.notMeasured, NotMeasured{Name: "start breakdown (tracefs)", Reason: err.Error()})
		return nil, nil
	}
	defer tr.close()
	image, err := b.busybox(ctx)
	if err != nil {
		return nil, err
	}
	n := b.cfg.N
	b.cfg.Logf("start breakdown: %d traced containers per side", n)
	samples := map[string][]startTimeline{}
	cs := b.interleave(ctx, n, func(ctx context.Context, s *side) ([]float64, error) {
		var opts []oci.SpecOpts
		if s.name == harness.HandlerRunc {
			// Like for like: runc loads containerd's RuntimeDefault, as
			// CRI gives pods that ask for it; ctr's default spec has no
			// seccomp at all.
			opts = append(opts, cdseccomp.WithDefaultProfile())
		}
		tl, err := tracedRun(ctx, s.env, image, tr, opts...)
		if err != nil {
			return nil, err
		}
		samples[s.name] = append(samples[s.name], tl)
		return nil, nil
	})
	var metrics []Metric
	for _, ph := range tracePhases {
		per := map[string]*collector{}
		for _, s := range b.sides {
			c := &collector{err: cs[s.name].err}
			for _, tl := range samples[s.name] {
				from, to := ph.from(tl), ph.to(tl)
				if from < 0 || to < 0 {
					continue
				}
				c.samples = append(c.samples, ms(to-from))
			}
			if c.err == nil && len(c.samples) == 0 {
				c.err = errors.New("mark not seen in the trace")
			}
			per[s.name] = c
		}
		metrics = append(metrics, metric("start breakdown (traced, run --rm true)", ph.name, "ms", "runc + containerd RuntimeDefault seccomp", per))
	}
	return append(metrics, b.shimCreatePhases()...), nil
}

// shimCreatePhases reports the steps of the shim's Create for the traced
// containers, as the shim logged them. runc's shim logs no such steps.
func (b *runner) shimCreatePhases() []Metric {
	byClass, err := shimPhases(b.env.LogPath(), func(id, _ string) string {
		if strings.HasPrefix(id, tracePrefix+"-") {
			return "traced"
		}
		return ""
	})
	if err != nil {
		b.notMeasured = append(b.notMeasured, NotMeasured{Name: "shim Create phases", Reason: err.Error()})
		return nil
	}
	return b.phaseMetrics("shim Create phases (shim log, run --rm true)", byClass["traced"])
}

// tracePrefix starts the ids of traced containers.
const tracePrefix = "trace"

// tracedRun runs `true` like runTrue and returns its traced timeline.
func tracedRun(ctx context.Context, env *harness.Env, image client.Image, tr *tracer, opts ...oci.SpecOpts) (_ startTimeline, retErr error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	ctx = namespaces.WithNamespace(ctx, harness.Namespace)
	id := randomID(tracePrefix)
	ctr, err := env.Client.NewContainer(ctx, id,
		env.NewContainerOpts(),
		client.WithImage(image),
		client.WithNewSnapshot(id, image),
		client.WithNewSpec(append([]oci.SpecOpts{oci.WithImageConfig(image), oci.WithProcessArgs("true")}, opts...)...),
	)
	if err != nil {
		return startTimeline{}, fmt.Errorf("create container: %w", err)
	}
	defer cleanupContainer(env, ctr)
	if err := tr.reset(); err != nil {
		return startTimeline{}, err
	}
	created := monotonic()
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		return startTimeline{}, fmt.Errorf("create task: %w", err)
	}
	createDone := monotonic()
	exitCh, err := task.Wait(ctx)
	if err != nil {
		return startTimeline{}, err
	}
	startSent := monotonic()
	if err := task.Start(ctx); err != nil {
		return startTimeline{}, fmt.Errorf("start task: %w", err)
	}
	running := monotonic()
	pid := int(task.Pid())
	select {
	case <-exitCh:
	case <-ctx.Done():
		return startTimeline{}, ctx.Err()
	}
	events, err := tr.read()
	if err != nil {
		return startTimeline{}, err
	}
	if dir := os.Getenv(traceDumpEnv); dir != "" {
		// For checking the marks by eye: the raw trace of every sample.
		raw, _ := os.ReadFile(filepath.Join(tr.dir, "trace"))
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-pid%d-created%d.trace", id, pid, created.Microseconds())), raw, 0o644)
	}
	tl, err := timeline(events, pid, created, createDone, startSent, running)
	if dir := os.Getenv(traceDumpEnv); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-pid%d.timeline", id, pid)), []byte(fmt.Sprintf("%+v\n", tl)), 0o644)
	}
	return tl, err
}
