package seccomp

import (
	"strings"
	"sync"
)

// The syscall names libseccomp knows, by the ABI families stockade supports.
// The lists were taken from libseccomp 2.5.4's table (resolving every name on
// x86_64, x86, x32, aarch64 and arm) plus the names libseccomp 2.6.0 added.
// TestKnownCoversLibseccomp fails when the installed libseccomp knows a name
// that is missing here, so a libseccomp upgrade cannot silently move a
// syscall from an explicit rule to the default action.
//
// A name that is known here decides whether the profile treats a syscall as
// reviewed: known syscalls the profile does not allow get an explicit deny
// rule; syscalls libseccomp learns about later fall to the default action
// (ENOSYS), which is how callers expect an unknown syscall to fail.

// knownBoth exists on both the x86 and the arm family.
const knownBoth = `
	_llseek _newselect _sysctl accept accept4 access acct add_key adjtimex
	bdflush bind bpf brk cachestat capget capset chdir chmod chown chown32
	chroot clock_adjtime clock_adjtime64 clock_getres clock_getres_time64
	clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64
	clock_settime clock_settime64 clone clone3 close close_range connect
	copy_file_range creat delete_module dup dup2 dup3 epoll_create epoll_create1
	epoll_ctl epoll_pwait epoll_pwait2 epoll_wait eventfd eventfd2 execve
	execveat exit exit_group faccessat faccessat2 fadvise64 fallocate
	fanotify_init fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32
	fchownat fcntl fcntl64 fdatasync fgetxattr finit_module flistxattr flock
	fork fremovexattr fsconfig fsetxattr fsmount fsopen fspick fstat fstat64
	fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue
	futex_time64 futex_wait futex_waitv futex_wake futimesat get_mempolicy
	get_robust_list getcpu getcwd getdents getdents64 getegid getegid32 geteuid
	geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername
	getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32
	getresuid getresuid32 getrlimit getrusage getsid getsockname getsockopt
	gettid gettimeofday getuid getuid32 getxattr getxattrat init_module
	inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel
	io_destroy io_getevents io_pgetevents io_pgetevents_time64 io_setup
	io_submit io_uring_enter io_uring_register io_uring_setup ioctl ioprio_get
	ioprio_set kcmp kexec_file_load kexec_load keyctl kill landlock_add_rule
	landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr
	link linkat listen listmount listxattr listxattrat llistxattr lookup_dcookie
	lremovexattr lseek lsetxattr lsm_get_self_attr lsm_list_modules
	lsm_set_self_attr lstat lstat64 madvise map_shadow_stack mbind membarrier
	memfd_create memfd_secret migrate_pages mincore mkdir mkdirat mknod mknodat
	mlock mlock2 mlockall mmap mmap2 mount mount_setattr move_mount move_pages
	mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
	mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap
	mseal msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
	name_to_handle_at nanosleep newfstatat nfsservctl nice open
	open_by_handle_at open_tree openat openat2 pause perf_event_open personality
	pidfd_getfd pidfd_open pidfd_send_signal pipe pipe2 pivot_root pkey_alloc
	pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
	prlimit64 process_madvise process_mrelease process_vm_readv
	process_vm_writev pselect6 pselect6_time64 ptrace pwrite64 pwritev pwritev2
	quotactl quotactl_fd read readahead readlink readlinkat readv reboot recv
	recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr
	removexattrat rename renameat renameat2 request_key restart_syscall rmdir
	rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
	rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo
	sched_get_priority_max sched_get_priority_min sched_getaffinity
	sched_getattr sched_getparam sched_getscheduler sched_rr_get_interval
	sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
	sched_setscheduler sched_yield seccomp semctl semget semop semtimedop
	semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto
	set_mempolicy set_mempolicy_home_node set_robust_list set_tid_address
	setdomainname setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
	setgroups setgroups32 sethostname setitimer setns setpgid setpriority
	setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
	setreuid32 setrlimit setsid setsockopt settimeofday setuid setuid32 setxattr
	setxattrat shmat shmctl shmdt shmget shutdown sigaction sigaltstack signalfd
	signalfd4 sigpending sigprocmask sigreturn sigsuspend socket socketpair
	splice stat stat64 statfs statfs64 statmount statx swapoff swapon symlink
	symlinkat sync sync_file_range syncfs sysfs sysinfo syslog tee tgkill
	timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64
	timer_settime timer_settime64 timerfd_create timerfd_gettime
	timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate
	truncate64 ugetrlimit umask umount2 uname unlink unlinkat unshare uselib
	userfaultfd ustat utimensat utimensat_time64 utimes vfork vhangup vmsplice
	vserver wait4 waitid write writev
`

// knownX86 exists only on x86_64, x86 or x32.
const knownX86 = `
	afs_syscall alarm arch_prctl break create_module epoll_ctl_old
	epoll_wait_old fadvise64_64 ftime get_kernel_syms get_thread_area getpmsg
	gtty idle ioperm iopl ipc lock modify_ldt mpx oldfstat oldlstat oldolduname
	oldstat olduname prof profil putpmsg query_module readdir security select
	set_thread_area sgetmask signal socketcall ssetmask stime stty time tuxcall
	ulimit umount uretprobe utime vm86 vm86old waitpid
`

// knownARM exists only on aarch64 or arm.
const knownARM = `
	arm_fadvise64_64 arm_sync_file_range breakpoint cacheflush get_tls
	pciconfig_iobase pciconfig_read pciconfig_write set_tls usr26 usr32
`

// knownOther exists only on ABIs stockade does not generate profiles for.
// Pod profiles written for several architectures (Docker's default does)
// name them, so they must be accepted and ignored rather than rejected.
const knownOther = `
	cachectl multiplexer riscv_flush_icache riscv_hwprobe rtas
	s390_guarded_storage s390_pci_mmio_read s390_pci_mmio_write
	s390_runtime_instr s390_sthyi spu_create spu_run subpage_prot swapcontext
	switch_endian sync_file_range2 syscall sysmips timerfd
`

// absentX86_64 and absentAArch64 are the names their family knows that do
// not exist on its 64-bit ABI (x86_64, aarch64): 32-bit calls, and calls the
// 64-bit ABI spells otherwise. libseccomp gives them pseudo numbers there,
// and runc's rules for them compile to nothing, so a filter that covers the
// 64-bit ABI alone (compat ABIs off, the default) leaves them out: about a
// sixth of the names that runc's init turns into libseccomp rules at every
// container start. TestAbsentNativeMatchesLibseccomp checks the lists, and
// TestPruningKeepsTheProgram that the compiled filter is the same.
const (
	absentX86_64 = `
	_llseek _newselect bdflush break chown32 clock_adjtime64
	clock_getres_time64 clock_gettime64 clock_nanosleep_time64 clock_settime64
	fadvise64_64 fchown32 fcntl64 fstat64 fstatat64 fstatfs64 ftime
	ftruncate64 futex_time64 getegid32 geteuid32 getgid32 getgroups32
	getresgid32 getresuid32 getuid32 gtty idle io_pgetevents_time64 ipc
	lchown32 lock lstat64 mmap2 mpx mq_timedreceive_time64 mq_timedsend_time64
	nice oldfstat oldlstat oldolduname oldstat olduname ppoll_time64 prof
	profil pselect6_time64 readdir recv recvmmsg_time64 rt_sigtimedwait_time64
	sched_rr_get_interval_time64 semtimedop_time64 send sendfile64 setfsgid32
	setfsuid32 setgid32 setgroups32 setregid32 setresgid32 setresuid32
	setreuid32 setuid32 sgetmask sigaction signal sigpending sigprocmask
	sigreturn sigsuspend socketcall ssetmask stat64 statfs64 stime stty
	timer_gettime64 timer_settime64 timerfd_gettime64 timerfd_settime64
	truncate64 ugetrlimit ulimit umount utimensat_time64 vm86 vm86old waitpid
`
	absentAArch64 = `
	_llseek _newselect _sysctl access arm_fadvise64_64 arm_sync_file_range
	bdflush breakpoint cacheflush chmod chown chown32 clock_adjtime64
	clock_getres_time64 clock_gettime64 clock_nanosleep_time64 clock_settime64
	creat dup2 epoll_create epoll_wait eventfd fchown32 fcntl64 fork fstat64
	fstatat64 fstatfs64 ftruncate64 futex_time64 futimesat get_tls getdents
	getegid32 geteuid32 getgid32 getgroups32 getpgrp getresgid32 getresuid32
	getuid32 inotify_init io_pgetevents_time64 lchown lchown32 link lstat
	lstat64 mkdir mknod mmap2 mq_timedreceive_time64 mq_timedsend_time64 nice
	open pause pciconfig_iobase pciconfig_read pciconfig_write pipe poll
	ppoll_time64 pselect6_time64 readlink recv recvmmsg_time64 rename rmdir
	rt_sigtimedwait_time64 sched_rr_get_interval_time64 semtimedop_time64 send
	sendfile64 set_tls setfsgid32 setfsuid32 setgid32 setgroups32 setregid32
	setresgid32 setresuid32 setreuid32 setuid32 sigaction signalfd sigpending
	sigprocmask sigreturn sigsuspend stat stat64 statfs64 symlink sysfs
	timer_gettime64 timer_settime64 timerfd_gettime64 timerfd_settime64
	truncate64 ugetrlimit unlink uselib usr26 usr32 ustat utimensat_time64
	utimes vfork vserver
`
)

// absentNative maps a family to the names absentX86_64 or absentAArch64
// lists for it. Built at first use, like knownSyscalls.
var absentNative = sync.OnceValue(func() map[family]map[string]bool {
	out := map[family]map[string]bool{}
	for f, names := range map[family]string{familyX86: absentX86_64, familyARM: absentAArch64} {
		out[f] = map[string]bool{}
		for _, n := range strings.Fields(names) {
			out[f][n] = true
		}
	}
	return out
})

// family is a set of ABIs that one profile covers: a 64-bit ABI and the
// compat ABIs its kernel can also run.
type family uint8

const (
	familyX86 family = 1 << iota
	familyARM
)

// knownSyscalls maps every known name to the families it exists on (0 for
// names of other ABIs). Built at first use, not at package init: the shim
// binary is also every container's init, which never asks.
var knownSyscalls = sync.OnceValue(func() map[string]family {
	m := map[string]family{}
	for _, l := range []struct {
		names string
		f     family
	}{
		{knownBoth, familyX86 | familyARM},
		{knownX86, familyX86},
		{knownARM, familyARM},
		{knownOther, 0},
	} {
		for _, n := range strings.Fields(l.names) {
			m[n] = l.f
		}
	}
	return m
})

// Known reports whether name is a syscall the profile knows on goarch's ABIs
// ("amd64" or "arm64"). Stored and recorded profiles are checked with it.
func Known(goarch, name string) bool {
	return knownSyscalls()[name]&familyOf(goarch) != 0
}

// InitSyscalls are the syscalls runc's init makes after it loads the filter
// and before the container's process runs (clone included, for the Go
// runtime's threads). A profile that leaves one of them out cannot start a
// container; recorded profiles always include them.
func InitSyscalls() []string {
	return append([]string{"clone"}, runcCritical...)
}
