package userns

import (
	"errors"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParsePool(t *testing.T) {
	for _, tc := range []struct {
		in          string
		start, size uint32
	}{
		{"2147483648-2214592511", 1 << 31, 1024 * RangeSize},
		{" 2147483648+67108864 ", 1 << 31, 1024 * RangeSize},
		{"65536-131071", 65536, RangeSize},
		{"100000+100000", 100000, 100000},           // a tail smaller than a range is allowed, unused
		{"4294901759+65536", 4294901759, RangeSize}, // last ID 4294967294, the last valid one
	} {
		p, err := ParsePool(tc.in)
		if err != nil {
			t.Errorf("ParsePool(%q): %v", tc.in, err)
			continue
		}
		if p.Start != tc.start || p.Size != tc.size || p.Source != "userns.pool" {
			t.Errorf("ParsePool(%q) = %+v, want start %d size %d", tc.in, p, tc.start, tc.size)
		}
	}
}

func TestParsePoolErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "want START-END or START+SIZE"},
		{"2147483648", "want START-END or START+SIZE"},
		{"abc-def", "not a number"},
		{"0x10000+65536", "not a number"},
		{"2147483648+", "not a number"},
		{"-5+65536", "not a number"},
		{"200000-100000", "end 100000 before start 200000"},
		{"1000-70000", "inside the host's own IDs"},
		{"65536+4294967295", "extends past the last valid ID"},
		{"100000+1000", "smaller than one pod range"},
		{"4294901760+65536", "extends past the last valid ID"},
		{"4294967296+65536", "not a number"},
	} {
		_, err := ParsePool(tc.in)
		if err == nil {
			t.Errorf("ParsePool(%q) succeeded", tc.in)
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParsePool(%q) = %v, want ErrInvalid mentioning %q", tc.in, err, tc.want)
		}
	}
}

func TestDefaultPool(t *testing.T) {
	p := DefaultPool()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.Ranges() != DefaultPoolRanges || p.Start != 1<<31 {
		t.Fatalf("default pool %v: %d ranges", p, p.Ranges())
	}
	if got := p.String(); got != "2147483648-2214592511 (built-in default)" {
		t.Fatalf("String() = %q", got)
	}
}

func TestRange(t *testing.T) {
	a := Range{Start: 100000, Size: RangeSize}
	b := Range{Start: 165536, Size: RangeSize}
	c := Range{Start: 165535, Size: 2}
	if a.Overlaps(b) || b.Overlaps(a) {
		t.Error("adjacent ranges overlap")
	}
	if !a.Overlaps(c) || !c.Overlaps(b) {
		t.Error("straddling range does not overlap")
	}
	top := Range{Start: MaxIDEnd - RangeSize, Size: RangeSize}
	if top.End() != MaxIDEnd {
		t.Errorf("End() wrapped: %d", top.End())
	}
	want := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: RangeSize}}
	if got := a.Mappings(); !SameMappings(got, want) {
		t.Errorf("Mappings() = %v", got)
	}
	if a.String() != "100000-165535" {
		t.Errorf("String() = %q", a.String())
	}
}
