// Package apparmor proves, on a kernel with AppArmor enforcing, that every
// stockade container is confined by the profile generated for it: the
// label the kernel reports, a denied write failing with EACCES and logged,
// one load per content hash and an unload with the last container, the
// apparmor.required and apparmor.allow_localhost_profiles keys, a CRI pod
// serving HTTP under its profile, and AppArmor denials reaching the pod's
// denial sink. It also checks what `stockade check` reports about the node.
//
// On a host without AppArmor (this project's CI machine) every test skips
// with the reason; the VM tier (make vm-test) sets STOCKADE_REQUIRE_APPARMOR=1
// and STOCKADE_REQUIRE_CGROUP2=1, which turn those skips into failures, so
// the tier cannot pass without exercising anything.
package apparmor

import (
	"os"
	"testing"

	"github.com/stockade-dev/stockade/integration/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
