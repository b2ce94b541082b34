package container

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestSeccompCompiledIn(t *testing.T) {
	if !SeccompCompiledIn() {
		t.Fatal("libcontainer was built without seccomp: build with CGO_ENABLED=1 -tags seccomp")
	}
	f := Features()
	if f.Linux.Seccomp == nil || f.Linux.Seccomp.Enabled == nil || !*f.Linux.Seccomp.Enabled {
		t.Fatal("features do not report seccomp")
	}
}

func TestFeaturesReportUserNamespacesAndIDMap(t *testing.T) {
	f := Features()
	var userns bool
	for _, ns := range f.Linux.Namespaces {
		userns = userns || ns == "user"
	}
	if !userns {
		t.Error("features lack the user namespace (Kubernetes hostUsers: false needs it)")
	}
	if m := f.Linux.MountExtensions; m == nil || m.IDMap == nil || m.IDMap.Enabled == nil || !*m.IDMap.Enabled {
		t.Error("features lack idmapped mounts")
	}
}

func TestDecodeSpecErrorsNameTheProblem(t *testing.T) {
	for _, tc := range []struct {
		name, doc, mentions string
	}{
		{"syntax", `{"process": {`, "malformed JSON at byte"},
		{"type", `{"process": {"args": "sh"}}`, "field process.args"},
		{"no process", `{"root": {"path": "rootfs"}, "linux": {}}`, "field process: missing"},
		{"no root", `{"process": {"args": ["sh"], "cwd": "/"}, "linux": {}}`, "field root.path"},
		{"no linux", `{"process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "rootfs"}}`, "field linux"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeSpec("config.json", []byte(tc.doc))
			if err == nil {
				t.Fatal("no error")
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("kind: %v", err)
			}
			if !strings.Contains(err.Error(), tc.mentions) || !strings.Contains(err.Error(), "config.json") {
				t.Errorf("error %q does not mention config.json and %q", err, tc.mentions)
			}
		})
	}
}

func TestProcessConversionErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		p        *specs.Process
		mentions string
	}{
		{"nil", nil, "process: missing"},
		{"no args", &specs.Process{Cwd: "/"}, "process.args"},
		{"relative cwd", &specs.Process{Args: []string{"sh"}, Cwd: "tmp"}, "process.cwd"},
		{"bad rlimit", &specs.Process{Args: []string{"sh"}, Cwd: "/", Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOPE"}}}, "process.rlimits[0].type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newLibcontainerProcess(tc.p)
			if err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.mentions) {
				t.Errorf("got %v, want InvalidArgument mentioning %q", err, tc.mentions)
			}
		})
	}
	lp, err := newLibcontainerProcess(&specs.Process{
		Args: []string{"sh"}, Cwd: "/", User: specs.User{UID: 7, GID: 8, AdditionalGids: []uint32{9}},
		Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 10, Soft: 5}},
	})
	if err != nil || lp.UID != 7 || lp.GID != 8 || len(lp.AdditionalGroups) != 1 || len(lp.Rlimits) != 1 {
		t.Errorf("conversion: %+v %v", lp, err)
	}
}

func TestParseURI(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "",
		"/run/fifo/stdout":       "/run/fifo/stdout",
		"file:///var/log/x.log":  "file",
		"binary:///bin/logger?a": "binary",
	} {
		u, err := parseURI(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		got := u.Scheme
		if got == "" {
			got = u.Path
		}
		if got != want {
			t.Errorf("parseURI(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReadAnnotationsIsLenient(t *testing.T) {
	dir := t.TempDir()
	// A spec Create would reject (no process) still yields its annotations.
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"annotations":{"io.kubernetes.cri.sandbox-id":"s1"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := ReadAnnotations(dir)
	if err != nil || a["io.kubernetes.cri.sandbox-id"] != "s1" {
		t.Fatalf("%v %v", a, err)
	}
	if _, err := ReadAnnotations(t.TempDir()); err == nil {
		t.Error("no config.json: no error")
	}
}
