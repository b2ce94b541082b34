package apparmorhost

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

func noLookPath(string) (string, error) { return "", errors.New("not in PATH") }

// appArmorHost is a root filesystem with AppArmor fully available.
func appArmorHost() fstest.MapFS {
	return fstest.MapFS{
		"sys/module/apparmor/parameters/enabled": {Data: []byte("Y\n")},
		"sys/kernel/security/apparmor/profiles":  {Data: []byte("docker-default (enforce)\nstockade-0123456789abcdef (complain)\n")},
		"usr/sbin/apparmor_parser":               {Data: []byte("#!"), Mode: 0o755},
		"etc/apparmor.d/abi/3.0":                 {Data: []byte("")},
		"proc/self/attr/apparmor/current":        {Data: []byte("cri-containerd.apparmor.d (enforce)\n")},
		"proc/self/attr/current":                 {Data: []byte("system_u:system_r:other_lsm\n")},
	}
}

func TestProbe(t *testing.T) {
	without := func(keys ...string) fstest.MapFS {
		fsys := appArmorHost()
		for _, k := range keys {
			delete(fsys, k)
		}
		return fsys
	}
	disabled := appArmorHost()
	disabled["sys/module/apparmor/parameters/enabled"] = &fstest.MapFile{Data: []byte("N\n")}

	for _, tc := range []struct {
		name       string
		host       Host
		wantReason string
	}{
		{"no apparmor module", Host{Root: without("sys/module/apparmor/parameters/enabled"), LookPath: noLookPath}, "kernel has no AppArmor support"},
		{"disabled on the command line", Host{Root: disabled, LookPath: noLookPath}, `disabled in the kernel (/sys/module/apparmor/parameters/enabled is "N")`},
		{"no securityfs", Host{Root: without("sys/kernel/security/apparmor/profiles"), LookPath: noLookPath}, "securityfs is not mounted"},
		{"no parser", Host{Root: without("usr/sbin/apparmor_parser"), LookPath: noLookPath}, "apparmor_parser not found"},
		{"configured parser missing", Host{Root: appArmorHost(), ParserPath: "/opt/aa/apparmor_parser", LookPath: noLookPath}, "not found at the configured path /opt/aa/apparmor_parser"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.host.Probe()
			if st.Enabled {
				t.Fatalf("enabled, want not: %+v", st)
			}
			if !strings.Contains(st.Reason, tc.wantReason) {
				t.Errorf("reason %q, want it to contain %q", st.Reason, tc.wantReason)
			}
			if st.Label != "" {
				t.Errorf("label %q read although AppArmor is off", st.Label)
			}
		})
	}

	st := Host{Root: appArmorHost(), LookPath: noLookPath}.Probe()
	want := Status{Enabled: true, Parser: "/usr/sbin/apparmor_parser", ABI: "abi/3.0", Label: "cri-containerd.apparmor.d"}
	if st != want {
		t.Errorf("probe = %+v, want %+v", st, want)
	}

	st = Host{Root: appArmorHost(), LookPath: func(string) (string, error) { return "/usr/local/sbin/apparmor_parser", nil }}.Probe()
	if st.Parser != "/usr/local/sbin/apparmor_parser" {
		t.Errorf("parser from PATH = %q", st.Parser)
	}
	noABI := appArmorHost()
	delete(noABI, "etc/apparmor.d/abi/3.0")
	delete(noABI, "proc/self/attr/apparmor/current")
	if st := (Host{Root: noABI, LookPath: noLookPath}).Probe(); st.ABI != "" || st.Label != "system_u:system_r:other_lsm" {
		t.Errorf("without ABI files and the per-LSM attr: %+v", st)
	}
}

func TestProfileLoaded(t *testing.T) {
	h := Host{Root: appArmorHost()}
	for name, want := range map[string]bool{
		"docker-default":            true,
		"stockade-0123456789abcdef": true,
		"docker":                    false,
		"stockade-0123456789abcde":  false,
	} {
		got, err := h.ProfileLoaded(name)
		if err != nil || got != want {
			t.Errorf("ProfileLoaded(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	if _, err := (Host{Root: fstest.MapFS{}}).ProfileLoaded("x"); err == nil {
		t.Error("no error without securityfs")
	}
}

// TestProbeThisHost documents what the probe says about the machine the
// tests run on (CI has no AppArmor in its kernel).
func TestProbeThisHost(t *testing.T) {
	st := Host{}.Probe()
	if !st.Enabled && st.Reason == "" {
		t.Fatalf("not enabled and no reason: %+v", st)
	}
	t.Logf("this host: %+v", st)
}
