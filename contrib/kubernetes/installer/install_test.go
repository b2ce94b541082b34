// Package installer_test runs install.sh against a temporary host root with
// DRY_RUN=1: the files it writes are real, the host commands (nsenter,
// systemctl, containerd) and the API calls are only printed, so the tests
// need neither root nor a cluster.
package installer_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

const (
	glob       = "/etc/containerd/conf.d/*.toml"
	dropIn     = "/etc/containerd/conf.d/stockade.toml"
	mainConfig = "/etc/containerd/config.toml"
)

// node is a temporary host root and installer payload.
type node struct {
	t       *testing.T
	root    string
	payload string
}

func newNode(t *testing.T) *node {
	t.Helper()
	n := &node{t: t, root: filepath.Join(t.TempDir(), "host"), payload: filepath.Join(t.TempDir(), "payload")}
	n.writePayload("bin/containerd-shim-stockade-v1", "shim v1")
	n.writePayload("bin/stockade", "cli v1")
	n.writePayload("config.toml", "# shipped node config\n")
	dropin, err := os.ReadFile("../../containerd/stockade.toml")
	if err != nil {
		t.Fatal(err)
	}
	n.writePayload("containerd/stockade.toml", string(dropin))
	return n
}

func (n *node) writePayload(rel, content string) {
	n.t.Helper()
	write(n.t, filepath.Join(n.payload, rel), content)
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// host returns the temp path of a host path.
func (n *node) host(p string) string { return filepath.Join(n.root, p) }

func (n *node) read(p string) string {
	n.t.Helper()
	b, err := os.ReadFile(n.host(p))
	if err != nil {
		n.t.Fatal(err)
	}
	return string(b)
}

// run runs install.sh with a command and returns its log (stderr).
func (n *node) run(command string, env ...string) string {
	n.t.Helper()
	cmd := exec.Command("bash", "install.sh", command)
	cmd.Env = append(os.Environ(),
		"HOST_ROOT="+n.root, "PAYLOAD_DIR="+n.payload, "DRY_RUN=1", "NODE_NAME=node-1")
	cmd.Env = append(cmd.Env, env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if out, err := cmd.Output(); err != nil || len(out) > 0 {
		n.t.Fatalf("install.sh %s: %v, stdout %q\n%s", command, err, out, stderr.String())
	}
	return stderr.String()
}

// topImports returns the top-level imports of a containerd config, and the
// rest of the document.
func topImports(t *testing.T, data string) ([]string, map[string]any) {
	t.Helper()
	var doc map[string]any
	if err := toml.Unmarshal([]byte(data), &doc); err != nil {
		t.Fatalf("not valid TOML: %v\n%s", err, data)
	}
	var out []string
	if v, ok := doc["imports"].([]any); ok {
		for _, e := range v {
			out = append(out, e.(string))
		}
	}
	delete(doc, "imports")
	return out, doc
}

// loads reports whether containerd would load the drop-in through one of
// the imports: filepath.Glob semantics, relative to the config's dir.
func loads(imports []string) bool {
	for _, e := range imports {
		if !filepath.IsAbs(e) {
			e = filepath.Join(filepath.Dir(mainConfig), e)
		}
		if ok, _ := filepath.Match(filepath.Clean(e), dropIn); ok {
			return true
		}
	}
	return false
}

// TestImportsEdit runs the installer over containerd configs as nodes have
// them: the result must be valid TOML that loads the drop-in, keeps every
// other key, and a second run must change nothing and restart nothing.
func TestImportsEdit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string // "" means no config file
		// wantAdded: the installer must add its glob in front of these.
		wantAdded []string
	}{
		{name: "no config file", wantAdded: []string{}},
		{name: "no imports", config: "version = 3\n\n[plugins.'io.containerd.cri.v1.runtime']\n  restrict_oom_score_adj = true\n", wantAdded: []string{}},
		{name: "empty imports", config: "version = 3\nimports = []\n", wantAdded: []string{}},
		{name: "other imports", config: "version = 3\nimports = [\"/etc/nvidia/*.toml\"]\n[grpc]\n  address = \"/run/containerd/containerd.sock\"\n",
			wantAdded: []string{"/etc/nvidia/*.toml"}},
		{name: "multi-line imports with brackets", config: "version = 3\nimports = [\n  \"/a/[xy].toml\", # a [ comment\n  '/b/*.toml',\n]\n",
			wantAdded: []string{"/a/[xy].toml", "/b/*.toml"}},
		{name: "imports only inside a table", config: "version = 3\n[plugins.'x']\n  imports = \"not the top-level key\"\n", wantAdded: []string{}},
		{name: "directory glob does not reach conf.d files", config: "version = 3\nimports = [\"/etc/containerd/*\"]\n",
			wantAdded: []string{"/etc/containerd/*"}},
		{name: "already imported", config: "version = 3\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n"},
		{name: "imported by relative glob", config: "imports = ['conf.d/*.toml']\nversion = 3\n"},
		{name: "imported by file name", config: "version = 3\nimports = [\"/etc/containerd/conf.d/stockade.toml\"]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			var origRest map[string]any
			if tc.config != "" {
				write(t, n.host(mainConfig), tc.config)
				_, origRest = topImports(t, tc.config)
			}
			first := n.run("install")
			got := n.read(mainConfig)
			imports, rest := topImports(t, got)
			if !loads(imports) {
				t.Errorf("containerd would not load the drop-in: imports %q\n%s", imports, got)
			}
			if tc.wantAdded == nil {
				if got != tc.config {
					t.Errorf("config already importing the drop-in was rewritten:\n%s", got)
				}
				if _, err := os.Stat(n.host(mainConfig + ".stockade-backup")); err == nil {
					t.Error("a backup was made of a config that needed no change")
				}
			} else if want := append([]string{glob}, tc.wantAdded...); !reflect.DeepEqual(imports, want) {
				t.Errorf("imports = %q, want %q", imports, want)
			}
			if tc.config != "" && !reflect.DeepEqual(rest, origRest) {
				t.Errorf("keys besides imports changed:\n got %v\nwant %v", rest, origRest)
			}
			if tc.wantAdded != nil && tc.config != "" && n.read(mainConfig+".stockade-backup") != tc.config {
				t.Error("the backup is not the original config")
			}
			if !strings.Contains(first, "systemctl restart containerd") {
				t.Errorf("first install did not restart containerd:\n%s", first)
			}

			second := n.run("install")
			if n.read(mainConfig) != got {
				t.Errorf("second install changed the config again:\n%s", n.read(mainConfig))
			}
			if strings.Contains(second, "systemctl restart") || !strings.Contains(second, "not restarting") {
				t.Errorf("second install restarted containerd:\n%s", second)
			}
		})
	}
}

// TestInstallFiles checks what lands on the host, that the operator's node
// config is never overwritten, and that a new shim binary is installed
// without restarting containerd.
func TestInstallFiles(t *testing.T) {
	n := newNode(t)
	write(t, n.host("/etc/stockade/config.toml"), "# the operator's config\n")
	log := n.run("install")
	for path, want := range map[string]string{
		"/usr/local/bin/containerd-shim-stockade-v1": "shim v1",
		"/usr/local/bin/stockade":                    "cli v1",
		"/etc/stockade/config.toml":                  "# the operator's config\n",
	} {
		if got := n.read(path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	if fi, err := os.Stat(n.host("/usr/local/bin/containerd-shim-stockade-v1")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("shim mode: %v %v", fi, err)
	}
	if dropin, _ := os.ReadFile("../../containerd/stockade.toml"); n.read(dropIn) != string(dropin) {
		t.Error("the drop-in on the host is not contrib/containerd/stockade.toml")
	}
	for _, want := range []string{
		"on host: /usr/local/bin/stockade check --config /etc/stockade/config.toml",
		"on host: containerd --version",
		`PATCH node node-1 {"metadata":{"labels":{"stockade.dev/enabled":"true"}}}`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("install log lacks %q:\n%s", want, log)
		}
	}

	n.writePayload("bin/containerd-shim-stockade-v1", "shim v2")
	log = n.run("install")
	if got := n.read("/usr/local/bin/containerd-shim-stockade-v1"); got != "shim v2" {
		t.Errorf("updated shim not installed: %q", got)
	}
	if strings.Contains(log, "systemctl restart") {
		t.Errorf("a new shim binary restarted containerd:\n%s", log)
	}
	if leftovers, _ := filepath.Glob(n.host("/usr/local/bin/*.stockade-new")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// TestUninstall removes what install added, except the imports line (other
// drop-ins may rely on it) and the node config (unless PURGE=1).
func TestUninstall(t *testing.T) {
	n := newNode(t)
	write(t, n.host(mainConfig), "version = 3\n")
	n.run("install")
	log := n.run("uninstall")
	for _, p := range []string{dropIn, "/usr/local/bin/containerd-shim-stockade-v1", "/usr/local/bin/stockade"} {
		if _, err := os.Stat(n.host(p)); !os.IsNotExist(err) {
			t.Errorf("%s still there (%v)", p, err)
		}
	}
	if imports, _ := topImports(t, n.read(mainConfig)); !loads(imports) {
		t.Errorf("uninstall removed the imports line: %q", imports)
	}
	for _, want := range []string{`"stockade.dev/enabled":null`, "systemctl restart containerd"} {
		if !strings.Contains(log, want) {
			t.Errorf("uninstall log lacks %q:\n%s", want, log)
		}
	}
	n.read("/etc/stockade/config.toml")

	// A second uninstall has nothing to do: no restart.
	if log := n.run("uninstall"); strings.Contains(log, "systemctl restart") {
		t.Errorf("second uninstall restarted containerd:\n%s", log)
	}
	n.run("uninstall", "PURGE=1")
	if _, err := os.Stat(n.host("/etc/stockade/config.toml")); !os.IsNotExist(err) {
		t.Errorf("PURGE=1 kept the node config (%v)", err)
	}
}
