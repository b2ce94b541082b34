package seccomp

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stockade-dev/stockade/internal/golden"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestGolden pins the generated profiles for representative containers, so
// every change to the baseline shows up as a reviewable diff. Regenerate
// with: go test ./profiles/seccomp/ -run TestGolden -update
func TestGolden(t *testing.T) {
	pod := readPod(t, "pod-localhost.json")
	for _, c := range []struct {
		file string
		caps []string
		p    Policy
	}{
		{"amd64-nocaps.json", nil, Policy{Arch: "amd64"}},
		{"amd64-default.json", defaultCaps, Policy{Arch: "amd64"}},
		{"amd64-sysadmin.json", capSets["sysadmin"], Policy{Arch: "amd64"}},
		{"amd64-default-complain.json", defaultCaps, Policy{Arch: "amd64", Mode: ModeComplain}},
		{"amd64-default-localhost.json", defaultCaps, Policy{Arch: "amd64", Pod: pod}},
		{"arm64-default.json", defaultCaps, Policy{Arch: "arm64"}},
		{"amd64-default-compat.json", defaultCaps, Policy{Arch: "amd64", CompatABIs: []string{"x32", "x86"}}},
		{"arm64-default-compat.json", defaultCaps, Policy{Arch: "arm64", CompatABIs: []string{"arm"}}},
	} {
		t.Run(c.file, func(t *testing.T) {
			got, err := json.MarshalIndent(mustGenerate(t, specWith(c.caps), c.p), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden.Check(t, c.file, got)
		})
	}
}

func readPod(t testing.TB, name string) *specs.LinuxSeccomp {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var p specs.LinuxSeccomp
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}
