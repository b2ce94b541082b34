// probe makes one raw system call (or a burst of them) and reports how the
// kernel answered. The integration tests use it inside containers to check
// what stockade's seccomp profile allows and denies, because busybox has no
// applet for keyctl, io_uring_setup, clone3, fsopen or userfaultfd.
//
//   probe NAME          call NAME once; print "NAME ok" or "NAME errno=E (N)";
//                       exit 0 on success, else the errno (so sh sees it)
//   probe -n COUNT NAME call NAME COUNT times; print "NAME ok=A errors=B errno=E"
//   probe -l            list the names
#define _GNU_SOURCE
#include <errno.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AF_ALG
#define AF_ALG 38
#endif

static long do_unshare_user(void) { return unshare(CLONE_NEWUSER); }
static long do_unshare_mount(void) { return unshare(CLONE_NEWNS); }
static long do_unshare_net(void) { return unshare(CLONE_NEWNET); }

static long do_clone_newuser(void) {
	long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
	if (pid == 0) _exit(0);
	if (pid > 0) waitpid(pid, NULL, 0);
	return pid < 0 ? -1 : 0;
}

static long do_clone3(void) {
	uint64_t args[11];
	memset(args, 0, sizeof(args));
	args[4] = SIGCHLD; /* exit_signal */
	long pid = syscall(SYS_clone3, args, sizeof(args));
	if (pid == 0) _exit(0);
	if (pid > 0) waitpid(pid, NULL, 0);
	return pid < 0 ? -1 : 0;
}

static long do_keyctl(void) { return syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0); }
static long do_add_key(void) { return syscall(SYS_add_key, "user", "stockade-probe", "x", 1, KEY_SPEC_PROCESS_KEYRING); }
static long do_io_uring_setup(void) {
	char params[120];
	memset(params, 0, sizeof(params));
	long fd = syscall(SYS_io_uring_setup, 1, params);
	if (fd >= 0) close(fd);
	return fd < 0 ? -1 : 0;
}
static long do_userfaultfd(void) {
	long fd = syscall(SYS_userfaultfd, 0);
	if (fd >= 0) close(fd);
	return fd < 0 ? -1 : 0;
}
static long do_bpf(void) {
	char attr[128];
	memset(attr, 0, sizeof(attr));
	return syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, attr, sizeof(attr));
}
static long do_perf_event_open(void) {
	char attr[128];
	memset(attr, 0, sizeof(attr));
	return syscall(SYS_perf_event_open, attr, 0, -1, -1, 0);
}
static long do_fsopen(void) {
	long fd = syscall(SYS_fsopen, "tmpfs", 0);
	if (fd >= 0) close(fd);
	return fd < 0 ? -1 : 0;
}
static long do_mount(void) { return mount("none", "/tmp", "tmpfs", 0, NULL); }
static long do_socket_alg(void) {
	int fd = socket(AF_ALG, SOCK_SEQPACKET, 0);
	if (fd >= 0) close(fd);
	return fd < 0 ? -1 : 0;
}
static long do_personality(void) { return personality(0x0008 /* MMAP_PAGE_ZERO */) == -1 ? -1 : 0; }
static long do_getpid(void) { return syscall(SYS_getpid) < 0 ? -1 : 0; }
static long do_uname(void) {
	char buf[512];
	return syscall(SYS_uname, buf);
}

static long do_getpriority(void) { return syscall(SYS_getpriority, PRIO_PROCESS, 0) < 0 ? -1 : 0; }
/* getpid through the 32-bit entry (int 0x80, i386 number 20): a compat-ABI
 * call from a 64-bit program, for record mode's per-ABI recording. */
static long do_int80_getpid(void) {
#if defined(__x86_64__)
	long ret;
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory", "rcx", "r11");
	if (ret < 0) { errno = (int)-ret; return -1; }
	return 0;
#else
	errno = ENOSYS;
	return -1;
#endif
}

/* Sockets through the 32-bit entry. socketcall (i386 102) takes the call
 * number and a pointer to the arguments, which must sit below 4 GiB: a
 * static array in this non-PIE static binary does. socket is also a direct
 * i386 call (359) since Linux 4.3, with its arguments in registers. */
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
static unsigned int int80_args[6];
static long int80(long nr, long a, long b, long c) {
#if defined(__x86_64__)
	long ret;
	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "a"(nr), "b"(a), "c"(b), "d"(c)
			 : "memory", "r8", "r9", "r10", "r11");
	if (ret < 0) { errno = (int)-ret; return -1; }
	if (ret >= 0) close((int)ret);
	return 0;
#else
	(void)nr; (void)a; (void)b; (void)c;
	errno = ENOSYS;
	return -1;
#endif
}
static long int80_socketcall_socket(unsigned int family, unsigned int type) {
	int80_args[0] = family;
	int80_args[1] = type;
	int80_args[2] = 0;
	return int80(102, 1 /* SYS_SOCKET */, (long)(uintptr_t)int80_args, 0);
}
static long do_int80_socketcall_vsock(void) { return int80_socketcall_socket(AF_VSOCK, SOCK_STREAM); }
static long do_int80_socketcall_alg(void) { return int80_socketcall_socket(AF_ALG, SOCK_SEQPACKET); }
static long do_int80_socketcall_inet(void) { return int80_socketcall_socket(AF_INET, SOCK_STREAM); }
static long do_int80_socket_vsock(void) { return int80(359, AF_VSOCK, SOCK_STREAM, 0); }
static long do_int80_socket_inet(void) { return int80(359, AF_INET, SOCK_STREAM, 0); }
static long do_socket_vsock(void) {
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
	if (fd >= 0) close(fd);
	return fd < 0 ? -1 : 0;
}

struct probe {
	const char *name;
	long (*fn)(void);
};

static const struct probe probes[] = {
	{"unshare-user", do_unshare_user}, {"unshare-mount", do_unshare_mount},
	{"unshare-net", do_unshare_net},   {"clone-newuser", do_clone_newuser},
	{"clone3", do_clone3},             {"keyctl", do_keyctl},
	{"add_key", do_add_key},           {"io_uring_setup", do_io_uring_setup},
	{"userfaultfd", do_userfaultfd},   {"bpf", do_bpf},
	{"perf_event_open", do_perf_event_open}, {"fsopen", do_fsopen},
	{"mount", do_mount},               {"socket-alg", do_socket_alg},
	{"personality", do_personality},   {"getpid", do_getpid},
	{"uname", do_uname},               {"getpriority", do_getpriority},
	{"int80-getpid", do_int80_getpid},
	{"int80-socketcall-vsock", do_int80_socketcall_vsock},
	{"int80-socketcall-alg", do_int80_socketcall_alg},
	{"int80-socketcall-inet", do_int80_socketcall_inet},
	{"int80-socket-vsock", do_int80_socket_vsock},
	{"int80-socket-inet", do_int80_socket_inet},
	{"socket-vsock", do_socket_vsock}, {NULL, NULL},
};

int main(int argc, char **argv) {
	long count = 0;
	int i = 1;
	if (argc > 1 && strcmp(argv[1], "-l") == 0) {
		for (const struct probe *p = probes; p->name; p++) puts(p->name);
		return 0;
	}
	if (argc > 3 && strcmp(argv[1], "-n") == 0) {
		count = atol(argv[2]);
		i = 3;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: probe [-n COUNT] NAME | probe -l\n");
		return 125;
	}
	for (const struct probe *p = probes; p->name; p++) {
		if (strcmp(p->name, argv[i]) != 0) continue;
		if (count > 0) {
			long ok = 0, bad = 0;
			int last = 0;
			for (long n = 0; n < count; n++) {
				errno = 0;
				if (p->fn() < 0) { bad++; last = errno; } else ok++;
			}
			printf("%s ok=%ld errors=%ld errno=%s\n", p->name, ok, bad, last ? strerrorname_np(last) : "0");
			return 0;
		}
		errno = 0;
		if (p->fn() < 0) {
			int e = errno;
			printf("%s errno=%s (%d)\n", p->name, strerrorname_np(e), e);
			return e > 0 && e < 125 ? e : 124;
		}
		printf("%s ok\n", p->name);
		return 0;
	}
	fprintf(stderr, "probe: unknown name %s\n", argv[i]);
	return 125;
}
