//go:build linux

package denials

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The seccomp user-notification ioctls, called directly: libseccomp's
// wrappers cost a cgo call and a C allocation per notification, and the
// workload waits through every one of them. The structs mirror
// <linux/seccomp.h>; the sizes are part of the ioctl numbers, so a layout
// mistake fails every call with EINVAL rather than misreading a field.

// seccompData mirrors struct seccomp_data.
type seccompData struct {
	nr   int32
	arch uint32
	ip   uint64
	args [6]uint64
}

// seccompNotif mirrors struct seccomp_notif (80 bytes).
type seccompNotif struct {
	id    uint64
	pid   uint32
	flags uint32
	data  seccompData
}

// seccompNotifResp mirrors struct seccomp_notif_resp (24 bytes).
type seccompNotifResp struct {
	id    uint64
	val   int64
	error int32
	flags uint32
}

// Compile-time checks that the structs match the sizes encoded in the
// ioctl numbers (_IOC_SIZE, bits 16-29).
var (
	_ [unsafe.Sizeof(seccompNotif{}) - (unix.SECCOMP_IOCTL_NOTIF_RECV>>16)&0x3fff]struct{}
	_ [(unix.SECCOMP_IOCTL_NOTIF_RECV>>16)&0x3fff - unsafe.Sizeof(seccompNotif{})]struct{}
	_ [unsafe.Sizeof(seccompNotifResp{}) - (unix.SECCOMP_IOCTL_NOTIF_SEND>>16)&0x3fff]struct{}
	_ [(unix.SECCOMP_IOCTL_NOTIF_SEND>>16)&0x3fff - unsafe.Sizeof(seccompNotifResp{})]struct{}
)

// notifRecv receives one notification into n, which the caller owns and
// reuses. It blocks until a notification is pending, unless one already is.
// The kernel insists on a zeroed buffer.
func notifRecv(fd int, n *seccompNotif) syscall.Errno {
	*n = seccompNotif{}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(unix.SECCOMP_IOCTL_NOTIF_RECV), uintptr(unsafe.Pointer(n)))
	return e
}

// notifSend answers a notification. errno != 0 fails the syscall with it;
// errno == 0 lets the kernel run it (SECCOMP_USER_NOTIF_FLAG_CONTINUE). It
// fails with ENOENT when the notification is no longer pending: its thread
// was interrupted or died, so nothing was answered.
func notifSend(fd int, r *seccompNotifResp, id uint64, errno syscall.Errno) syscall.Errno {
	*r = seccompNotifResp{id: id}
	if errno == 0 {
		r.flags = unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE
	} else {
		// The kernel takes the negated errno, as a syscall returns it.
		r.error = -int32(errno)
	}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(unix.SECCOMP_IOCTL_NOTIF_SEND), uintptr(unsafe.Pointer(r)))
	return e
}

// notifSetSyncWakeUp asks the kernel (Linux 6.6+) to wake the notifying
// thread on the answering CPU and the receiver on the notifying CPU: the
// two then hand the CPU back and forth like a function call, instead of
// each wake-up crossing to the other CPU. EINVAL on older kernels.
func notifSetSyncWakeUp(fd int) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(unix.SECCOMP_IOCTL_NOTIF_SET_FLAGS), unix.SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
	if e != 0 {
		return e
	}
	return nil
}
