package idalloc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stockade-dev/stockade/internal/roottest"
	"github.com/stockade-dev/stockade/node/idmapfs"
	"github.com/stockade-dev/stockade/profiles/userns"
	"golang.org/x/sys/unix"
)

// TestIDMappedBindMount makes the mount the hook asks runc for, by hand: an
// idmapped bind of a directory with a pod range, through a user namespace
// whose fd comes from a helper process (as runc and containerd do it).
func TestIDMappedBindMount(t *testing.T) {
	roottest.Require(t, "mounts and setns")
	src, dst := t.TempDir(), t.TempDir()
	if ok, fs, err := idmapfs.IDMapSupported(src); err != nil || !ok {
		t.Skipf("temp dir filesystem %s cannot be idmapped on this kernel (%v)", fs, err)
	}
	a := newAlloc(t, t.TempDir(), 4)
	r, err := a.Allocate("t@pod", me(t))
	if err != nil {
		t.Fatal(err)
	}
	m := r.Mappings()
	cmd := exec.Command("cat")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(m[0].HostID), Size: int(m[0].Size)}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(m[0].HostID), Size: int(m[0].Size)}},
	}
	_, stop := roottest.StartBlocked(t, cmd)
	defer stop()

	// The helper's namespace is the pod's: its map is the lease's.
	u, g, err := ReadProcIDMaps("/proc", cmd.Process.Pid)
	if err != nil || !userns.SameMappings(u, m) || !userns.SameMappings(g, m) {
		t.Fatalf("helper maps %v %v, %v; want %v", u, g, err, m)
	}
	userns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer userns.Close()

	if err := os.WriteFile(filepath.Join(src, "by-root"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		t.Fatalf("open_tree: %v", err)
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		t.Fatalf("mount_setattr(MOUNT_ATTR_IDMAP): %v", err)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		t.Fatalf("move_mount: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dst, unix.MNT_DETACH) })

	// On disk uid 0 is the range's first ID through the mount, i.e. root
	// inside the pod.
	assertOwner(t, filepath.Join(dst, "by-root"), r.Start)

	// What the pod's uid 1000 (host Start+1000) writes through the mount
	// lands on disk as 1000, as with Kubernetes' idmapped volumes.
	if err := os.WriteFile(filepath.Join(src, "by-1000"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(dst, "by-1000"), int(r.Start)+1000, int(r.Start)+1000); err != nil {
		t.Fatalf("chown through the idmapped mount: %v", err)
	}
	assertOwner(t, filepath.Join(src, "by-1000"), 1000)

	// IDs outside the range cannot be written through the mount.
	if err := os.Lchown(filepath.Join(dst, "by-1000"), 5, 5); !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EOVERFLOW) {
		t.Errorf("chown to an unmapped host ID through the mount = %v, want EINVAL/EOVERFLOW", err)
	}
}

func assertOwner(t *testing.T, path string, want uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != want || st.Gid != want {
		t.Errorf("%s owned by %d:%d, want %d:%d", path, st.Uid, st.Gid, want, want)
	}
}
