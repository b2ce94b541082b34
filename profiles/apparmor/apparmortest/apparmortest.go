// Package apparmortest finds what tests that compile AppArmor profiles
// need: apparmor_parser and a realistic kernel feature set.
package apparmortest

import (
	"os/exec"
	"testing"
)

// FeaturesFile is a realistic kernel feature set shipped by Debian's
// apparmor package. Without one, the parser compiles for no kernel at all,
// silently drops signal, ptrace and mount rules, and refuses to cache.
const FeaturesFile = "/usr/share/apparmor-features/features"

// ParserPath returns apparmor_parser's path, or skips t without it.
func ParserPath(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("apparmor_parser")
	if err != nil {
		if path, err = exec.LookPath("/usr/sbin/apparmor_parser"); err != nil {
			t.Skip("apparmor_parser not installed (Debian package apparmor); the Makefile installs it for CI")
		}
	}
	return path
}
