package task

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/stockade-dev/stockade/config"
)

func TestConfigSource(t *testing.T) {
	a, err := typeurl.MarshalAnyToProto(&runtimeoptions.Options{ConfigPath: "/etc/stockade/config.toml"})
	if err != nil {
		t.Fatal(err)
	}
	path, body, err := configSource(a)
	if err != nil || path != "/etc/stockade/config.toml" || body != "" {
		t.Errorf("configSource = %q %q %v", path, body, err)
	}
	if p, b, err := configSource(nil); p != "" || b != "" || err != nil {
		t.Errorf("no options: %q %q %v", p, b, err)
	}
	// containerd's client sends runc's options to any shim for a
	// user-namespaced container: accepted, and they name no config.
	a, err = typeurl.MarshalAnyToProto(&options.Options{IoUid: 2147483648, IoGid: 2147483648})
	if err != nil {
		t.Fatal(err)
	}
	if p, b, err := configSource(a); p != "" || b != "" || err != nil {
		t.Errorf("runc options: %q %q %v", p, b, err)
	}
	// Any other type is refused, naming the types stockade takes.
	a, err = typeurl.MarshalAnyToProto(&emptypb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = configSource(a)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "runtimeoptions.v1.Options") {
		t.Errorf("foreign options: %v", err)
	}
}

func TestNodeConfigFromEnvironmentWithRuncOptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.toml")
	if err := os.WriteFile(path, []byte("[seccomp]\nmode = \"complain\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(config.PathEnv, path)
	a, _ := typeurl.MarshalAnyToProto(&options.Options{IoUid: 1, IoGid: 1})
	c, err := loadNodeConfig(a)
	if err != nil || c.Path != path || c.Seccomp.Mode != "complain" {
		t.Fatalf("loadNodeConfig(runc options) with $%s: %v %+v", config.PathEnv, err, c)
	}
}

func TestNodeConfigErrorsNameTheFile(t *testing.T) {
	a, _ := typeurl.MarshalAnyToProto(&runtimeoptions.Options{ConfigPath: "/nonexistent/stockade.toml"})
	_, err := loadNodeConfig(a)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/stockade.toml") {
		t.Errorf("missing explicit config: %v", err)
	}
	a, _ = typeurl.MarshalAnyToProto(&runtimeoptions.Options{ConfigBody: []byte("[seccomp]\nmode = \"loud\"\n")})
	_, err = loadNodeConfig(a)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "seccomp.mode") {
		t.Errorf("bad config body: %v", err)
	}
}
