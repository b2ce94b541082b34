package hooks

import (
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// checkNetAdmin refuses an app container that is given CAP_NET_ADMIN but
// could not use it: the kernel checks network administration against the
// user namespace that owns the network namespace, and containerd's CRI
// creates a pod's network namespace (and runs CNI in it) before the sandbox
// exists, in the host's user namespace, unless the pod itself asked for a
// user namespace (hostUsers: false). A pod stockade remaps then gets EPERM
// from every `ip link add`; it is refused at creation instead, with the ways
// out. Exempting the pod is not one: the sandbox was remapped before any of
// its containers (and their capabilities) were known. Other capabilities checked against the network namespace's owner
// (CAP_NET_RAW for raw sockets) are in containerd's default set and are
// documented rather than refused.
func checkNetAdmin(c *Container, sandboxPid int) error {
	p := c.Spec.Process
	if p == nil || p.Capabilities == nil || !slices.Contains(p.Capabilities.Effective, "CAP_NET_ADMIN") {
		return nil
	}
	netns, ok := namespaceOf(c.Spec, specs.NetworkNamespace)
	if !ok || netns.Path == "" || sandboxPid <= 0 {
		// The host's network namespace (refused or exempted earlier) or a
		// new one, which runc creates inside the container's user namespace.
		return nil
	}
	same, err := ownedBy(netns.Path, "/proc/"+strconv.Itoa(sandboxPid)+"/ns/user")
	if err != nil {
		return fmt.Errorf("container %s of pod %s: network namespace %s: %w", c.Pod.Container, podRef(c), netns.Path, err)
	}
	if same {
		return nil
	}
	return fmt.Errorf("container %s of pod %s adds CAP_NET_ADMIN, which cannot work there: containerd created the pod's "+
		"network namespace outside the user namespace stockade gives the pod; set hostUsers: false on the pod "+
		"(containerd then creates the network namespace inside the pod's user namespace), or run the pod with a "+
		"runtime handler whose node config has userns.enabled = false: %w",
		c.Pod.Container, podRef(c), errdefs.ErrFailedPrecondition)
}

// ownedBy reports whether the namespace at nsPath is owned by the user
// namespace at usernsPath (NS_GET_USERNS, Linux 4.9).
func ownedBy(nsPath, usernsPath string) (bool, error) {
	f, err := os.Open(nsPath)
	if err != nil {
		return false, err
	}
	defer f.Close()
	fd, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_USERNS)
	if err != nil {
		return false, fmt.Errorf("owning user namespace: %w", err)
	}
	defer unix.Close(fd)
	var owner, want unix.Stat_t
	if err := unix.Fstat(fd, &owner); err != nil {
		return false, err
	}
	if err := unix.Stat(usernsPath, &want); err != nil {
		return false, err
	}
	return owner.Dev == want.Dev && owner.Ino == want.Ino, nil
}
