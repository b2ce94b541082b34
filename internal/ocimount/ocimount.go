// Package ocimount answers questions about OCI spec mounts that both the
// interception pipeline (hooks) and the container layer (shim/container)
// ask, so that they answer them the same way.
package ocimount

import (
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// IsBind follows runc: a mount is a bind when its options say so,
// whatever its type.
func IsBind(m specs.Mount) bool {
	return m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}
