package task

import (
	"strings"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
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
	// runc's options are not stockade's: the error names both types.
	a, err = typeurl.MarshalAnyToProto(&options.Options{BinaryName: "runc"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = configSource(a)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "runtimeoptions.v1.Options") {
		t.Errorf("runc options: %v", err)
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
