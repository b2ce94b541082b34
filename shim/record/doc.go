// Package record is record mode's kernel side: it learns which syscalls a
// container's processes make, so that a profile made for the workload can
// be written (see profiles/recorded) and later enforced.
//
// # Mechanism
//
// One eBPF program on the raw tracepoint sys_enter, built in Go with
// cilium/ebpf's assembler (no compiler, no object file), with a hash map
// from cgroup v2 id to a byte per (ABI, syscall number). For every syscall
// on the host it looks up the calling task's cgroup; for a watched one it
// sets the call's byte. Two more checks keep the recording to what the
// profile must allow:
//
//   - the task must be under a seccomp filter (task->seccomp.mode is
//     SECCOMP_MODE_FILTER), which leaves out runc's init setting the
//     container up (mount, pivot_root, ...) before it loads the filter, and
//     keeps everything after: the rest of the init path, the workload,
//     shells, every exec'd program and every "kubectl exec";
//   - the ABI is the kernel's own view of the call: on amd64 TS_COMPAT in
//     the task's thread_info (set on every 32-bit entry, int 0x80 from
//     64-bit code included) means x86 and the x32 bit in the number means
//     x32; on arm64 the AArch32 bit of the saved pstate means arm. Field
//     offsets are read from the kernel's BTF at load time, so nothing is
//     compiled against one kernel's layout.
//
// sys_enter fires after seccomp has run, so a call the filter denies is
// not recorded: it is a denial, and goes to the denial sink as usual. A
// recording is therefore complete for what the baseline allowed: every
// syscall number that entered the kernel at least once.
//
// # Cost
//
// While attached, the tracepoint makes every syscall on the host take the
// kernel's syscall-work slow path and run the program (a cgroup id helper
// and one hash lookup for tasks outside the recording). The program is
// attached only while at least one container of the shim is recorded; make
// bench reports the ratio against enforce mode.
//
// Requirements: cgroup v2 (unified or hybrid, where runc also places the
// container in the unified hierarchy), kernel BTF (/sys/kernel/btf/vmlinux)
// and a kernel with bpf_probe_read_kernel (5.5+). Without them Watch fails
// and the container is not created: a recording that silently records
// nothing would produce a profile that breaks the workload.
package record
