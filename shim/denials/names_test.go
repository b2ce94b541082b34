package denials

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/denial"
)

func TestEscapeName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"web-0", "web-0"},
		{"kube-system", "kube-system"},
		{"app.v1", "app.v1"},
		{"", "-"},
		{"-", "%2D"},
		{".", "%2E"},
		{"..", "%2E%2E"},
		{"...", "..."}, // not a path step
		{"../../etc", "..%2F..%2Fetc"},
		{"a/b", "a%2Fb"},
		{"nul\x00x", "nul%00x"},
		{"50%", "50%25"},
		{"my_ctr", "my%5Fctr"},
		{"Ünï", "%C3%9Cn%C3%AF"},
	} {
		got := EscapeName(tc.in)
		if got != tc.want {
			t.Errorf("EscapeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
		back, err := UnescapeName(got)
		if err != nil || back != tc.in {
			t.Errorf("UnescapeName(%q) = %q, %v; want %q", got, back, err, tc.in)
		}
	}
}

func TestEscapeNameLong(t *testing.T) {
	a := strings.Repeat("a", 300)
	b := strings.Repeat("a", 299) + "b"
	ea, eb := EscapeName(a), EscapeName(b)
	if len(ea) > maxComponent || len(eb) > maxComponent {
		t.Errorf("escaped lengths %d, %d exceed %d", len(ea), len(eb), maxComponent)
	}
	if ea == eb {
		t.Error("long names that differ at the end collide")
	}
	if e := EscapeName(strings.Repeat("/", 100)); len(e) > maxComponent || strings.Contains(e, "/") {
		t.Errorf("escaped %q", e)
	}
}

func TestLogPathStaysUnderRoot(t *testing.T) {
	root := "/var/log/stockade"
	for _, a := range []denial.Attribution{
		{Namespace: "..", Pod: "..", PodUID: "..", Container: ".."},
		{Namespace: "/etc", Pod: "passwd", PodUID: "x", Container: "../../../etc/shadow"},
		{Namespace: "ns\x00", Pod: "p/../../q", PodUID: "", Container: ""},
	} {
		p := LogPath(root, a)
		rel, err := filepath.Rel(root, p)
		if err != nil || strings.HasPrefix(rel, "..") || strings.Count(rel, "/") != 1 || strings.ContainsRune(p, 0) {
			t.Errorf("LogPath(%+v) = %q escapes or nests", a, p)
		}
	}
}

func TestPodDirRoundTrip(t *testing.T) {
	for _, c := range [][3]string{
		{"team-a", "web-0", "0f6c2b7e-uid"},
		{"default", "my_container_id", "my_container_id"}, // containerd IDs may hold '_'
		{"", "p", ""},
	} {
		name := PodDir(c[0], c[1], c[2])
		ns, pod, uid, err := ParsePodDir(name)
		if err != nil || ns != c[0] || pod != c[1] || uid != c[2] {
			t.Errorf("ParsePodDir(%q) = %q %q %q %v, want %v", name, ns, pod, uid, err, c)
		}
	}
	if _, _, _, err := ParsePodDir("a_b"); err == nil {
		t.Error("two-part name accepted")
	}
}

func TestConfigDenials(t *testing.T) {
	c, err := config.Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := c.Denials
	if !d.Enabled || d.Dir != "/var/log/stockade" || d.MaxFileBytes != 10<<20 || d.MaxFiles != 5 || d.Window().String() != "1s" || d.QueueSize != 8192 {
		t.Errorf("defaults = %+v", d)
	}
	c, err = config.Parse([]byte("[denials]\naggregate_window = \"250ms\"\nsyslog = true\nsocket = \"/run/agent.sock\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Denials.Window().Milliseconds() != 250 || !c.Denials.Syslog || c.Denials.Socket != "/run/agent.sock" {
		t.Errorf("parsed = %+v", c.Denials)
	}
	for key, doc := range map[string]string{
		"denials.dir":              `dir = "relative"`,
		"denials.max_file_bytes":   `max_file_bytes = 10`,
		"denials.max_files":        `max_files = 0`,
		"denials.aggregate_window": `aggregate_window = "soon"`,
		"denials.queue_size":       `queue_size = 0`,
		"denials.socket":           `socket = "agent.sock"`,
	} {
		_, err := config.Parse([]byte("[denials]\n" + doc + "\n"))
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: err = %v, want it to name %s", doc, err, key)
		}
	}
	if _, err := config.Parse([]byte("[denials]\naggregate_window = \"-1s\"\n")); err == nil {
		t.Error("negative window accepted")
	}
}
