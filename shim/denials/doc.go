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
// attached (SCM_RIGHTS). The agent serves each fd on its own goroutine:
//
//  1. receive the notification (syscall number, arch, args, thread id);
//  2. read /proc/<pid>/comm and /proc/<pid>/exe while the thread is blocked,
//     then check the notification is still valid, so a pid that died and was
//     reused meanwhile is never attributed (comm and exe stay empty instead);
//  3. answer exactly as the rule did before it was rewritten: an ERRNO/EPERM
//     rule fails the syscall with EPERM, a LOG rule (complain mode) lets the
//     kernel run it (SECCOMP_USER_NOTIF_FLAG_CONTINUE). The hooks step hands
//     the original rules to the agent (WithVerdict), so the answer follows
//     the rule the call matched, whatever mixes of actions a profile (for
//     instance one narrowed by a pod's own) may hold; without them the
//     container's mode decides (enforce → EPERM, complain → continue), and
//     a call no original rule matches fails with EPERM;
//  4. only then build the record and offer it to a bounded queue.
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
// reads and answers. Measured on a busy 2-vCPU VM (BenchmarkDenialRoundTrip)
// this adds about 8-20 µs per denied syscall with the default folding, about
// 13 µs for an isolated denial, and 25-30 µs when every denial is written
// as its own record (a plain getppid takes about 0.2 µs): some 40 000 to
// 130 000 denials per second for one hot thread. Only syscalls the profile
// denies pay this, and a working program makes them rarely; allowed
// syscalls never leave the kernel. Repeats of a syscall with the same
// arguments by the same thread of a container within the aggregation
// window (default 1s) are folded into one record per window (they are
// answered without touching /proc); the first occurrence is reported at
// once. Folding never merges two threads or two argument sets into a record
// naming one of them; past 128 open windows per container, further calls
// fold into one overflow aggregate per syscall that counts them and names
// nobody. Workload-controlled strings (exe, comm) are cut to 1 KiB with a
// marker, and the record lists the fields cut. The queue never blocks
// the answering goroutine: when it is full the record is dropped and
// counted, and a gap record takes its place when the sinks catch up. A
// failing sink (directory cannot be created, disk full) is logged once, its
// losses are counted, and a gap record is written to it once it works
// again; the workload is never affected.
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
// with a marker), aggregation windows (128 per container), shim-log
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
// Storm and the root-gated tests load a real seccomp filter (one that
// notifies getppid) on a thread or in a re-executed child, hand its fd to the
// agent exactly as libcontainer does, and account for every denial.
package denials
