//go:build !(cgo && seccomp)

package seccomp

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// CompileSupported is false: this build has no libseccomp (it needs cgo
// and the seccomp build tag). Generate still works; Compile does not.
const CompileSupported = false

// LibraryVersion reports that libseccomp is not compiled in.
func LibraryVersion() (major, minor, micro uint, err error) {
	return 0, 0, 0, ErrCompileUnsupported
}

// Compile reports that libseccomp is not compiled in.
func Compile(*specs.LinuxSeccomp, specs.Arch) ([]unix.SockFilter, error) {
	return nil, ErrCompileUnsupported
}
