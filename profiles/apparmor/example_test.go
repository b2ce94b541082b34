package apparmor_test

import (
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/profiles/apparmor"
)

// Render is pure: the same spec and policy always give the same profile,
// named after its content.
func ExampleRender() {
	spec := &specs.Spec{
		Root: &specs.Root{Path: "rootfs", Readonly: true},
		Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{
			Bounding: []string{"CAP_NET_BIND_SERVICE", "CAP_CHOWN"},
		}},
		Mounts: []specs.Mount{{Destination: "/data", Type: "bind", Source: "/srv/data", Options: []string{"rbind", "rw"}}},
	}
	p, err := apparmor.Render(spec, apparmor.Policy{Mode: apparmor.Complain})
	if err != nil {
		panic(err)
	}
	for _, l := range strings.Split(p.Text, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "capability") || strings.HasPrefix(l, `"/data`) {
			fmt.Println(l)
		}
	}
	fmt.Println(apparmor.ValidName(p.Name), strings.Contains(p.Text, ",complain)"))
	// Output:
	// capability chown,
	// capability net_bind_service,
	// "/data{,/**}" wl,
	// true true
}
