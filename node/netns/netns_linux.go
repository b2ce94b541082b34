package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/stockade-dev/stockade/profiles/userns"
	"golang.org/x/sys/unix"
)

// A pod's network namespace is created by containerd's CRI (and configured
// by CNI) before the shim runs, so it belongs to the host's user namespace
// even when the pod's containers run in their own. Root in the container has
// no capabilities over such a netns: runc's init, running inside the user
// namespace, cannot write its net.* sysctls (EACCES). The hook moves them out
// of the spec and writes them here, from the host side, exactly as runc would
// have written them for a pod without a user namespace.

// IsNetSysctl reports whether a sysctl key (dotted "net.ipv4.x" or path form
// "net/ipv4/x") belongs to the network namespace.
func IsNetSysctl(key string) bool {
	return strings.HasPrefix(key, "net.") || strings.HasPrefix(key, "net/")
}

// NetSysctlPath is the path of a net.* sysctl under /proc/sys. Keys in path
// form (first separator '/') keep their dots, which interface names such as
// "eth0.100" need; dotted keys become paths as in runc.
func NetSysctlPath(key string) (string, error) {
	p := key
	if i := strings.IndexAny(key, "./"); i >= 0 && key[i] == '.' {
		p = strings.ReplaceAll(key, ".", "/")
	}
	parts := strings.Split(p, "/")
	if parts[0] != "net" || len(parts) < 2 {
		return "", fmt.Errorf("sysctl %q: not a net.* sysctl: %w", key, userns.ErrInvalid)
	}
	for _, c := range parts {
		if c == "" || c == "." || c == ".." {
			return "", fmt.Errorf("sysctl %q: invalid name: %w", key, userns.ErrInvalid)
		}
	}
	return "/proc/sys/" + p, nil
}

// WriteNetSysctls writes net.* sysctls into the network namespace at
// netnsPath (a bind-mounted nsfs file or /proc/<pid>/ns/net). It refuses
// the caller's own network namespace: a container's sysctls must never
// reach the host's. The caller needs CAP_SYS_ADMIN.
func WriteNetSysctls(netnsPath string, sysctls map[string]string) error {
	if len(sysctls) == 0 {
		return nil
	}
	paths := make(map[string]string, len(sysctls))
	for k := range sysctls {
		p, err := NetSysctlPath(k)
		if err != nil {
			return err
		}
		paths[k] = p
	}
	target, err := os.Open(netnsPath)
	if err != nil {
		return fmt.Errorf("open network namespace: %w", err)
	}
	defer target.Close()

	errc := make(chan error, 1)
	go func() {
		// setns changes only this OS thread. The thread is unlocked only
		// once it is back in its original netns; if that fails it stays
		// locked and the runtime discards it when the goroutine ends, so no
		// other goroutine ever runs in the pod's network namespace.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own network namespace: %w", err)
			return
		}
		defer orig.Close()
		if same, err := sameFile(orig, target); err != nil || same {
			runtime.UnlockOSThread()
			if err == nil {
				err = fmt.Errorf("%s is the shim's own network namespace: %w", netnsPath, userns.ErrInvalid)
			}
			errc <- err
			return
		}
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %s: %w", netnsPath, err)
			return
		}
		werr := writeSysctls(sysctls, paths)
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(werr, fmt.Errorf("return to own network namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- werr
	}()
	return <-errc
}

// writeSysctls writes in the current thread's network namespace: the
// kernel resolves /proc/sys/net through the opening task's namespace.
func writeSysctls(sysctls, paths map[string]string) error {
	for k, v := range sysctls {
		f, err := os.OpenFile(paths[k], os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return fmt.Errorf("sysctl %s: %w", k, err)
		}
		_, err = f.WriteString(v)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("sysctl %s = %q: %w", k, v, err)
		}
	}
	return nil
}

func sameFile(a, b *os.File) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Fstat(int(a.Fd()), &sa); err != nil {
		return false, err
	}
	if err := unix.Fstat(int(b.Fd()), &sb); err != nil {
		return false, err
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}
