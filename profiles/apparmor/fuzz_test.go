package apparmor

import (
	"errors"
	"flag"
	"hash/fnv"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Fuzz flags, one bit each.
const (
	fuzzRO1 = 1 << iota
	fuzzRO2
	fuzzReadonlyRoot
	fuzzComplain
	fuzzABI
)

// FuzzRender renders specs with arbitrary mount destinations and
// capabilities and checks that the result is either a clear invalid-argument
// error or a profile that (a) consists only of baseline lines, capability
// lines for the bounding set, and write rules for exactly the spec's
// writable destinations, and (b) compiles. Compiling costs milliseconds, so
// while fuzzing only a sample is compiled; the seed corpus, which plain
// `go test` runs, is compiled in full.
func FuzzRender(f *testing.F) {
	for i, d := range hostileDestinations {
		f.Add(d, "/data", byte(i), []byte{0, 5, 21}, "")
	}
	f.Add("/proc", "/sys/fs/cgroup", byte(fuzzReadonlyRoot), []byte{12, 13}, "")
	f.Add("/", "/etc/hosts", byte(fuzzRO1|fuzzABI), []byte(nil), "CAP_SYS_ADMIN")
	f.Add("/a/../../etc", "//x//", byte(fuzzComplain), []byte{40}, "CAP_BPF,CAP_PERFMON")
	f.Add("relative", "/ok", byte(0), []byte(nil), "")
	f.Add("/nul\x00", "/ok", byte(0), []byte(nil), "")
	f.Add("/ok", "/ok", byte(0), []byte(nil), "CAP_CHOWN,\n  /** rwx,")
	f.Add("/ok", "/ok/nested", byte(fuzzRO1|fuzzReadonlyRoot), []byte(nil), "cap_chown")

	fuzzing := flag.Lookup("test.fuzz").Value.String() != ""
	f.Fuzz(func(t *testing.T, dest1, dest2 string, flags byte, capIdx []byte, rawCaps string) {
		var caps []string
		for _, b := range capIdx {
			caps = append(caps, "CAP_"+strings.ToUpper(capNames[int(b)%len(capNames)]))
		}
		if rawCaps != "" {
			caps = append(caps, strings.Split(rawCaps, ",")...)
		}
		ro := func(bit byte) string {
			if flags&bit != 0 {
				return "ro"
			}
			return "rw"
		}
		spec := &specs.Spec{
			Root:    &specs.Root{Path: "rootfs", Readonly: flags&fuzzReadonlyRoot != 0},
			Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}},
			Mounts: []specs.Mount{
				{Destination: dest1, Type: "bind", Options: []string{"rbind", ro(fuzzRO1)}},
				{Destination: dest2, Type: "bind", Options: []string{"rbind", ro(fuzzRO2)}},
			},
		}
		policy := Policy{Mode: Enforce}
		if flags&fuzzComplain != 0 {
			policy.Mode = Complain
		}
		if flags&fuzzABI != 0 {
			policy.ABI = "abi/3.0"
		}

		p, err := Render(spec, policy)
		if err != nil {
			var ie *InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v is not an InvalidError", err)
			}
			if ie.Field == "mount destination" && ie.Value != dest1 && ie.Value != dest2 {
				t.Fatalf("error %v names neither destination", err)
			}
			return
		}
		checkShape(t, spec, policy, p)
		if !fuzzing || sampled(dest1, dest2, flags) {
			compile(t, p.Text)
		}
	})
}

// sampled picks about one input in 64 for compilation, deterministically.
func sampled(dest1, dest2 string, flags byte) bool {
	h := fnv.New32a()
	h.Write([]byte(dest1 + "\x00" + dest2 + "\x00" + string(rune(flags))))
	return h.Sum32()%64 == 0
}

var (
	capLineRe  = regexp.MustCompile(`^  capability ([a-z_]+),$`)
	fileLineRe = regexp.MustCompile(`^  ((?:audit )?deny )?"((?:[A-Za-z0-9/._-]|\\[0-3][0-7][0-7])+)\{,/\*\*\}" wl,$`)
	octalRe    = regexp.MustCompile(`\\([0-3][0-7][0-7])`)
)

const rootWriteLine = "  /{,**} wl,"

// checkShape fails unless every line of p is a baseline line, a capability
// from the bounding set, or a write rule (or deny) for a destination of the
// right writability. A line injected through a destination cannot pass.
func checkShape(t *testing.T, spec *specs.Spec, policy Policy, p Profile) {
	t.Helper()
	if !ValidName(p.Name) {
		t.Fatalf("invalid name %q", p.Name)
	}
	// The baseline: the same policy over a spec with nothing in it.
	base, err := Render(&specs.Spec{}, policy)
	if err != nil {
		t.Fatal(err)
	}
	// Baseline lines must appear exactly as in the baseline, in order and
	// no more often, so an injected "}" or header cannot hide among them.
	var baseline []string
	isBaseline := map[string]bool{}
	for _, l := range strings.Split(strings.ReplaceAll(base.Text, base.Name, p.Name), "\n") {
		if l != rootWriteLine && l != "  "+writableComment {
			baseline = append(baseline, l)
			isBaseline[l] = true
		}
	}

	writable := map[string]bool{"/": !spec.Root.Readonly}
	for _, m := range spec.Mounts {
		writable[path.Clean(m.Destination)] = !readOnly(m.Options)
	}
	bounding := map[string]bool{}
	for _, c := range spec.Process.Capabilities.Bounding {
		bounding[c] = true
	}

	lines := strings.Split(p.Text, "\n")
	var seen []string
	for i, l := range lines {
		switch {
		case isBaseline[l]:
			seen = append(seen, l)
		case l == "  "+writableComment || l == "  "+readonlyComment:
		case l == rootWriteLine:
			if !writable["/"] {
				t.Fatalf("line %d: root is writable in the profile, not in the spec", i+1)
			}
		case capLineRe.MatchString(l):
			c := capLineRe.FindStringSubmatch(l)[1]
			if !bounding["CAP_"+strings.ToUpper(c)] {
				t.Fatalf("line %d: capability %s is not in the bounding set", i+1, c)
			}
		case fileLineRe.MatchString(l):
			m := fileLineRe.FindStringSubmatch(l)
			dest := octalRe.ReplaceAllStringFunc(m[2], func(o string) string {
				n, _ := strconv.ParseUint(o[1:], 8, 8)
				return string([]byte{byte(n)})
			})
			w, ok := writable[dest]
			if !ok {
				t.Fatalf("line %d: rule for %q, which the spec does not mount", i+1, dest)
			}
			if deny := m[1] != ""; deny == w {
				t.Fatalf("line %d: %q for a destination whose writability is %v", i+1, l, w)
			}
		default:
			t.Fatalf("line %d: unexpected line %q in\n%s", i+1, l, p.Text)
		}
	}
	if strings.Join(seen, "\n") != strings.Join(baseline, "\n") {
		t.Fatalf("baseline lines changed, reordered or repeated:\n%s", p.Text)
	}
}
