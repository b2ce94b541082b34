// Package denials streams the syscalls a container's seccomp profile denies
// (or, in complain mode, would deny) as attributed records to sinks that
// operators read with `stockade denials`.
//
// # Mechanism: seccomp user notification
//
// The seccomp profile generator writes every syscall the profile denies as an
// explicit rule (ERRNO/EPERM in enforce mode, LOG in complain mode); syscalls
// the profile does not know fall to the default action, ERRNO(ENOSYS). The
// "denials" hooks step rewrites the explicit deny rules to SCMP_ACT_NOTIFY
// and points spec.linux.seccomp.listenerPath at this package's Agent, which
// runs inside the shim. For every container process with a notifying filter
// (the init process and each exec'd process; each has its own filter and so
// its own notify fd) libcontainer, which is the shim itself, connects to the
// listener and sends a specs.ContainerProcessState JSON with the notify fd
// attached (SCM_RIGHTS). The agent serves each fd on its own goroutine, and
// answers the kernel first:
//
//  1. receive the notification (syscall number, arch, args, thread id) with
//     a raw SECCOMP_IOCTL_NOTIF_RECV into a buffer the goroutine owns: no
//     cgo call and no allocation per notification (notif_linux.go);
//  2. decide the answer exactly as the rule did before it was rewritten: an
//     ERRNO/EPERM rule fails the syscall with EPERM, a LOG rule (complain
//     mode) lets the kernel run it (SECCOMP_USER_NOTIF_FLAG_CONTINUE). The
//     hooks step hands the original rules to the agent (WithVerdict), so
//     the answer follows the rule the call matched, whatever mixes of
//     actions a profile (for instance one narrowed by a pod's own) may
//     hold; without them the container's mode decides (enforce → EPERM,
//     complain → continue), and a call no original rule matches fails with
//     EPERM. The last verdict is memoised: a loop repeats one call;
//  3. if the call will be a record of its own (not a repeat folded into an
//     aggregation window), find the thread's comm and exe: cached for a
//     thread denied before (held by a pidfd, so a reused pid is never
//     mistaken for it: no syscall at all), else read from /proc now, while
//     the thread is blocked, and the thread pinned (procs.go). Reading
//     while blocked is what makes the first denial of a program that exits
//     right after it attributable;
//  4. answer (SECCOMP_IOCTL_NOTIF_SEND). Its success proves the thread was
//     alive from notification to answer, so what was read names it; a
//     failed answer is not counted (the thread was interrupted, the call
//     restarts, or it died). The workload runs again;
//  5. only now: refresh cached values older than a second (kept only if
//     the pidfd's thread outlived the read), fold, build the record and
//     offer it to a bounded queue.
//
// Receivers wait in Go's netpoller while a filter is idle (no thread per
// idle container). When a filter sees a burst (burstLen notifications less
// than burstGap apart) its receiver locks itself to its thread and blocks in
// SECCOMP_IOCTL_NOTIF_RECV, which the kernel wakes directly; after busyIdle
// without a notification a watchdog stops it and it returns to the
// netpoller. A blocked RECV ends neither on close nor on a signal (it
// restarts), so a receiver is stopped by swapping its dup of the fd for an
// eventfd and signalling its thread: the restarted ioctl fails at once
// (source_seccomp.go, TestBlockedRecvKernelFacts). Every notify fd gets
// SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (Linux 6.6+), which wakes the
// workload on the agent's CPU and the agent on the workload's.
//
// A delivery goroutine writes queued records to the sinks: JSON lines under
// <dir>/<namespace>_<pod>_<pod-uid>/<container>.log (rotated by size, like
// kubelet's container logs), a warning per record in the shim log, and,
// where configured, syslog and a node agent's datagram socket.
//
// # Exactness
//
// Attribution is exact by construction: a notify fd belongs to one filter,
// and a filter to the processes of one container, registered by container ID
// before the container starts. No pid → container lookup is involved, so pid
// reuse, short-lived processes and pid namespaces cannot misattribute a
// denial. Every denial the workload experiences is accounted: it is in a
// record (whose count says how many syscalls it stands for) or in a gap
// record (whose dropped count says how many were lost). A notification whose
// process was interrupted before the answer (it restarts the syscall and is
// notified again) or died is not counted, since the workload never saw it.
//
// # Cost and back-pressure
//
// A notified syscall is a round trip: the thread sleeps, the agent wakes,
// decides and answers. Measured on a busy 2-vCPU VM (`make bench`, and
// TestStormReal/BenchmarkDenialRoundTrip in stormtest) a denied syscall costs the
// workload about 2.5 µs p50 in-process and 7-8 µs in a container (an
// in-kernel EPERM: 0.1 µs), and the agent sustains 250,000+ denials/s from
// one thread for about 0.2-0.3 s of CPU per 100,000. Only syscalls the
// profile denies pay this; allowed syscalls never leave the kernel.
//
// Repeats of a syscall with the same arguments by the same thread of a
// container within the aggregation window (default 1s) are folded into one
// record per window (they are answered without touching /proc); the first
// occurrence is reported at once. Folding never merges two threads or two
// argument sets into a record naming one of them; past 128 open windows per
// container, further calls fold into one overflow aggregate per syscall
// that counts them and names nobody. Past max_records_per_second records
// (first occurrences and aggregates alike) in a second, a container's
// further calls open counting windows whose aggregates go out once it has
// budget again: a storm writes a bounded number of lines per second even
// with folding off, and every call is still in a count. Workload-controlled
// strings (exe, comm) are cut to 1 KiB with a marker, and the record lists
// the fields cut. The queue never blocks the answering goroutine (it has
// answered already): when it is full the record is dropped and counted,
// and a gap record takes its place when the sinks catch up. A failing sink
// (directory cannot be created, disk full) is logged once, its losses are
// counted, and a gap record is written to it once it works again; the
// workload is never affected.
//
// # Failure modes
//
// If the agent is gone (Close, or the shim died) the kernel fails every
// notified syscall with ENOSYS: the profile still denies, only the reporting
// and the errno change (and in complain mode the syscalls are then denied).
// A signal that interrupts a thread waiting for its answer makes the kernel
// withdraw the notification; the syscall restarts and is notified again.
// Because the generated profile sets SECCOMP_FILTER_FLAG_LOG, the kernel
// also writes an audit record (type=1326, code=0x7fc00000) for every
// notified syscall the agent fails (not for those it lets continue); an
// audit-based source must skip those to avoid counting a denial twice.
//
// If the listener cannot be reached when a container process starts,
// libcontainer fails the start, so the hooks step only rewrites rules after
// the agent accepted the registration. Never rewritten: write (runc refuses
// SCMP_ACT_NOTIFY on it, it sends the fd to the shim with it) and the
// syscalls runc init and the Go runtime may make between loading the filter
// and handing its fd over (a notification then would wait for an agent that
// has no fd yet: the start hangs); they keep their original action.
//
// # Bounds
//
// A workload decides how often it is denied and much of what a record says,
// so everything it can grow is bounded: records' strings (1 KiB each, cut
// with a marker), aggregation windows (128 per container), records per
// second (max_records_per_second per container), threads (receivers on
// threads of their own: at most max(2, GOMAXPROCS) at once, each for a
// burst only), pinned threads (16 pidfds per notify fd), shim-log
// warnings (LogSink: log_per_minute per container, the rest counted in one
// summary line), the file sink (files rotate; pod directories are removed
// a retention after their pod is gone, and max_total_bytes caps the whole
// sink, see retention.go), and lines on a full disk (space is reserved
// before each line, so a reader never sees half a record).
//
// # Trust
//
// Nothing image- or pod-controlled chooses a sink, a path or a limit: those
// come from the node config, and the names in paths are escaped (EscapeName).
// The listener is a filesystem socket (0600, in a 0700 directory), never an
// abstract one, and only accepts peers of the shim's own uid.
//
// # Testing
//
// The agent's logic runs against a fake notification source without root.
// stormtest.Storm and the root-gated tests load a real seccomp filter (one that
// notifies getppid, from notifytest) on a thread or in a re-executed child, hand its fd to the
// agent exactly as libcontainer does, and account for every denial.
package denials
