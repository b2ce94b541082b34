// Package seccomp generates the seccomp profile stockade applies to every
// container. It is a pure function of the container's OCI spec and a small
// Policy: Generate(spec, policy) returns a runtime-spec LinuxSeccomp that
// runc's libcontainer loads. Compile (cgo and the seccomp build tag) turns a
// profile into the classic-BPF program runc would load, for tests and checks.
//
// # Baseline
//
// The baseline is containerd's RuntimeDefault minus a hardening layer; it
// never allows a call RuntimeDefault denies (a test compiles both with
// libseccomp and runs every syscall libseccomp knows through both filters).
// It is Go data (baseline.go): an always-allowed list grouped by purpose,
// capability-conditioned groups read from the spec's bounding, inheritable
// and ambient capability sets, and argument-conditioned syscalls. It knows
// x86_64 with x86 and x32, and aarch64 with arm.
//
// # ABIs
//
// The filter covers the native ABI (x86_64, aarch64) only, unless the
// node turns compat ABIs on (Policy.CompatABIs: "x86", "x32" on amd64,
// "arm" on arm64). Compat syscall entry points are a classic kernel attack
// surface that almost no container image needs, and every covered ABI
// multiplies libseccomp's compile work, paid in each container's init: the
// baseline compiles and loads in 5-8 ms for x86_64 alone, 100-150 ms with
// x86 and x32. A call through an ABI the filter does not cover gets
// libseccomp's bad-architecture action, SCMP_ACT_KILL_THREAD (runc v1.5.2
// never sets another, and its ENOSYS stub only handles the architectures in
// the profile): the thread dies with SIGSYS, and the kernel audits it
// (type=1326, sig=31, the compat arch) whatever the filter's flags. It
// cannot be a denial record: the bad-architecture action is not settable
// through runc, so it cannot be SCMP_ACT_NOTIFY. The rules are the same
// whatever ABIs are covered.
//
// # Hardening beyond RuntimeDefault
//
//   - Hard-denied for every container, whatever its capabilities or pod
//     profile: io_uring_setup/enter/register, userfaultfd, add_key/keyctl/
//     request_key, kexec_load/kexec_file_load, modify_ldt, and
//     socket(AF_ALG) and socket(AF_VSOCK) (32-bit x86 programs can still
//     reach any family through socketcall, whose arguments seccomp cannot
//     read; RuntimeDefault allows it too, as 32-bit libcs need it). Enforce
//     mode fails them with EPERM; complain mode, like every other denial,
//     lets them run and logs them (see Modes).
//   - clone3 always fails with ENOSYS, so libcs fall back to clone, whose
//     flags seccomp can read (RuntimeDefault allows clone3 with
//     CAP_SYS_ADMIN).
//   - ptrace, process_vm_readv/writev need CAP_SYS_PTRACE (RuntimeDefault
//     allows them to everyone on kernels >= 4.8), like kcmp, pidfd_getfd and
//     process_madvise.
//   - socket: AF_PACKET and AF_XDP need CAP_NET_RAW; the legacy and hardware
//     families (X.25, AX.25, DECnet, RDS, TIPC, CAN, Bluetooth, ...) need
//     CAP_NET_ADMIN; families from AF_MAX up are denied.
//   - As in RuntimeDefault: namespace-creating clone flags, unshare, setns,
//     mount and the new mount API (fsopen, fsconfig, fsmount, move_mount,
//     open_tree, ...) need CAP_SYS_ADMIN; bpf needs CAP_BPF or
//     CAP_SYS_ADMIN, perf_event_open CAP_PERFMON or CAP_SYS_ADMIN;
//     personality is limited to the Linux execution domains.
//
// # Rule shape
//
// The default action is SCMP_ACT_ERRNO with ENOSYS: a syscall the profile
// does not know (libseccomp learns new names over time) fails as if the
// kernel lacked it, which libcs handle. Every syscall the profile knows and
// denies is denied by an explicit rule instead, so denial streaming can turn
// exactly those rules into SCMP_ACT_NOTIFY (IsExplicitDeny tells them apart):
//
//   - enforced denial: SCMP_ACT_ERRNO with errnoRet 1 (EPERM);
//   - complain-mode denial: SCMP_ACT_LOG;
//   - clone3: SCMP_ACT_ERRNO with errnoRet 38 (ENOSYS) — not a denial.
//
// Argument-conditioned syscalls (clone, socket, personality, and whatever a
// pod profile conditions) get allow rules and deny rules that are disjoint
// and together cover every call, because libseccomp rejects a syscall with
// both unconditional and conditional rules and orders overlapping rules
// arbitrarily. Deny rules share one action, so they may overlap one
// another: where a cover of two-bit cubes ("bit b set, bit c clear") is
// shorter than the exact partition it is used (personality: 32 rules
// instead of 61). Every comparison is written so that libseccomp's dropping of
// the upper 32 bits on 32-bit ABIs keeps its meaning; a call whose argument
// has a non-zero upper half is denied (SCMP_CMP_GT 0xffffffff). No rule
// ever denies a syscall runc's init makes after loading the filter.
//
// The profile sets SECCOMP_FILTER_FLAG_LOG, so the kernel audits every
// non-allowed result, and SECCOMP_FILTER_FLAG_SPEC_ALLOW, which runc would
// otherwise add itself.
//
// # Modes
//
// Enforce denies with EPERM and logs. Complain turns every denial, hard or
// policy, into SCMP_ACT_LOG: the call runs and is logged, so an operator
// can see everything a workload needs before enforcing. The hard-denied
// set is therefore open in complain mode; complain mode is the operator's
// choice (the node's mode, or a pod's annotation only where the node's
// seccomp.allow_mode_annotation permits it). Hard denials are still
// explicit rules, so denial streaming reports them like any other. The
// clone3 rule stays ERRNO/ENOSYS and the default action stays ENOSYS in
// both modes: a syscall the profile has never reviewed is not allowed by a
// mode meant to observe the reviewed ones, and libcs already cope with
// ENOSYS.
//
// # Pod profiles
//
// A pod's own profile (Kubernetes Localhost) narrows the baseline: a call is
// allowed only if both allow it, with the pod's argument conditions kept.
// Allow-list and deny-list profiles both work; denying rules win over
// allowing rules that overlap them. Argument comparisons are read as the
// kernel reads int arguments, on the low 32 bits: an allowing condition
// never matches an argument whose upper half is set and a denying one always
// does, so "deny ioctl(TIOCSTI)" cannot be bypassed by setting bit 32 (a
// musl program passing a negative int to a conditioned argument is denied).
// A pod profile cannot widen anything, name a notify listener, use
// comparison values above 0xffffffff, expand to more than 1024 conditional
// rules, or deny what runc's init needs; unknown syscall names and malformed
// fields are errors naming the field (syscalls[3].names[1]). Intersecting
// with containerd's RuntimeDefault gives the baseline back unchanged. On
// amd64 a pod that allows socketcall or ipc only for some arguments gets
// them denied outright: libseccomp folds the rules of the calls they carry
// (socket, semop, ...) into theirs on 32-bit x86, and two actions for one
// folded call make the filter unloadable. For the same reason, and because
// a carried call's arguments sit in user memory, a multiplexer is allowed
// on 32-bit x86 only when every call it carries is allowed for every
// argument, and denied whole otherwise: socketcall always (it carries
// socket, whose families are checked), ipc when a pod or recorded profile
// denies one of the System V IPC calls.
//
// On x32 (as on x86 and arm) libseccomp compares only the low halves of
// arguments; for the arguments the baseline checks the kernel uses only
// those too.
package seccomp
