package seccomp

import (
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestCacheKeyCoversInputs: for inputs that differ in each thing Generate
// reads, in any order and repeated, the cache returns exactly what
// Generate returns; a caller changing a returned profile changes no later
// result.
func TestCacheKeyCoversInputs(t *testing.T) {
	pod := allowList(specs.LinuxSyscall{Names: []string{"read", "write", "exit_group", "futex"}, Action: specs.ActAllow})
	cases := []struct {
		spec *specs.Spec
		p    Policy
	}{
		{specWith(defaultCaps), Policy{Arch: "amd64"}},
		{specWith(capSets["sysadmin"]), Policy{Arch: "amd64"}},
		{specWith(nil), Policy{Arch: "amd64"}},
		{specWith(defaultCaps), Policy{Arch: "amd64", Mode: ModeComplain}},
		{specWith(defaultCaps), Policy{Arch: "arm64"}},
		{specWith(defaultCaps), Policy{Arch: "amd64", CompatABIs: []string{"x86"}}},
		{specWith(defaultCaps), Policy{Arch: "amd64", Pod: pod}},
		{specWith(defaultCaps), Policy{Arch: "amd64", Recorded: pod}},
	}
	c := NewCache(len(cases))
	for round := 0; round < 3; round++ {
		for i, tc := range cases {
			want, err := Generate(tc.spec, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Generate(tc.spec, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d case %d: cached profile differs from Generate's", round, i)
			}
			// What the denials step does to the spec's profile.
			got.Syscalls[0].Action = specs.ActNotify
			got.Syscalls[0].Names[0] = "changed"
			got.Architectures[0] = "changed"
		}
	}
	if len(c.m) != len(cases) {
		t.Errorf("%d entries for %d distinct inputs", len(c.m), len(cases))
	}
}

func TestCacheBoundAndErrors(t *testing.T) {
	c := NewCache(2)
	for _, caps := range [][]string{nil, defaultCaps, capSets["sysadmin"]} {
		if _, err := c.Generate(specWith(caps), Policy{Arch: "amd64"}); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.m) != 2 || len(c.order) != 2 {
		t.Errorf("cache holds %d/%d entries, want at most 2", len(c.m), len(c.order))
	}
	for i := 0; i < 2; i++ {
		if _, err := c.Generate(specWith(nil), Policy{Arch: "amd64", Mode: "loud"}); err == nil {
			t.Fatal("an invalid policy gave a profile")
		}
	}
	if len(c.m) != 2 {
		t.Errorf("an error was cached")
	}
}
