package hostcheck

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// probeIDMap tries what stockade does for remapped pods: an idmapped mount.
// It mounts a tmpfs and sets MOUNT_ATTR_IDMAP on a detached clone of it.
// All of that happens on one OS thread that first moves to a private mount
// namespace, so the host's mount table never sees the tmpfs; the thread is
// never unlocked, so the Go runtime discards it afterwards instead of
// reusing a thread in a foreign namespace.
func probeIDMap() (State, string) {
	if os.Geteuid() != 0 {
		return Unknown, "unknown (not root)"
	}
	type result struct {
		state  State
		detail string
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		s, d := idmapOnPrivateThread()
		done <- result{s, d}
	}()
	r := <-done
	return r.state, r.detail
}

func idmapOnPrivateThread() (State, string) {
	if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
		return Unknown, fmt.Sprintf("unshare mount namespace: %v", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return Unknown, fmt.Sprintf("make mounts private: %v", err)
	}
	dir, err := os.MkdirTemp("", "stockade-idmap-")
	if err != nil {
		return Unknown, err.Error()
	}
	defer os.Remove(dir)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16k"); err != nil {
		return Unknown, fmt.Sprintf("mount tmpfs: %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)

	userns, stop, err := newUserNS()
	if err != nil {
		return Unknown, fmt.Sprintf("create a user namespace: %v", err)
	}
	defer stop()

	tree, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return No, fmt.Sprintf("open_tree: %v (needs Linux 5.2)", err)
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return No, fmt.Sprintf("mount_setattr(MOUNT_ATTR_IDMAP) on tmpfs: %v (tmpfs needs Linux 6.3, most others 5.12+)", err)
	}
	return Yes, "mount_setattr(MOUNT_ATTR_IDMAP) works on tmpfs"
}

// newUserNS returns a user namespace with a 65536-ID mapping. Go cannot
// unshare a user namespace in a multi-threaded process, so a child process
// creates it: started under ptrace, the child stops at its first
// instruction after exec and never runs; it is killed once the namespace
// file is open, which keeps the namespace alive.
func newUserNS() (*os.File, func(), error) {
	cmd := exec.Command("/proc/self/exe")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 1 << 30, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 1 << 30, Size: 65536}},
		Ptrace:      true,
		Pdeathsig:   syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	if err != nil {
		stop()
		return nil, nil, err
	}
	return f, func() { f.Close(); stop() }, nil
}
