// Package version holds the build's version and VCS revision. The Makefile
// sets both with -ldflags -X; a plain `go build` in a checkout still gets the
// revision from the Go toolchain's build info.
package version

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

var (
	// Version is the release version.
	Version = "0.1.0-dev"
	// Revision is the git commit, with "-dirty" for a modified tree.
	Revision = ""
)

func init() {
	if Revision != "" {
		return
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" && modified == "true" {
		rev += "-dirty"
	}
	Revision = rev
}

// Print writes the version block that containerd's shims print for -v.
func Print(w io.Writer, name string) {
	fmt.Fprintf(w, "%s:\n  Version:  %s\n  Revision: %s\n  Go version: %s\n", name, Version, Revision, runtime.Version())
}
