package denials

import "golang.org/x/sys/unix"

// runtimeInitComm is the name runc's init gives itself until it execs the
// workload.
const runtimeInitComm = "runc:[2:INIT]"

// isRuntimeProbe recognises the one denied call the runtime itself makes
// under the container's filter, between loading it and exec'ing the
// workload: its procfs helper probes open_tree(-EBADF, ..., OPEN_TREE_CLOEXEC)
// for a private /proc handle and falls back on EPERM. The call is answered
// like any other but not recorded, so that every container start does not
// log a denial that no workload made. Only that exact call matches: without
// OPEN_TREE_CLONE, open_tree merely opens a path (as open(O_PATH) does), so
// a workload that imitated it would hide nothing of consequence.
func isRuntimeProbe(n notification, comm string) bool {
	return comm == runtimeInitComm &&
		n.syscall == "open_tree" &&
		int32(n.args[0]) == -int32(unix.EBADF) &&
		n.args[2] == unix.OPEN_TREE_CLOEXEC
}
