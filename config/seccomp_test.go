package config

import (
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestSeccompCompatABIs(t *testing.T) {
	if c := Default(); len(c.Seccomp.CompatABIs) != 0 || c.Seccomp.AllowCompatABIAnnotation {
		t.Fatalf("default compat ABIs %q, annotation %v: want none, off", c.Seccomp.CompatABIs, c.Seccomp.AllowCompatABIAnnotation)
	}
	valid := CompatABINames(runtime.GOARCH)
	if len(valid) == 0 {
		t.Skipf("no compat ABIs on %s", runtime.GOARCH)
	}
	c, err := Parse([]byte("[seccomp]\ncompat_abis = [\"" + strings.Join(valid, "\", \"") + "\"]\nallow_compat_abi_annotation = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Seccomp.CompatABIs, valid) || !c.Seccomp.AllowCompatABIAnnotation {
		t.Errorf("parsed %+v", c.Seccomp)
	}
	other := "arm"
	if runtime.GOARCH == "arm64" {
		other = "x86"
	}
	for doc, want := range map[string]string{
		"[seccomp]\ncompat_abis = [\"i386\"]\n":                                   `seccomp.compat_abis[0]: "i386"`,
		"[seccomp]\ncompat_abis = [\"" + other + "\"]\n":                          `seccomp.compat_abis[0]: "` + other + `" is not a compat ABI on ` + runtime.GOARCH,
		"[seccomp]\ncompat_abis = [\"" + valid[0] + "\", \"" + valid[0] + "\"]\n": `seccomp.compat_abis[1]: "` + valid[0] + `" is named twice`,
	} {
		if _, err := Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want %s", doc, err, want)
		}
	}
}
