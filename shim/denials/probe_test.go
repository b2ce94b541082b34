package denials

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestIsRuntimeProbe(t *testing.T) {
	ebadf := uint64(0xfffffffffffffff7) // -EBADF as the kernel hands it over
	probe := notification{syscall: "open_tree", args: [6]uint64{ebadf, 0x1000, unix.OPEN_TREE_CLOEXEC}}
	if !isRuntimeProbe(probe, runtimeInitComm) {
		t.Error("runc init's open_tree probe not recognised")
	}
	for name, tc := range map[string]struct {
		n    notification
		comm string
	}{
		"workload comm":   {probe, "sh"},
		"clone flag":      {notification{syscall: "open_tree", args: [6]uint64{ebadf, 0x1000, unix.OPEN_TREE_CLOEXEC | unix.OPEN_TREE_CLONE}}, runtimeInitComm},
		"real dirfd":      {notification{syscall: "open_tree", args: [6]uint64{3, 0x1000, unix.OPEN_TREE_CLOEXEC}}, runtimeInitComm},
		"other syscall":   {notification{syscall: "unshare", args: [6]uint64{ebadf, 0, unix.OPEN_TREE_CLOEXEC}}, runtimeInitComm},
		"recursive clone": {notification{syscall: "open_tree", args: [6]uint64{ebadf, 0x1000, unix.OPEN_TREE_CLOEXEC | unix.OPEN_TREE_CLONE | unix.AT_RECURSIVE}}, runtimeInitComm},
	} {
		if isRuntimeProbe(tc.n, tc.comm) {
			t.Errorf("%s: recorded as the runtime's probe, so it would be hidden", name)
		}
	}
}
