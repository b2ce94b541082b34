package apparmor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stockade-dev/stockade/internal/golden"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stockade-dev/stockade/profiles/apparmor/apparmortest"
)

func TestRenderGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Render(tc.spec(), tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, tc.name+".apparmor", []byte(p.Text))
			if !strings.Contains(p.Text, "profile "+p.Name+" flags=") {
				t.Errorf("profile text does not declare its name %s", p.Name)
			}
		})
	}
}

// TestGoldenCompile compiles every golden profile, so a profile that
// passes review but not the parser cannot be committed.
func TestGoldenCompile(t *testing.T) {
	apparmortest.ParserPath(t)
	files, err := filepath.Glob(filepath.Join("testdata", "*.apparmor"))
	if err != nil || len(files) < len(goldenCases) {
		t.Fatalf("golden profiles missing: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			compile(t, string(b))
		})
	}
}

func TestNameIsContentHash(t *testing.T) {
	a, err := Render(criSpec(false, criDefaultCaps), Policy{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Render(criSpec(false, criDefaultCaps), Policy{Mode: Enforce})
	if a != b {
		t.Errorf("identical specs render differently: %s vs %s", a.Name, b.Name)
	}
	if !ValidName(a.Name) {
		t.Errorf("name %q is not a valid generated name", a.Name)
	}
	for name, other := range map[string]func() (Profile, error){
		"complain": func() (Profile, error) { return Render(criSpec(false, criDefaultCaps), Policy{Mode: Complain}) },
		"fewer caps": func() (Profile, error) {
			return Render(criSpec(false, criDefaultCaps[1:]), Policy{})
		},
		"extra ro mount": func() (Profile, error) {
			return Render(criSpec(false, criDefaultCaps, bind("/data", true)), Policy{})
		},
		"readonly root": func() (Profile, error) { return Render(criSpec(true, criDefaultCaps), Policy{}) },
	} {
		p, err := other()
		if err != nil {
			t.Fatal(err)
		}
		if p.Name == a.Name {
			t.Errorf("%s: same name %s for different content", name, p.Name)
		}
	}
}

func TestComplainFlag(t *testing.T) {
	p, err := Render(criSpec(false, nil), Policy{Mode: Complain})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Text, "flags=(attach_disconnected,mediate_deleted,complain)") {
		t.Errorf("complain mode not in flags:\n%s", p.Text)
	}
	p, _ = Render(criSpec(false, nil), Policy{Mode: Enforce})
	if strings.Contains(p.Text, "complain") {
		t.Errorf("enforce profile mentions complain:\n%s", p.Text)
	}
}

func TestCapabilities(t *testing.T) {
	s := criSpec(false, []string{"CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_CHOWN", "CAP_CHECKPOINT_RESTORE"})
	// Effective holds a capability outside the bounding set: the kernel
	// drops it at exec, so the profile must not grant it.
	s.Process.Capabilities.Effective = append(s.Process.Capabilities.Effective, "CAP_NET_ADMIN")
	p, err := Render(s, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range strings.Split(p.Text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "capability") {
			got = append(got, strings.TrimSpace(l))
		}
	}
	want := []string{"capability chown,", "capability sys_admin,", "capability checkpoint_restore,"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("capability rules = %q, want %q", got, want)
	}

	s.Process.Capabilities = nil
	p, _ = Render(s, Policy{})
	if strings.Contains(p.Text, "capability") && !strings.Contains(p.Text, "# Only the capabilities") {
		t.Errorf("no capabilities in the spec, yet:\n%s", p.Text)
	}
	if strings.Contains(p.Text, "  capability,") {
		t.Error("blanket capability rule rendered")
	}

	for _, bad := range []string{"CAP_NOPE", "chown", "CAP_chown", "NET_ADMIN", "CAP_CHOWN,\n  /** rwx"} {
		_, err := Render(criSpec(false, []string{bad}), Policy{})
		var ie *InvalidError
		if !errors.As(err, &ie) || ie.Value != bad {
			t.Errorf("capability %q: err = %v, want InvalidError naming it", bad, err)
		}
	}
}

func TestInvalidDestinations(t *testing.T) {
	for _, dest := range []string{"", "relative/path", "./x", "/a\x00b", "/" + strings.Repeat("a", maxPathLen)} {
		_, err := Render(criSpec(false, nil, bind(dest, false)), Policy{})
		var ie *InvalidError
		if !errors.As(err, &ie) || ie.Field != "mount destination" || ie.Value != dest {
			t.Errorf("destination %q: err = %v, want InvalidError naming it", dest, err)
			continue
		}
		if dest != "" && !strings.Contains(err.Error(), fmt.Sprintf("%q", dest)) {
			t.Errorf("error %q does not name the destination", err)
		}
		// errdefs.IsInvalidArgument recognises this method.
		if _, ok := err.(interface{ InvalidParameter() }); !ok {
			t.Errorf("%T is not an invalid-argument error", err)
		}
	}
}

func TestInvalidPolicy(t *testing.T) {
	for _, p := range []Policy{
		{Mode: "audit"},
		{ABI: "abi/3.0>,\n  /** rwx,\n#"},
		{RuntimeLabel: "x, /** rwx"},
		{RuntimeLabel: "system_u:system_r:container_t:s0"},
	} {
		if _, err := Render(criSpec(false, nil), p); err == nil {
			t.Errorf("policy %+v accepted", p)
		}
	}
	if _, err := Render(nil, Policy{}); err == nil {
		t.Error("nil spec accepted")
	}
}

func TestEscapePath(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/data-1.2_x": "/var/lib/data-1.2_x",
		"/a b":                `/a\040b`,
		"/a*":                 `/a\052`,
		`/"`:                  `/\042`,
		"/\n":                 `/\012`,
		"/@{x}":               `/\100\173x\175`,
		"/\xff":               `/\377`,
		`/\`:                  `/\134`,
	} {
		if got := escapePath(in); got != want {
			t.Errorf("escapePath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWriteRules checks which write rules the mount table yields.
func TestWriteRules(t *testing.T) {
	lines := func(readonlyRoot bool, mounts ...specs.Mount) string {
		s := &specs.Spec{Root: &specs.Root{Readonly: readonlyRoot}, Mounts: mounts}
		r, err := fileRules(s)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range r {
			if !strings.HasPrefix(l, "#") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	for _, tc := range []struct {
		name         string
		readonlyRoot bool
		mounts       []specs.Mount
		want         string
	}{
		{"writable root", false, nil, "/{,**} wl,"},
		{"readonly root", true, nil, ""},
		{"rw mount under writable root is covered", false, []specs.Mount{bind("/data", false)}, "/{,**} wl,"},
		{"ro mount under writable root is denied", false, []specs.Mount{bind("/cfg", true)}, "/{,**} wl,\ndeny \"/cfg{,/**}\" wl,"},
		{"rw mount under readonly root", true, []specs.Mount{bind("/data", false)}, `"/data{,/**}" wl,`},
		{"ro mount under readonly root needs nothing", true, []specs.Mount{bind("/cfg", true)}, ""},
		{"ro with rw below is not denied", false, []specs.Mount{bind("/a", true), bind("/a/b", false)}, "/{,**} wl,\n\"/a/b{,/**}\" wl,"},
		{"last mount at a destination wins", true, []specs.Mount{bind("/d", false), bind("/d/", true)}, ""},
		{"rro is read-only", true, []specs.Mount{{Destination: "/r", Options: []string{"rro"}}}, ""},
		{"rw after ro wins", true, []specs.Mount{{Destination: "/r", Options: []string{"ro", "rw"}}}, `"/r{,/**}" wl,`},
		{"unclean destination", true, []specs.Mount{bind("/a//b/../c/", false)}, `"/a/c{,/**}" wl,`},
		{"mount on /", true, []specs.Mount{bind("/", false)}, "/{,**} wl,"},
	} {
		if got := lines(tc.readonlyRoot, tc.mounts...); got != tc.want {
			t.Errorf("%s:\ngot  %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestGlobHelpers(t *testing.T) {
	if got, want := otherThan("sys", "0-9"), "[^s0-9/]*,s,s[^y/]*,sy,sy[^s/]*,sys?*"; got != want {
		t.Errorf("otherThan = %q, want %q", got, want)
	}
	if got, want := notStartingWith("shm", ""), "[^s/]*,s,s[^h/]*,sh,sh[^m/]*"; got != want {
		t.Errorf("notStartingWith = %q, want %q", got, want)
	}
}
