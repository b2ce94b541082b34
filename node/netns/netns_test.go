package netns

import (
	"errors"
	"testing"

	"github.com/stockade-dev/stockade/profiles/userns"
)

func TestNetSysctlPath(t *testing.T) {
	for key, want := range map[string]string{
		"net.ipv4.ip_unprivileged_port_start": "/proc/sys/net/ipv4/ip_unprivileged_port_start",
		"net/ipv4/conf/eth0.100/forwarding":   "/proc/sys/net/ipv4/conf/eth0.100/forwarding",
	} {
		if got, err := NetSysctlPath(key); err != nil || got != want {
			t.Errorf("NetSysctlPath(%q) = %q, %v", key, got, err)
		}
	}
	for _, bad := range []string{"kernel.shmmax", "net", "net..x", "net/../../kernel/x", "net/ipv4/", "network.x"} {
		if _, err := NetSysctlPath(bad); !errors.Is(err, userns.ErrInvalid) {
			t.Errorf("NetSysctlPath(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if !IsNetSysctl("net.core.somaxconn") || IsNetSysctl("kernel.msgmax") || IsNetSysctl("network") {
		t.Error("IsNetSysctl")
	}
}
