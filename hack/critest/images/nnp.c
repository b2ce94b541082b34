/*
 * nnp: the program of the local stand-in for critest's nonewprivs image.
 * It is installed set-user-ID root; critest runs it as uid 1000 and reads
 * the effective uid it prints: 0 when privilege escalation is allowed,
 * 1000 when no_new_privs stops the set-user-ID bit.
 */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	printf("Effective uid: %d\n", (int)geteuid());
	return 0;
}
