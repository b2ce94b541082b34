/*
 * httpserve: the web server in the local stand-ins for critest's nginx,
 * httpd and hostnet-nginx images. critest only needs what it checks: an
 * HTTP 200 on a port, a pid file (nginx), a process whose /proc/PID/cmdline
 * says "master process" when it is the container's PID 1 (nginx), a line on
 * stderr naming the server (httpd's log check), and a clean exit on SIGTERM
 * (as PID 1 a default-action SIGTERM is ignored and every stop would wait
 * for the kill timeout).
 *
 *   httpserve [-p PORT] [-P PIDFILE] [-m]
 *
 * -m re-executes the binary with argv[0] "<name>: master process <path>",
 * which is how nginx names its master in /proc/PID/cmdline; the executable
 * path stays the same so comm (and so `pidof nginx`) keeps the file's name.
 *
 * Static, single-threaded, one connection at a time: a client that stops
 * sending is cut off by a receive timeout so it cannot wedge the server.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static const char body[] =
	"<!DOCTYPE html>\n<html><head><title>Welcome</title></head>"
	"<body><h1>It works!</h1></body></html>\n";

static void on_term(int sig)
{
	(void)sig;
	_exit(0);
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

/* listen_any binds a dual-stack socket where IPv6 exists (port-forward may
 * dial localhost as ::1), else an IPv4 one. */
static int listen_any(int port)
{
	int one = 1, zero = 0;
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		struct sockaddr_in6 a6;
		memset(&a6, 0, sizeof a6);
		a6.sin6_family = AF_INET6;
		a6.sin6_addr = in6addr_any;
		a6.sin6_port = htons(port);
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
		if (bind(fd, (struct sockaddr *)&a6, sizeof a6) == 0 && listen(fd, 64) == 0)
			return fd;
		close(fd);
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a4;
	memset(&a4, 0, sizeof a4);
	a4.sin_family = AF_INET;
	a4.sin_addr.s_addr = htonl(INADDR_ANY);
	a4.sin_port = htons(port);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&a4, sizeof a4) != 0 || listen(fd, 64) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

static void serve(int c)
{
	struct timeval tv = {.tv_sec = 5};
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	/* Read the request head; its content does not matter. */
	char req[4096];
	size_t got = 0;
	while (got < sizeof req - 1) {
		ssize_t r = read(c, req + got, sizeof req - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		req[got] = '\0';
		if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
			break;
	}
	if (got == 0)
		return;
	int head_only = strncmp(req, "HEAD ", 5) == 0;
	char hdr[256];
	int n = snprintf(hdr, sizeof hdr,
			 "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 sizeof body - 1);
	write_all(c, hdr, (size_t)n);
	if (!head_only)
		write_all(c, body, sizeof body - 1);
}

int main(int argc, char **argv)
{
	int port = 80, master = 0, opt;
	const char *pidfile = NULL;
	const char *name = base_name(argv[0]);

	while ((opt = getopt(argc, argv, "p:P:m")) != -1) {
		switch (opt) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'P':
			pidfile = optarg;
			break;
		case 'm':
			master = 1;
			break;
		default:
			fprintf(stderr, "usage: %s [-p PORT] [-P PIDFILE] [-m]\n", argv[0]);
			return 2;
		}
	}
	if (port <= 0 || port > 65535) {
		fprintf(stderr, "%s: bad port\n", name);
		return 2;
	}

	if (master && strstr(argv[0], "master process") == NULL) {
		char self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
		if (n < 0) {
			perror("readlink /proc/self/exe");
			return 1;
		}
		self[n] = '\0';
		char title[8300];
		snprintf(title, sizeof title, "%s: master process %s", base_name(self), self);
		argv[0] = title;
		execv(self, argv);
		perror("execv");
		return 1;
	}
	if (master)
		name = "nginx";

	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	signal(SIGQUIT, on_term);
	signal(SIGPIPE, SIG_IGN);

	int fd = listen_any(port);
	if (fd < 0) {
		fprintf(stderr, "%s: listen on port %d: %s\n", name, port, strerror(errno));
		return 1;
	}
	if (pidfile) {
		/* The image need not have the directory (nginx's /var/run). */
		char dir[4096];
		snprintf(dir, sizeof dir, "%s", pidfile);
		for (char *p = dir + 1; *p; p++) {
			if (*p != '/')
				continue;
			*p = '\0';
			mkdir(dir, 0755);
			*p = '/';
		}
		FILE *f = fopen(pidfile, "w");
		if (!f) {
			fprintf(stderr, "%s: %s: %s\n", name, pidfile, strerror(errno));
			return 1;
		}
		fprintf(f, "%d\n", (int)getpid());
		fclose(f);
	}
	fprintf(stderr, "%s: serving HTTP on port %d\n", name, port);

	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "%s: accept: %s\n", name, strerror(errno));
			return 1;
		}
		serve(c);
		close(c);
	}
}
