package container

import (
	"os"

	// The device-cgroup manager registers itself on import; without it
	// libcontainer refuses every spec with device rules.
	_ "github.com/opencontainers/cgroups/devices"
	"github.com/opencontainers/runc/libcontainer"
	// nsenter runs in a C constructor before the Go runtime when the binary
	// is re-executed as a container's init; it joins or creates namespaces.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// MaybeInit turns this process into a container init when the shim binary was
// re-executed by libcontainer ("<binary> init"). It does not return in that
// case. main must call it before anything else.
func MaybeInit() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libcontainer.Init()
	}
}
