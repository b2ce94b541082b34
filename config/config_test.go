package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestDefaultsAreValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Seccomp.Mode != "enforce" {
		t.Errorf("default seccomp mode = %q", c.Seccomp.Mode)
	}
}

func TestParseErrorsNameLineAndKey(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		mentions  []string
	}{
		{"unknown key", "state_dir = \"/var/lib/stockade\"\n[seccomp]\nmdoe = \"enforce\"\n", []string{"line 3", "seccomp.mdoe"}},
		{"syntax", "[seccomp\nmode = 1\n", []string{"line 1"}},
		{"bad value", "[seccomp]\nmode = \"loud\"\n", []string{"seccomp.mode", "loud"}},
		{"wrong type", "[seccomp]\nmode = 3\n", []string{"line 2", "seccomp.mode"}},
		{"relative state dir", "state_dir = \"var/lib\"\n", []string{"state_dir"}},
		{"relative store dir", "[record]\nstore_dir = \"profiles\"\n", []string{"record.store_dir"}},
		{"unclean store dir", "[record]\nstore_dir = \"/var/lib/../x\"\n", []string{"record.store_dir"}},
		{"record typo", "[record]\nalow = true\n", []string{"line 2", "record.alow"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil {
				t.Fatal("no error")
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("kind: %v", err)
			}
			for _, m := range tc.mentions {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.toml")
	if c, err := Load(missing, false); err != nil || c.Path != "" {
		t.Errorf("implicit missing file: %v, %+v", err, c)
	}
	if _, err := Load(missing, true); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("explicit missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[seccomp]\nmode = \"x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad, true); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad file: error %v does not name the file", err)
	}
}

func TestLoadFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "node.toml")
	if err := os.WriteFile(good, []byte("[seccomp]\nmode = \"complain\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(PathEnv, good)
	c, err := Load("", false)
	if err != nil || c.Path != good || c.Seccomp.Mode != "complain" {
		t.Fatalf("Load from $%s: %v, %+v", PathEnv, err, c)
	}
	// An explicit path beats the environment.
	other := filepath.Join(dir, "other.toml")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := Load(other, true); err != nil || c.Path != other {
		t.Fatalf("explicit path: %v, %+v", err, c)
	}
	// A file named by the environment must exist: a typo in a systemd
	// drop-in must not silently fall back to the defaults.
	missing := filepath.Join(dir, "missing.toml")
	t.Setenv(PathEnv, missing)
	if _, err := Load("", false); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing file named by $%s: %v", PathEnv, err)
	}
}
