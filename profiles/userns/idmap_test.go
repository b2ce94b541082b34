package userns

import (
	"errors"
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
