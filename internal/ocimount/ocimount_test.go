package ocimount

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestIsBind(t *testing.T) {
	for _, c := range []struct {
		m    specs.Mount
		want bool
	}{
		{specs.Mount{Type: "bind"}, true},
		{specs.Mount{Type: "none", Options: []string{"rbind", "ro"}}, true},
		{specs.Mount{Type: "", Options: []string{"bind"}}, true},
		{specs.Mount{Type: "tmpfs", Options: []string{"nosuid"}}, false},
		{specs.Mount{Type: "proc"}, false},
	} {
		if got := IsBind(c.m); got != c.want {
			t.Errorf("IsBind(%+v) = %v", c.m, got)
		}
	}
}
