package recorded

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var (
	t0         = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	shopWebApp = Name{"shop", "web", "app"}
)

func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// webProfile is a recording of a small web server on amd64.
func webProfile() *Profile {
	return New(shopWebApp, Image{Name: "docker.io/library/nginx:1.27", Digest: digestOf("nginx")}, t0,
		map[specs.Arch][]string{
			specs.ArchX86_64: strings.Fields(`accept4 bind brk close epoll_create1 epoll_ctl epoll_wait
				fstat listen mmap openat read recvfrom sendfile setsockopt socket write writev`),
			specs.ArchX86: {"socketcall", "read", "write"},
		})
}

func mustEncode(t *testing.T, p *Profile) []byte {
	t.Helper()
	data, err := Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestNewNormalizes(t *testing.T) {
	in := map[specs.Arch][]string{
		specs.ArchX86_64: {"write", "read", "write", "close"},
		specs.ArchX32:    {},
	}
	at := time.Date(2026, 3, 4, 13, 0, 0, 0, time.FixedZone("CET", 3600))
	p := New(shopWebApp, Image{}, at, in)
	if want := map[specs.Arch][]string{specs.ArchX86_64: {"close", "read", "write"}}; !reflect.DeepEqual(p.Syscalls, want) {
		t.Errorf("Syscalls = %v, want %v", p.Syscalls, want)
	}
	if got := in[specs.ArchX86_64]; !slices.Equal(got, []string{"write", "read", "write", "close"}) {
		t.Errorf("New changed its argument: %v", got)
	}
	if p.Images != nil {
		t.Errorf("Images = %v, want none for an empty image name", p.Images)
	}
	if p.Runs != 1 || !p.FirstRecorded.Equal(t0) || p.FirstRecorded.Location() != time.UTC || !p.LastRecorded.Equal(t0) {
		t.Errorf("Runs %d, First %v, Last %v", p.Runs, p.FirstRecorded, p.LastRecorded)
	}
	if p.APIVersion != APIVersion || p.Kind != Kind {
		t.Errorf("apiVersion %q kind %q", p.APIVersion, p.Kind)
	}
	if err := p.Validate("amd64"); err != nil {
		t.Errorf("New's profile does not validate: %v", err)
	}
}

// randomProfile draws a profile of shopWebApp from small pools, so that
// merges overlap; times are in assorted zones to check that Merge's
// result does not depend on which input an equal instant came from.
func randomProfile(r *rand.Rand) *Profile {
	pool := map[specs.Arch][]string{
		specs.ArchX86_64: strings.Fields("read write openat close mmap brk futex accept4 socket bind"),
		specs.ArchX86:    strings.Fields("read write socketcall mmap2 brk"),
		specs.ArchX32:    strings.Fields("read write close"),
	}
	sys := map[specs.Arch][]string{}
	for arch, names := range pool {
		for _, n := range names {
			if r.IntN(3) == 0 {
				sys[arch] = append(sys[arch], n)
			}
		}
	}
	zones := []*time.Location{time.UTC, time.FixedZone("A", 3600), time.FixedZone("B", -7200)}
	first := t0.Add(time.Duration(r.IntN(4)) * time.Hour).In(zones[r.IntN(len(zones))])
	p := New(shopWebApp, Image{}, first, sys)
	for range r.IntN(3) {
		img := Image{Name: fmt.Sprintf("registry.example/img%d", r.IntN(3))}
		if r.IntN(2) == 0 {
			img.Digest = digestOf(img.Name)
		}
		p.Images = append(p.Images, img)
	}
	p.Images = normalizeImages(p.Images)
	p.Runs = 1 + r.IntN(5)
	p.FirstRecorded = first
	p.LastRecorded = first.Add(time.Duration(r.IntN(4)) * time.Hour).In(zones[r.IntN(len(zones))])
	return p
}

func mustMerge(t *testing.T, a, b *Profile) *Profile {
	t.Helper()
	m, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMergeLaws(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		a, b, c := randomProfile(r), randomProfile(r), randomProfile(r)
		before := [][]byte{mustEncode(t, a), mustEncode(t, b), mustEncode(t, c)}

		ab, ba := mustMerge(t, a, b), mustMerge(t, b, a)
		if x, y := mustEncode(t, ab), mustEncode(t, ba); !bytes.Equal(x, y) {
			t.Fatalf("case %d: Merge is not commutative:\n%s\n%s", i, x, y)
		}
		left, right := mustMerge(t, ab, c), mustMerge(t, a, mustMerge(t, b, c))
		if x, y := mustEncode(t, left), mustEncode(t, right); !bytes.Equal(x, y) {
			t.Fatalf("case %d: Merge is not associative:\n%s\n%s", i, x, y)
		}
		for j, p := range []*Profile{a, b, c} {
			if !bytes.Equal(mustEncode(t, p), before[j]) {
				t.Fatalf("case %d: Merge changed input %d", i, j)
			}
		}

		if ab.Runs != a.Runs+b.Runs {
			t.Fatalf("case %d: runs %d, want %d", i, ab.Runs, a.Runs+b.Runs)
		}
		wantFirst, wantLast := a.FirstRecorded, a.LastRecorded
		if b.FirstRecorded.Before(wantFirst) {
			wantFirst = b.FirstRecorded
		}
		if b.LastRecorded.After(wantLast) {
			wantLast = b.LastRecorded
		}
		if !ab.FirstRecorded.Equal(wantFirst) || !ab.LastRecorded.Equal(wantLast) {
			t.Fatalf("case %d: first/last %v %v, want %v %v", i, ab.FirstRecorded, ab.LastRecorded, wantFirst, wantLast)
		}
		for _, arch := range []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32} {
			want := append(slices.Clone(a.Syscalls[arch]), b.Syscalls[arch]...)
			slices.Sort(want)
			want = slices.Compact(want)
			if !slices.Equal(ab.Syscalls[arch], want) {
				t.Fatalf("case %d: %s = %v, want %v", i, arch, ab.Syscalls[arch], want)
			}
		}
		if err := ab.Validate("amd64"); err != nil {
			t.Fatalf("case %d: merged profile invalid: %v", i, err)
		}
	}
}

func TestMergeIdempotentSyscalls(t *testing.T) {
	p := webProfile()
	m := mustMerge(t, p, p)
	if !reflect.DeepEqual(m.Syscalls, p.Syscalls) || !reflect.DeepEqual(m.Images, p.Images) || m.Runs != 2 {
		t.Errorf("Merge(p, p) = %+v", m)
	}
}

func TestMergeRefusesOtherName(t *testing.T) {
	a := webProfile()
	b := New(Name{"shop", "web", "sidecar"}, Image{}, t0, nil)
	if _, err := Merge(a, b); err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "shop/web/sidecar") {
		t.Fatalf("Merge of different names: %v", err)
	}
	if _, err := Merge(a, nil); err == nil {
		t.Fatal("Merge with nil succeeded")
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	p := mustMerge(t, webProfile(), New(shopWebApp, Image{Name: "docker.io/library/nginx:1.28"}, t0.Add(time.Hour),
		map[specs.Arch][]string{specs.ArchX86_64: {"getrandom", "read"}, specs.ArchX32: {"read"}}))
	data := mustEncode(t, p)
	if !bytes.HasSuffix(data, []byte("}\n")) || !bytes.Contains(data, []byte("\n  \"namespace\": \"shop\",\n")) {
		t.Errorf("not indented JSON with a trailing newline:\n%s", data)
	}
	got, err := Decode(data, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if again := mustEncode(t, got); !bytes.Equal(again, data) {
		t.Errorf("round trip differs:\n%s\n%s", data, again)
	}
	if got.Name != shopWebApp || got.Runs != 2 || got.Checksum != p.Checksum || !got.LastRecorded.Equal(t0.Add(time.Hour)) ||
		!reflect.DeepEqual(got.Syscalls, p.Syscalls) || !reflect.DeepEqual(got.Images, p.Images) {
		t.Errorf("decoded %+v, want %+v", got, p)
	}
	// json.Marshal of a profile writes the stored document too.
	viaMarshal, err := json.MarshalIndent(got, "", "  ")
	if err != nil || !bytes.Equal(append(viaMarshal, '\n'), data) {
		t.Errorf("json.MarshalIndent differs from Encode (%v):\n%s", err, viaMarshal)
	}
}

func TestEncodeRefusesBadShape(t *testing.T) {
	for name, edit := range map[string]func(p *Profile){
		"kind":     func(p *Profile) { p.Kind = "SeccompProfile" },
		"name":     func(p *Profile) { p.Name.Workload = "Web" },
		"runs":     func(p *Profile) { p.Runs = 0 },
		"unsorted": func(p *Profile) { p.Syscalls[specs.ArchX86_64] = []string{"write", "read"} },
		"times":    func(p *Profile) { p.FirstRecorded = p.LastRecorded.Add(time.Second) },
		"images":   func(p *Profile) { p.Images = append(p.Images, p.Images[0]) },
	} {
		p := webProfile()
		edit(p)
		if _, err := Encode(p); err == nil || !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: Encode: %v, want an invalid-argument error", name, err)
		}
	}
}

// resealed writes a stored document m with a checksum computed from the
// documented canonical form (sorted keys, compact, no HTML escaping), so
// that a test corrupting a field sees the field's error, not the
// checksum's; it also pins the canonical form independently of the code.
func resealed(t *testing.T, m map[string]any) []byte {
	t.Helper()
	delete(m, "checksum")
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	m["checksum"] = "sha256:" + hex.EncodeToString(sum[:])
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func docMap(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func x8664(m map[string]any) []any {
	return m["syscalls"].(map[string]any)["SCMP_ARCH_X86_64"].([]any)
}

func TestResealedMatchesEncode(t *testing.T) {
	data := mustEncode(t, webProfile())
	m := docMap(t, data)
	want := m["checksum"]
	resealed(t, m)
	if m["checksum"] != want {
		t.Fatalf("canonical form drifted from the documented one: %s vs %s", m["checksum"], want)
	}
}

// TestChecksumWithJQ checks the command the package documentation gives
// operators for verifying a stored file by hand.
func TestChecksumWithJQ(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil {
		t.Skip("jq not installed")
	}
	p := webProfile()
	path := filepath.Join(t.TempDir(), "p.json")
	if err := os.WriteFile(path, mustEncode(t, p), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("jq", "-cjS", "del(.checksum)", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(out)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != p.Checksum {
		t.Errorf("jq's canonical form hashes to %s, checksum is %s", got, p.Checksum)
	}
}

func TestDecodeCorrupt(t *testing.T) {
	good := mustEncode(t, webProfile())
	for _, tc := range []struct {
		name string
		data func() []byte
		want string
	}{
		{"empty", func() []byte { return nil }, "unexpected end of JSON input"},
		{"truncated", func() []byte { return good[:len(good)/2] }, "unexpected end of JSON input"},
		{"trailing data", func() []byte { return append(slices.Clone(good), "{}\n"...) }, "after top-level value"},
		{"not an object", func() []byte { return []byte(`["read"]`) }, "cannot unmarshal array"},
		{"null", func() []byte { return []byte("null") }, "apiVersion"},
		{"edited syscall list", func() []byte {
			m := docMap(t, good)
			m["syscalls"].(map[string]any)["SCMP_ARCH_X86_64"] = slices.DeleteFunc(x8664(m), func(v any) bool { return v == "read" })
			out, _ := json.MarshalIndent(m, "", "  ")
			return out
		}, "checksum: content hashes to"},
		{"edited runs", func() []byte { return bytes.Replace(good, []byte(`"runs": 1`), []byte(`"runs": 2`), 1) }, "checksum: content hashes to"},
		{"missing checksum", func() []byte {
			m := docMap(t, good)
			delete(m, "checksum")
			out, _ := json.Marshal(m)
			return out
		}, "checksum: missing"},
		{"unknown field", func() []byte {
			m := docMap(t, good)
			m["comment"] = "hand edited"
			return resealed(t, m)
		}, `unknown field "comment"`},
		{"unknown image field", func() []byte {
			m := docMap(t, good)
			m["images"].([]any)[0].(map[string]any)["tag"] = "1.27"
			return resealed(t, m)
		}, `unknown field "tag"`},
		{"unknown syscall", func() []byte {
			m := docMap(t, good)
			m["syscalls"].(map[string]any)["SCMP_ARCH_X86_64"] = append(x8664(m), "zz_not_a_syscall")
			return resealed(t, m)
		}, fmt.Sprintf(`syscalls[SCMP_ARCH_X86_64][%d]: unknown syscall "zz_not_a_syscall"`, len(x8664(docMap(t, good))))},
		{"unsorted syscalls", func() []byte {
			m := docMap(t, good)
			l := x8664(m)
			l[0], l[1] = l[1], l[0]
			return resealed(t, m)
		}, "syscalls[SCMP_ARCH_X86_64][1]: \"accept4\" sorts before \"bind\": not sorted"},
		{"duplicate syscall", func() []byte {
			m := docMap(t, good)
			l := x8664(m)
			l[1] = l[0]
			return resealed(t, m)
		}, `syscalls[SCMP_ARCH_X86_64][1]: "accept4" listed twice`},
		{"foreign ABI", func() []byte {
			m := docMap(t, good)
			m["syscalls"].(map[string]any)["SCMP_ARCH_AARCH64"] = []string{"read"}
			return resealed(t, m)
		}, "syscalls[SCMP_ARCH_AARCH64]: not an ABI of amd64"},
		{"wrong kind", func() []byte {
			m := docMap(t, good)
			m["kind"] = "SeccompProfile"
			return resealed(t, m)
		}, `kind: "SeccompProfile", want "RecordedSeccompProfile"`},
		{"wrong apiVersion", func() []byte {
			m := docMap(t, good)
			m["apiVersion"] = "stockade.dev/v2"
			return resealed(t, m)
		}, `apiVersion: "stockade.dev/v2"`},
		{"bad name", func() []byte {
			m := docMap(t, good)
			m["namespace"] = "../etc"
			return resealed(t, m)
		}, `namespace "../etc"`},
		{"bad digest", func() []byte {
			m := docMap(t, good)
			m["images"].([]any)[0].(map[string]any)["digest"] = "sha256:short"
			return resealed(t, m)
		}, "images[0].digest"},
		{"zero runs", func() []byte {
			m := docMap(t, good)
			m["runs"] = 0
			return resealed(t, m)
		}, "runs: 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Decode(tc.data(), "amd64")
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", p)
			}
			if p != nil {
				t.Errorf("Decode returned a profile with error %v", err)
			}
			if !errdefs.IsDataLoss(err) {
				t.Errorf("%v does not wrap ErrDataLoss", err)
			}
			if errdefs.IsInvalidArgument(err) {
				t.Errorf("%v wraps ErrInvalidArgument; corrupt data is not the caller's mistake", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestDecodeOtherArch(t *testing.T) {
	data := mustEncode(t, New(shopWebApp, Image{}, t0, map[specs.Arch][]string{
		specs.ArchAARCH64: {"read", "write"}, specs.ArchARM: {"read", "write"},
	}))
	if _, err := Decode(data, "arm64"); err != nil {
		t.Fatalf("arm64 profile on arm64: %v", err)
	}
	if _, err := Decode(data, "amd64"); err == nil || !strings.Contains(err.Error(), "syscalls[SCMP_ARCH_AARCH64]: not an ABI of amd64") {
		t.Fatalf("arm64 profile on amd64: %v", err)
	}
	if _, err := Decode(data, "riscv64"); err == nil || !errdefs.IsDataLoss(err) {
		t.Fatalf("unsupported arch: %v", err)
	}
}

func TestValidate(t *testing.T) {
	p := webProfile()
	if err := p.Validate("amd64"); err != nil {
		t.Fatal(err)
	}
	n := len(p.Syscalls[specs.ArchX86_64])
	p.Syscalls[specs.ArchX86_64] = append(p.Syscalls[specs.ArchX86_64], "zzz")
	err := p.Validate("amd64")
	if want := fmt.Sprintf(`syscalls[SCMP_ARCH_X86_64][%d]: unknown syscall "zzz"`, n); err == nil || !strings.Contains(err.Error(), want) || !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Validate: %v, want %q", err, want)
	}
	p = webProfile()
	p.Runs++
	if err := p.Validate("amd64"); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("Validate after an edit: %v", err)
	}
	if _, err := Encode(p); err != nil {
		t.Fatal(err)
	}
	if err := p.Validate("amd64"); err != nil {
		t.Fatalf("Validate after Encode resealed: %v", err)
	}
}

// TestNewOutOfRangeTime: a time JSON cannot hold leaves the profile
// unsealed, and Encode says why, instead of New panicking in a shim.
func TestNewOutOfRangeTime(t *testing.T) {
	p := New(shopWebApp, Image{}, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), nil)
	if p.Checksum != "" {
		t.Fatalf("checksum %q", p.Checksum)
	}
	if _, err := Encode(p); err == nil || !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Encode: %v", err)
	}
	if err := p.Validate("amd64"); err == nil {
		t.Fatal("Validate succeeded")
	}
}

func TestNames(t *testing.T) {
	p := New(shopWebApp, Image{}, t0, map[specs.Arch][]string{
		specs.ArchX86_64: {"read", "write"},
		specs.ArchX86:    {"socketcall", "read"},
		specs.ArchX32:    {"close"},
	})
	if got, want := p.Names(), []string{"close", "read", "socketcall", "write"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	if got := New(shopWebApp, Image{}, t0, nil).Names(); len(got) != 0 {
		t.Errorf("Names() of an empty profile = %v", got)
	}
}
