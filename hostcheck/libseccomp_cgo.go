//go:build cgo && seccomp

package hostcheck

import seccomp "github.com/seccomp/libseccomp-golang"

// libseccomp reports the libseccomp this binary is linked against.
func libseccomp() (Libseccomp, error) {
	major, minor, micro := seccomp.GetLibraryVersion()
	api, err := seccomp.GetAPI()
	return Libseccomp{Compiled: true, Major: major, Minor: minor, Micro: micro, API: api}, err
}
