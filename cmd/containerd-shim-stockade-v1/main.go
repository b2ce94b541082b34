// Command containerd-shim-stockade-v1 is stockade's containerd shim. The same
// binary is re-executed by libcontainer as each container's init.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/pkg/shim"

	"github.com/stockade-dev/stockade/shim/container"
	"github.com/stockade-dev/stockade/shim/manager"
	_ "github.com/stockade-dev/stockade/shim/task" // registers the task service plugin
	"github.com/stockade-dev/stockade/version"
)

func main() {
	container.MaybeInit()
	// containerd's shim framework would print containerd's own version for
	// -v; operators asking a shim binary its version mean stockade's.
	for _, a := range os.Args[1:] {
		if a == "-v" || a == "--v" || a == "-version" || a == "--version" {
			version.Print(os.Stdout, filepath.Base(os.Args[0]))
			return
		}
	}
	container.WarmCgroupAttachAtStart(context.Background())
	if !container.SeccompCompiledIn() {
		fmt.Fprintln(os.Stderr, "containerd-shim-stockade-v1: built without seccomp support (needs CGO_ENABLED=1 -tags seccomp)")
		os.Exit(1)
	}
	// NoReaper: libcontainer's per-process Wait is the only reaper, so no
	// global wait4(-1) can steal an exit status (see shim/container).
	shim.RunShim(context.Background(), manager.New(), func(c *shim.Config) { c.NoReaper = true })
}
