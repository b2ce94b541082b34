package recorded

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stockade-dev/stockade/internal/golden"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/profiles/seccomp"
)

// goldenProfile is two recordings of a web server, with two images (one
// without a digest).
func goldenProfile(t *testing.T) *Profile {
	second := New(shopWebApp, Image{Name: "docker.io/library/nginx:1.28"}, t0.Add(26*time.Hour),
		map[specs.Arch][]string{specs.ArchX86_64: {"getrandom", "read", "rt_sigsuspend"}})
	return mustMerge(t, webProfile(), second)
}

func armProfile() *Profile {
	return New(Name{"shop", "web", "app"}, Image{Name: "docker.io/library/nginx:1.27"}, t0,
		map[specs.Arch][]string{
			specs.ArchAARCH64: strings.Fields("accept4 bind close epoll_pwait openat read write"),
			specs.ArchARM:     strings.Fields("read write"),
		})
}

// TestGolden pins the OCI export and the stored form, so that every change
// to their shape shows up as a reviewable diff (the SPO export has its own
// in profiles/recorded/spo). Regenerate with:
// go test -tags seccomp ./profiles/recorded/ -run TestGolden -update
func TestGolden(t *testing.T) {
	for _, c := range []struct {
		file   string
		render func() ([]byte, error)
	}{
		{"amd64-oci.json", func() ([]byte, error) {
			out, err := json.MarshalIndent(goldenProfile(t).OCI("amd64"), "", "  ")
			return append(out, '\n'), err
		}},
		{"arm64-oci.json", func() ([]byte, error) {
			out, err := json.MarshalIndent(armProfile().OCI("arm64"), "", "  ")
			return append(out, '\n'), err
		}},
		{"amd64-stored.json", func() ([]byte, error) { return Encode(goldenProfile(t)) }},
	} {
		t.Run(c.file, func(t *testing.T) {
			got, err := c.render()
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, c.file, got)
		})
	}
}

// TestStoredGoldenDecodes: the stored golden file is what an older
// stockade wrote; it must keep decoding.
func TestStoredGoldenDecodes(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "amd64-stored.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(data, "amd64"); err != nil {
		t.Fatal(err)
	}
}

func TestOCI(t *testing.T) {
	p := goldenProfile(t)
	o := p.OCI("amd64")
	if o.DefaultAction != specs.ActErrno || o.DefaultErrnoRet == nil || *o.DefaultErrnoRet != 1 {
		t.Errorf("default %s/%v, want SCMP_ACT_ERRNO/EPERM", o.DefaultAction, o.DefaultErrnoRet)
	}
	if want := []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}; !slices.Equal(o.Architectures, want) {
		t.Errorf("architectures %v, want %v", o.Architectures, want)
	}
	if len(o.Syscalls) != 1 || o.Syscalls[0].Action != specs.ActAllow || len(o.Syscalls[0].Args) != 0 {
		t.Fatalf("rules %+v, want one unconditional allow rule", o.Syscalls)
	}
	names := o.Syscalls[0].Names
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("names not sorted and unique: %v", names)
	}
	for _, n := range append(p.Names(), seccomp.InitSyscalls()...) {
		if !slices.Contains(names, n) {
			t.Errorf("%s missing from the allow-list", n)
		}
	}
	// Pure: the profile is unchanged and a second call gives the same.
	before := mustEncode(t, p)
	again, _ := json.Marshal(p.OCI("amd64"))
	first, _ := json.Marshal(o)
	if !bytes.Equal(first, again) || !bytes.Equal(before, mustEncode(t, p)) {
		t.Error("OCI is not deterministic or changed the profile")
	}
	if act, errno := seccomp.Evaluate(o, "mount", [6]uint64{}); act != specs.ActErrno || errno != 1 {
		t.Errorf("mount: %s/%d, want ERRNO/EPERM", act, errno)
	}
	if act, _ := seccomp.Evaluate(o, "accept4", [6]uint64{}); act != specs.ActAllow {
		t.Errorf("accept4: %s, want allowed", act)
	}
}

// TestAllowList: the list OCI allows is AllowList, and a caller that
// changes the returned slice changes neither the profile nor the next
// export.
func TestAllowList(t *testing.T) {
	p := goldenProfile(t)
	list := p.AllowList()
	if !slices.Equal(list, p.OCI("amd64").Syscalls[0].Names) {
		t.Fatalf("AllowList %v differs from the OCI export's names", list)
	}
	want := slices.Clone(list)
	list[0] = "not-a-syscall"
	if got := p.AllowList(); !slices.Equal(got, want) {
		t.Errorf("AllowList after changing an earlier result: %v, want %v", got, want)
	}
}

// TestOCICompiles: libseccomp loads the exported profile on every ABI,
// names that exist on only some of them included (socketcall).
func TestOCICompiles(t *testing.T) {
	if !seccomp.CompileSupported {
		t.Skip("built without libseccomp (-tags seccomp, cgo)")
	}
	for _, c := range []struct {
		goarch string
		p      *Profile
		native specs.Arch
	}{
		{"amd64", goldenProfile(t), specs.ArchX86_64},
		{"arm64", armProfile(), specs.ArchAARCH64},
	} {
		if _, err := seccomp.Compile(c.p.OCI(c.goarch), c.native); err != nil {
			t.Errorf("%s: %v", c.goarch, err)
		}
	}
}
