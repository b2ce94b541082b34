package hostcheck

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"github.com/stockade-dev/stockade/node/apparmorhost"
	"golang.org/x/sys/unix"
)

// Real returns the probes of the running host. The idmapped-mount probe
// mounts a tmpfs, so it only runs as root, in a private mount namespace.
func Real() Probes {
	return Probes{
		ReadFile:      os.ReadFile,
		FSType:        fsType,
		KernelSeccomp: kernelSeccomp,
		NotifSizes:    notifSizes,
		Libseccomp:    libseccomp,
		IDMap:         probeIDMap,
		Audit:         probeAudit,
		AppArmor: func(parserPath string) apparmorhost.Status {
			return apparmorhost.Host{ParserPath: parserPath}.Probe()
		},
	}
}

func fsType(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Type), nil
}

// kernelSeccomp asks for the calling thread's seccomp mode: the kernel
// answers EINVAL when built without CONFIG_SECCOMP.
func kernelSeccomp() error {
	_, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	return err
}

// notifSizes calls seccomp(SECCOMP_GET_NOTIF_SIZES), added together with
// user notification in Linux 5.0.
func notifSizes() error {
	var sizes struct{ notif, resp, data uint16 }
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_NOTIF_SIZES, 0, uintptr(unsafe.Pointer(&sizes)))
	if errno != 0 {
		return errno
	}
	if sizes.notif == 0 {
		return errors.New("kernel reported zero-sized notifications")
	}
	return nil
}

// probeAudit opens the audit netlink socket and joins the read-only log
// multicast group, which is how a process reads audit records next to
// auditd (it needs CAP_AUDIT_READ).
func probeAudit() (State, string) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_AUDIT)
	if err != nil {
		return No, fmt.Sprintf("audit netlink socket: %v", err)
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (unix.AUDIT_NLGRP_READLOG - 1)}
	if err := unix.Bind(fd, sa); err != nil {
		return No, fmt.Sprintf("audit socket opens, joining the log multicast group fails: %v", err)
	}
	return Yes, "audit netlink socket opens and joins the log multicast group"
}
