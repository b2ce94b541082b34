/*
 * applets: the two commands critest's specs run in its busybox image that
 * Debian's busybox-static lacks, as one static multi-call binary installed
 * as /bin/ipcs and /bin/pgrep.
 *
 *   ipcs -m        the System V shared memory segments of the caller's IPC
 *                  namespace (from /proc/sysvipc/shm), util-linux's layout;
 *                  the header has no digits, since a spec greps the output
 *                  for a segment id
 *   pgrep PATTERN  pids whose comm matches the extended regexp; exit 1 when
 *                  none does
 */
#include <ctype.h>
#include <dirent.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int ipcs(int argc, char **argv)
{
	if (argc != 2 || strcmp(argv[1], "-m") != 0) {
		fprintf(stderr, "usage: ipcs -m\n");
		return 2;
	}
	FILE *f = fopen("/proc/sysvipc/shm", "r");
	if (!f) {
		perror("ipcs: /proc/sysvipc/shm");
		return 1;
	}
	printf("\n------ Shared Memory Segments --------\n");
	printf("%-10s %-10s %-10s %-10s %-10s %-10s\n", "key", "shmid", "owner", "perms", "bytes", "nattch");
	char line[512];
	if (!fgets(line, sizeof line, f)) { /* the column header */
		fclose(f);
		return 0;
	}
	while (fgets(line, sizeof line, f)) {
		long key, id, size, cpid, lpid, nattch, uid;
		unsigned perms;
		if (sscanf(line, "%ld %ld %o %ld %ld %ld %ld %ld", &key, &id, &perms, &size, &cpid, &lpid,
			   &nattch, &uid) != 8)
			continue;
		printf("0x%08lx %-10ld %-10ld %-10o %-10ld %-10ld\n", (unsigned long)key & 0xffffffffUL, id, uid,
		       perms & 0777, size, nattch);
	}
	fclose(f);
	return 0;
}

static int pgrep(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: pgrep PATTERN\n");
		return 2;
	}
	regex_t re;
	if (regcomp(&re, argv[1], REG_EXTENDED | REG_NOSUB) != 0) {
		fprintf(stderr, "pgrep: bad pattern\n");
		return 2;
	}
	DIR *d = opendir("/proc");
	if (!d) {
		perror("pgrep: /proc");
		return 3;
	}
	int found = 0;
	long self = (long)getpid();
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		long pid = strtol(e->d_name, NULL, 10);
		if (pid == self)
			continue;
		char path[64], comm[64];
		snprintf(path, sizeof path, "/proc/%ld/comm", pid);
		FILE *f = fopen(path, "r");
		if (!f)
			continue; /* gone meanwhile */
		if (fgets(comm, sizeof comm, f)) {
			comm[strcspn(comm, "\n")] = '\0';
			if (regexec(&re, comm, 0, NULL, 0) == 0) {
				printf("%ld\n", pid);
				found = 1;
			}
		}
		fclose(f);
	}
	closedir(d);
	return found ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *name = strrchr(argv[0], '/');
	name = name ? name + 1 : argv[0];
	if (strcmp(name, "ipcs") == 0)
		return ipcs(argc, argv);
	if (strcmp(name, "pgrep") == 0)
		return pgrep(argc, argv);
	fprintf(stderr, "applets: run as ipcs or pgrep\n");
	return 2;
}
