package main

import (
	"strings"
	"testing"

	"github.com/stockade-dev/stockade/shim/denials"
)

// TestDenialsTableSource: the table says which mechanism denied; an
// AppArmor record shows its operation and path (or capability) where a
// seccomp record shows its syscall.
func TestDenialsTableSource(t *testing.T) {
	root := fixture(t)
	s := denials.NewFileSink(root, 1<<20, 5)
	r := drec("shop", "web-0", "app", 1, 0)
	r.Syscall, r.Source, r.Operation, r.Path, r.DeniedMask = "", denials.SourceAppArmor, "mknod", "/sys/fs/bpf/x", "c"
	c := drec("shop", "web-0", "app", 2, 0)
	c.Syscall, c.Source, c.Operation, c.Capability = "", denials.SourceAppArmor, "capable", "net_admin"
	writeRecs(t, s, r, c)
	_ = s.Close()
	_, out, _ := runD(t, "--dir", root, "-n", "shop")
	if !strings.Contains(out, "apparmor  mknod /sys/fs/bpf/x") || !strings.Contains(out, "apparmor  capable net_admin") {
		t.Errorf("table:\n%s", out)
	}
}
