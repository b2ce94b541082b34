package userns

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseIDMap(t *testing.T) {
	m, err := ParseIDMap(strings.NewReader("         0 2147483648      65536\n     65536      10000          1\n\n"))
	want := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1 << 31, Size: 65536}, {ContainerID: 65536, HostID: 10000, Size: 1}}
	if err != nil || !SameMappings(m, want) {
		t.Fatalf("ParseIDMap = %v, %v", m, err)
	}
	for _, bad := range []string{"0 1\n", "0 1 2 3\n", "a 1 2\n", "0 1 4294967296\n", strings.Repeat("0 0 1\n", maxIDMapLines+1)} {
		if _, err := ParseIDMap(strings.NewReader(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseIDMap(%.20q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestReadProcIDMaps(t *testing.T) {
	proc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "42"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(proc, "42", "uid_map"), []byte("0 2147483648 65536\n"), 0o644)
	os.WriteFile(filepath.Join(proc, "42", "gid_map"), []byte("0 2147549184 65536\n"), 0o644)
	u, g, err := ReadProcIDMaps(proc, 42)
	if err != nil || u[0].HostID != 1<<31 || g[0].HostID != 1<<31+65536 {
		t.Fatalf("ReadProcIDMaps = %v %v %v", u, g, err)
	}
	if _, _, err := ReadProcIDMaps(proc, 43); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing pid: %v", err)
	}
	// The real thing parses too.
	if _, _, err := ReadProcIDMaps("/proc", os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func TestMappingHelpers(t *testing.T) {
	if !IsInitialMapping([]specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 4294967295}}) {
		t.Error("identity map not recognised")
	}
	r := Range{Start: 1 << 31, Size: RangeSize}
	if IsInitialMapping(r.Mappings()) {
		t.Error("pod map taken for the initial one")
	}
	if h, ok := ToHost(r.Mappings(), 1000); !ok || h != 1<<31+1000 {
		t.Errorf("ToHost(1000) = %d %v", h, ok)
	}
	if _, ok := ToHost(r.Mappings(), RangeSize); ok {
		t.Error("ToHost mapped an ID past the range")
	}
	opts := RootfsMountOptions(r.Mappings(), r.Mappings())
	if !slices.Equal(opts, []string{"uidmap=0:2147483648:65536", "gidmap=0:2147483648:65536"}) {
		t.Errorf("RootfsMountOptions = %v", opts)
	}
	if RootfsMountOptions(nil, r.Mappings()) != nil {
		t.Error("options without a uid map")
	}
	two := append(r.Mappings(), specs.LinuxIDMapping{ContainerID: 65536, HostID: 5, Size: 1})
	if got := MountOptionValue(two); got != "0:2147483648:65536,65536:5:1" {
		t.Errorf("MountOptionValue = %q", got)
	}
}

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
		if _, err := NetSysctlPath(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("NetSysctlPath(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if !IsNetSysctl("net.core.somaxconn") || IsNetSysctl("kernel.msgmax") || IsNetSysctl("network") {
		t.Error("IsNetSysctl")
	}
}

func TestIDMapSupported(t *testing.T) {
	ok, fs, err := IDMapSupported(t.TempDir())
	if err != nil || fs == "" {
		t.Fatalf("IDMapSupported(tmp) = %v %q %v", ok, fs, err)
	}
	t.Logf("temp dir on %s: idmap supported = %v", fs, ok)
	if ok, fs, err := IDMapSupported("/proc/self"); ok || err != nil {
		t.Errorf("procfs (%s) reported idmappable: %v", fs, err)
	}
	if _, _, err := IDMapSupported("/does/not/exist"); err == nil {
		t.Error("missing path: no error")
	}
	for rel, want := range map[string][2]int{"6.1.0-18-amd64": {6, 1}, "5.15": {5, 15}, "6.18.44-fc-v657": {6, 18}, "junk": {0, 0}, "6.x": {0, 0}} {
		if a, b := parseKernelRelease(rel); a != want[0] || b != want[1] {
			t.Errorf("parseKernelRelease(%q) = %d.%d", rel, a, b)
		}
	}
}
