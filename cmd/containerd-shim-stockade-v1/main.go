// Command containerd-shim-stockade-v1 is stockade's containerd shim. The same
// binary is re-executed by libcontainer as each container's init.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/pkg/shim"

	"github.com/stockade-dev/stockade/shim/container"
	"github.com/stockade-dev/stockade/shim/manager"
	_ "github.com/stockade-dev/stockade/shim/task" // registers the task service plugin
)

func main() {
	container.MaybeInit()
	if !container.SeccompCompiledIn() {
		fmt.Fprintln(os.Stderr, "containerd-shim-stockade-v1: built without seccomp support (needs CGO_ENABLED=1 -tags seccomp)")
		os.Exit(1)
	}
	// NoReaper: libcontainer's per-process Wait is the only reaper, so no
	// global wait4(-1) can steal an exit status (see shim/container).
	shim.RunShim(context.Background(), manager.New(), func(c *shim.Config) { c.NoReaper = true })
}
