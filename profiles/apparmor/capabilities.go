package apparmor

import (
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// capNames are the Linux capabilities in kernel order (CAP_CHOWN = 0 …
// CAP_CHECKPOINT_RESTORE = 40), spelled as AppArmor spells them. The order
// is the order of the rendered rules, so profiles are stable.
var capNames = []string{
	"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill",
	"setgid", "setuid", "setpcap", "linux_immutable", "net_bind_service",
	"net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
	"sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
	"sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time",
	"sys_tty_config", "mknod", "lease", "audit_write", "audit_control",
	"setfcap", "mac_override", "mac_admin", "syslog", "wake_alarm",
	"block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
}

var capIndex = func() map[string]int {
	m := make(map[string]int, len(capNames))
	for i, n := range capNames {
		m[n] = i
	}
	return m
}()

// capabilityRules returns the AppArmor names of the capabilities in the
// spec's bounding set, in kernel order. The bounding set is the ceiling for
// every other set after exec, so nothing outside it can be needed. An
// unknown name is an error rather than skipped: a typo in a spec must not
// be mistaken for a capability the container does not get, and
// apparmor_parser would reject it at load time anyway.
func capabilityRules(spec *specs.Spec) ([]string, error) {
	if spec.Process == nil || spec.Process.Capabilities == nil {
		return nil, nil
	}
	have := make([]bool, len(capNames))
	for _, c := range spec.Process.Capabilities.Bounding {
		i, ok := capIndex[capabilityName(c)]
		if !ok {
			return nil, &InvalidError{Field: "bounding capability", Value: c, Reason: "unknown capability"}
		}
		have[i] = true
	}
	var out []string
	for i, ok := range have {
		if ok {
			out = append(out, capNames[i])
		}
	}
	return out, nil
}

// capabilityName maps "CAP_NET_ADMIN" to "net_admin". The OCI spec spells
// capabilities in upper case with the CAP_ prefix; anything else maps to ""
// so that it fails the lookup.
func capabilityName(c string) string {
	n, ok := strings.CutPrefix(c, "CAP_")
	if !ok || strings.ToUpper(n) != n {
		return ""
	}
	return strings.ToLower(n)
}
