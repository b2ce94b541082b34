package apparmorhost_test

import (
	"context"
	"fmt"
	"testing/fstest"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/node/apparmorhost"
	"github.com/stockade-dev/stockade/profiles/apparmor"
)

// A Loader shares loaded profiles between the shims of a node. On a host
// without AppArmor it loads nothing and says why.
func ExampleLoader() {
	l := &apparmorhost.Loader{
		Host:     apparmorhost.Host{Root: fstest.MapFS{}}, // an empty root: no AppArmor
		StateDir: "/run/stockade/apparmor",
		CacheDir: "/var/lib/stockade/apparmor/cache",
	}
	p, _ := apparmor.Render(&specs.Spec{}, apparmor.Policy{})
	lease, err := l.Acquire(context.Background(), p, "k8s.io/0123abcd")
	if err != nil {
		panic(err)
	}
	defer lease.Release(context.Background())
	fmt.Println(lease.State())
	// Output:
	// skipped: the kernel has no AppArmor support (/sys/module/apparmor/parameters/enabled does not exist)
}
