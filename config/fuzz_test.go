package config

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// FuzzParse feeds arbitrary documents to the node config parser: it must
// never panic, every error must be InvalidArgument, and whatever it accepts
// must validate and keep a mode that enforces or complains (never "off").
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		"state_dir = \"/var/lib/stockade\"\n",
		"[seccomp]\nmode = \"complain\"\nallow_mode_annotation = true\nunconfined_namespaces = [\"kube-system\"]\n",
		"[userns]\nenabled = false\npool = \"2147483648+131072\"\nhost_namespace_pods = \"exempt\"\n",
		"[denials]\ndir = \"/var/log/stockade\"\nmax_files = 3\naggregate_window = \"250ms\"\n",
		"[apparmor]\nrequired = true\n",
		"[seccomp]\nmode = 3\n",
		"[seccomp\n",
		"state_dir = \"relative\"\n",
		"[denials]\nqueue_size = -1\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := Parse([]byte(doc))
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error of the wrong kind: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted a config that does not validate: %v", err)
		}
		if c.Seccomp.Mode != "enforce" && c.Seccomp.Mode != "complain" {
			t.Fatalf("accepted seccomp mode %q", c.Seccomp.Mode)
		}
		if !strings.HasPrefix(c.StateDir, "/") {
			t.Fatalf("accepted state_dir %q", c.StateDir)
		}
	})
}
