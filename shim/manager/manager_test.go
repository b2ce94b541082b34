package manager

import (
	"context"
	"slices"
	"testing"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/stockade-dev/stockade/shim/container"
)

// The shim server may warm the cgroup attach lock at start only when no
// ShimCgroup will move it: its no-op move could otherwise undo the join.
func TestServerWarmsCgroupAttachOnlyWithoutShimCgroup(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "k8s.io")
	warm := container.WarmAtStartEnv + "=1"
	for _, c := range []struct {
		name       string
		shimCgroup string
		options    bool
		want       bool
	}{
		{"no options", "", false, true},
		{"options without ShimCgroup", "", true, true},
		{"ShimCgroup", "/pods/shim", true, false},
	} {
		params := &bootapi.BootstrapParams{}
		if c.options {
			if err := params.AddExtension(&runcoptions.Options{ShimCgroup: c.shimCgroup}); err != nil {
				t.Fatal(err)
			}
		}
		cmd, err := serverCommand(ctx, "id", params)
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Contains(cmd.Env, warm); got != c.want {
			t.Errorf("%s: server environment has %s = %v, want %v", c.name, warm, got, c.want)
		}
	}
}
