//go:build !(cgo && seccomp)

package hostcheck

// libseccomp reports that this build has no libseccomp: stockade is built
// with CGO_ENABLED=1 -tags seccomp, and check says so when it was not.
func libseccomp() (Libseccomp, error) { return Libseccomp{}, nil }
