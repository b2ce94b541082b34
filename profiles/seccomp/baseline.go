package seccomp

import (
	"strings"

	"golang.org/x/sys/unix"
)

// The baseline starts from containerd's RuntimeDefault (contrib/seccomp) and
// removes from it; it never adds. Names that do not exist on a profile's
// ABI family are dropped when the profile is built, so the lists below mix
// x86-only and arm-only names freely.

// alwaysAllowed is what every container may call. Grouped by purpose so a
// reviewer can see what a workload gets; deviations from RuntimeDefault are
// noted where a name is absent.
var alwaysAllowed = names(
	// Process lifecycle, scheduling and identity. ptrace and process_vm_*
	// are not here (see the CAP_SYS_PTRACE group); clone and personality are
	// argument-conditioned (see conditionals).
	`exit exit_group fork vfork execve execveat wait4 waitid waitpid
	getpid getppid gettid getpgid getpgrp getsid setpgid setsid
	set_tid_address set_robust_list get_robust_list rseq restart_syscall
	sched_yield sched_getaffinity sched_setaffinity sched_getattr sched_setattr
	sched_getparam sched_setparam sched_getscheduler sched_setscheduler
	sched_get_priority_max sched_get_priority_min sched_rr_get_interval
	sched_rr_get_interval_time64 getpriority setpriority ioprio_get ioprio_set
	prctl getcpu membarrier pidfd_open pidfd_send_signal process_mrelease
	kill tkill tgkill seccomp landlock_add_rule landlock_create_ruleset
	landlock_restrict_self capget capset uname sysinfo times getrusage
	getrlimit setrlimit prlimit64 ugetrlimit umask`,
	// Credentials (the kernel checks CAP_SETUID/CAP_SETGID itself).
	`getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32
	getresuid getresuid32 getresgid getresgid32 getgroups getgroups32
	setuid setuid32 setgid setgid32 setreuid setreuid32 setregid setregid32
	setresuid setresuid32 setresgid setresgid32 setgroups setgroups32
	setfsuid setfsuid32 setfsgid setfsgid32`,
	// Signals.
	`rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
	rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo
	sigaltstack sigreturn sigprocmask signalfd signalfd4 pause alarm`,
	// Memory.
	`brk mmap mmap2 munmap mprotect mremap madvise mincore mlock mlock2
	mlockall munlock munlockall msync remap_file_pages memfd_create
	memfd_secret pkey_alloc pkey_free pkey_mprotect map_shadow_stack mseal`,
	// Time and futexes (setting clocks is in the CAP_SYS_TIME group;
	// adjtimex and clock_adjtime only read without it).
	`clock_getres clock_getres_time64 clock_gettime clock_gettime64
	clock_nanosleep clock_nanosleep_time64 nanosleep gettimeofday time
	timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64
	timer_settime timer_settime64 timerfd_create timerfd_gettime
	timerfd_gettime64 timerfd_settime timerfd_settime64 getitimer setitimer
	adjtimex clock_adjtime clock_adjtime64
	futex futex_time64 futex_waitv futex_wait futex_wake futex_requeue`,
	// File descriptors and I/O.
	`open openat openat2 creat close close_range dup dup2 dup3 read readv
	pread64 preadv preadv2 write writev pwrite64 pwritev pwritev2 lseek
	_llseek sendfile sendfile64 splice tee vmsplice copy_file_range readahead
	fadvise64 fadvise64_64 arm_fadvise64_64 fallocate ftruncate ftruncate64
	truncate truncate64 fsync fdatasync sync syncfs sync_file_range
	sync_file_range2 arm_sync_file_range flock fcntl fcntl64 ioctl cachestat`,
	// Paths, metadata and extended attributes. statmount and listmount only
	// read mount information; changing mounts needs CAP_SYS_ADMIN.
	`stat stat64 lstat lstat64 fstat fstat64 fstatat64 newfstatat statx statfs
	statfs64 fstatfs fstatfs64 access faccessat faccessat2 readlink
	readlinkat getcwd chdir fchdir mkdir mkdirat mknod mknodat rmdir rename
	renameat renameat2 link linkat symlink symlinkat unlink unlinkat chmod
	fchmod fchmodat fchmodat2 chown chown32 fchown fchown32 fchownat lchown
	lchown32 utime utimes utimensat utimensat_time64 futimesat getdents
	getdents64 name_to_handle_at statmount listmount
	getxattr lgetxattr fgetxattr getxattrat setxattr lsetxattr fsetxattr
	setxattrat listxattr llistxattr flistxattr listxattrat removexattr
	lremovexattr fremovexattr removexattrat`,
	// Event notification and asynchronous I/O (io_uring is hard-denied).
	`epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait
	epoll_pwait2 epoll_wait epoll_wait_old poll ppoll ppoll_time64 select
	_newselect pselect6 pselect6_time64 eventfd eventfd2 pipe pipe2
	inotify_add_watch inotify_init inotify_init1 inotify_rm_watch
	fanotify_mark io_setup io_destroy io_submit io_cancel io_getevents
	io_pgetevents io_pgetevents_time64`,
	// Sockets (socket itself is argument-conditioned). socketcall and ipc
	// are listed as in RuntimeDefault, but on 32-bit x86 a multiplexer is
	// only allowed when every call it carries is (denyMultiplexers): the
	// carried call's arguments sit behind a pointer seccomp cannot read, so
	// socketcall, which carries socket, is denied on every profile.
	`socketpair bind connect listen accept accept4 getsockname getpeername
	getsockopt setsockopt send sendto sendmsg sendmmsg recv recvfrom recvmsg
	recvmmsg recvmmsg_time64 shutdown socketcall`,
	// System V and POSIX IPC (namespaced per pod).
	`ipc msgctl msgget msgrcv msgsnd semctl semget semop semtimedop
	semtimedop_time64 shmat shmctl shmdt shmget mq_getsetattr mq_notify
	mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
	mq_timedsend_time64 mq_unlink`,
	// Miscellaneous: randomness, LSM self-attributes, uretprobe (the kernel
	// only honours it from its own trampoline).
	`getrandom lsm_get_self_attr lsm_list_modules lsm_set_self_attr uretprobe`,
	// ABI-specific: x86 TLS setup; 32-bit arm TLS and cache maintenance,
	// which arm binaries cannot run without. modify_ldt is hard-denied.
	`arch_prctl set_thread_area get_thread_area set_tls cacheflush breakpoint`,
)

// capGroup is allowed when the container can hold any of caps.
type capGroup struct {
	caps  []string
	names []string
}

// capGroups mirror RuntimeDefault's capability-conditioned groups, except
// that clone/clone3 are handled separately and CAP_SYS_PTRACE also gates
// ptrace and process_vm_readv/writev (see below).
var capGroups = []capGroup{
	{[]string{"CAP_DAC_READ_SEARCH"}, names(`open_by_handle_at`)},
	// The new mount API and namespace entry points. Without CAP_SYS_ADMIN
	// the kernel refuses most of these anyway, but fsconfig and friends
	// have been reachable parsers in recent escapes (CVE-2022-0185), so
	// they are not even reached.
	{[]string{"CAP_SYS_ADMIN"}, names(`fanotify_init fsconfig fsmount fsopen fspick
		lookup_dcookie mount mount_setattr move_mount open_tree quotactl
		quotactl_fd setdomainname sethostname setns umount umount2 unshare`)},
	// bpf and perf_event_open: the verifier and perf have been the most
	// common kernel escalation paths; only workloads granted the capability
	// meant for them (or CAP_SYS_ADMIN) reach them.
	{[]string{"CAP_SYS_ADMIN", "CAP_BPF"}, names(`bpf`)},
	{[]string{"CAP_SYS_ADMIN", "CAP_PERFMON"}, names(`perf_event_open`)},
	{[]string{"CAP_SYS_BOOT"}, names(`reboot`)},
	{[]string{"CAP_SYS_CHROOT"}, names(`chroot`)},
	{[]string{"CAP_SYS_MODULE"}, names(`delete_module init_module finit_module`)},
	{[]string{"CAP_SYS_PACCT"}, names(`acct`)},
	// Cross-process memory and descriptor access. RuntimeDefault allows
	// ptrace and process_vm_* to everyone on kernels >= 4.8; stockade keeps
	// them behind CAP_SYS_PTRACE (as Docker did before 19.03): they let one
	// process in the pod read and rewrite another's memory, ptrace has a
	// record of kernel escalations (CVE-2019-13272), and debugging pods
	// (kubectl debug --profile=general) are granted the capability.
	{[]string{"CAP_SYS_PTRACE"}, names(`kcmp pidfd_getfd process_madvise
		process_vm_readv process_vm_writev ptrace`)},
	{[]string{"CAP_SYS_RAWIO"}, names(`iopl ioperm`)},
	{[]string{"CAP_SYS_TIME"}, names(`settimeofday stime clock_settime clock_settime64`)},
	{[]string{"CAP_SYS_TTY_CONFIG"}, names(`vhangup`)},
	{[]string{"CAP_SYS_NICE"}, names(`get_mempolicy mbind set_mempolicy set_mempolicy_home_node`)},
	{[]string{"CAP_SYSLOG", "CAP_SYS_ADMIN"}, names(`syslog`)},
}

// hardDenied are denied for every container, whatever its capabilities or
// its pod profile. Enforce mode fails them with EPERM; complain mode, like
// every denial, allows and logs them.
// Each is kernel attack surface with a record of container escapes that
// workloads do not need.
var hardDenied = names(
	// io_uring performs file and network operations from kernel workers
	// that seccomp never sees, and has been a steady source of privilege
	// escalations; RuntimeDefault dropped it in 2023.
	`io_uring_setup io_uring_enter io_uring_register`,
	// userfaultfd lets an exploit stall the kernel mid-copy at a chosen
	// page, the standard way to win use-after-free races.
	`userfaultfd`,
	// Kernel keyrings are not namespaced: keys leak across containers and
	// keyctl has had escalations (CVE-2016-0728).
	`add_key keyctl request_key`,
	// Replacing the running kernel is never a container's business.
	`kexec_load kexec_file_load`,
	// Per-process LDTs only serve 16-bit code and sit under several x86
	// entry-code escalations (CVE-2015-5157, CVE-2017-17053).
	`modify_ldt`,
)

// runcCritical are syscalls runc's init (or the Go runtime under it) may
// make after the filter is loaded and before the container process runs.
// They must be allowed unconditionally: a deny rule for them could be
// rewritten to SCMP_ACT_NOTIFY by denial streaming, and a notification
// raised before runc hands the listener to the shim hangs the start. Only
// native-ABI names: runc's init is a native binary, and pod profiles
// recorded on x86_64 rightly omit compat names such as mmap2 or setuid32.
var runcCritical = names(`read write close close_range fcntl futex exit
	exit_group execve setuid setgid setreuid setregid setresuid setresgid
	setgroups capget capset prctl getpid getppid gettid kill tkill tgkill chdir
	fchdir openat newfstatat fstat statx faccessat faccessat2 getdents64 mmap
	munmap mprotect madvise rt_sigaction rt_sigprocmask rt_sigreturn
	sigaltstack sched_yield nanosleep clock_gettime clock_nanosleep epoll_pwait
	epoll_ctl pipe2 getrandom`)

// goThreadClone is the clone(2) flag set the Go runtime uses for new OS
// threads (runtime.cloneFlags); runc's init must be able to start threads
// after the filter is loaded.
const goThreadClone = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES |
	unix.CLONE_SIGHAND | unix.CLONE_SYSVSEM | unix.CLONE_THREAD

// nsFlags are the clone(2) flags that create namespaces. CLONE_NEWTIME
// shares its bit with the exit signal in clone(2) and only works via clone3
// and unshare, which are gated separately.
const nsFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// personality(2) execution domains (not in x/sys/unix).
const (
	perLinux   = 0x0000000
	perLinux32 = 0x0000008
	uname26    = 0x0020000
	perQuery   = 0xffffffff // returns the current persona, changes nothing
)

// conditional is a syscall whose verdict depends on its arguments.
type conditional struct {
	// allowed is the set of calls allowed with the given capabilities.
	allowed func(caps capSet) set
	// hard is the part of the deny region that is hard-denied.
	hard set
}

var conditionals = map[string]conditional{
	// clone with namespace flags is how unprivileged code reaches user
	// namespaces, and with them most of the kernel's CAP_SYS_ADMIN-in-userns
	// attack surface. Only CAP_SYS_ADMIN containers may create namespaces.
	"clone": {allowed: func(caps capSet) set {
		if caps.has("CAP_SYS_ADMIN") {
			return fullSet
		}
		return cubeSet(0, cube{nsFlags, 0})
	}},
	// personality: the execution domains RuntimeDefault allows (Linux,
	// Linux32, UNAME26 and both, and the 0xffffffff query). Everything else,
	// ADDR_NO_RANDOMIZE and READ_IMPLIES_EXEC included, weakens exploit
	// mitigations.
	"personality": {allowed: func(capSet) set {
		return valuesSet(0, perLinux, perLinux32, uname26, perLinux32|uname26, perQuery)
	}},
	// socket: address families by need. AF_ALG (userspace access to the
	// kernel crypto API, a recurring source of kernel bugs) and AF_VSOCK
	// (host/guest transport, global across network namespaces by default)
	// are hard-denied as in RuntimeDefault; families from AF_MAX up are
	// unknown to the profile and denied.
	"socket": {allowed: socketAllowed, hard: valuesSet(0, unix.AF_ALG, unix.AF_VSOCK)},
}

// socketAllowed returns the families a container may create sockets in.
func socketAllowed(caps capSet) set {
	// AF_UNSPEC is allowed so probes get the kernel's EAFNOSUPPORT.
	fams := []uint32{unix.AF_UNSPEC, unix.AF_UNIX, unix.AF_INET, unix.AF_INET6, unix.AF_NETLINK}
	// Raw link-layer sockets: the kernel demands CAP_NET_RAW anyway, but in
	// a user namespace that owns its network namespace it grants it, which
	// is how AF_PACKET escapes (CVE-2017-7308, CVE-2020-14386) were run.
	if caps.has("CAP_NET_RAW") {
		fams = append(fams, unix.AF_PACKET, unix.AF_XDP)
	}
	// The remaining families RuntimeDefault allows are legacy or hardware
	// protocols (X.25, AX.25, DECnet, RDS, TIPC, CAN, Bluetooth, ...). Each
	// is a module the kernel autoloads on first use, many with escalation
	// records (RDS CVE-2010-3904, CAN BCM CVE-2021-3609, TIPC
	// CVE-2021-43267), and workloads that speak them administer the
	// device or link and are granted CAP_NET_ADMIN.
	if caps.has("CAP_NET_ADMIN") {
		for f := uint32(1); f < unix.AF_MAX; f++ {
			if f != unix.AF_ALG && f != unix.AF_VSOCK {
				fams = append(fams, f)
			}
		}
	}
	return valuesSet(0, fams...)
}

// names splits whitespace-separated syscall lists.
func names(groups ...string) []string {
	var out []string
	for _, g := range groups {
		out = append(out, strings.Fields(g)...)
	}
	return out
}
