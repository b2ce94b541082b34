/*
 * pause is the process of a pod sandbox: it holds the pod's namespaces open,
 * blocks until SIGTERM or SIGINT and, as PID 1 of a shared PID namespace,
 * reaps every child re-parented to it.
 *
 * Signals are blocked and taken synchronously with sigwaitinfo, so none can
 * slip in between a check and a wait. No-op handlers are installed as well:
 * the kernel drops signals with default disposition sent to a namespace's
 * init, and a handler makes the intent explicit whatever the kernel version.
 *
 * Build: gcc -static -O2 -o pause pause.c
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static void noop(int sig) { (void)sig; }

int main(int argc, char **argv)
{
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: pause\n");
		return 2;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = noop;
	sigemptyset(&sa.sa_mask);
	int sigs[] = {SIGTERM, SIGINT, SIGCHLD};
	sigset_t set;
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		if (sigaction(sigs[i], &sa, NULL) < 0) {
			perror("pause: sigaction");
			return 1;
		}
		sigaddset(&set, sigs[i]);
	}
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
		perror("pause: sigprocmask");
		return 1;
	}

	for (;;) {
		int sig = sigwaitinfo(&set, NULL);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			perror("pause: sigwaitinfo");
			return 1;
		}
		if (sig == SIGCHLD) {
			/* One SIGCHLD may stand for several exits: reap them all. */
			while (waitpid(-1, NULL, WNOHANG) > 0)
				;
			continue;
		}
		return 0;
	}
}
