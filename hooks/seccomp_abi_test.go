package hooks

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/config"
)

// TestSeccompStepCompatABIs: the profile covers the native ABI unless the
// node turns compat ABIs on; a pod's annotation replaces the node's choice
// only where the node allows it, and bad values fail the container with an
// error naming the annotation or key.
func TestSeccompStepCompatABIs(t *testing.T) {
	node := func(compat []string, allow bool) *config.Config {
		n := config.Default()
		n.Seccomp.CompatABIs, n.Seccomp.AllowCompatABIAnnotation = compat, allow
		return n
	}
	for _, tc := range []struct {
		name   string
		node   *config.Config
		ann    map[string]string
		goarch string
		want   []specs.Arch
		err    string
	}{
		{name: "default", node: config.Default(), goarch: "amd64", want: []specs.Arch{specs.ArchX86_64}},
		{name: "default arm64", node: config.Default(), goarch: "arm64", want: []specs.Arch{specs.ArchAARCH64}},
		{name: "node x86", node: node([]string{"x86"}, false), goarch: "amd64", want: []specs.Arch{specs.ArchX86_64, specs.ArchX86}},
		{name: "node arm", node: node([]string{"arm"}, false), goarch: "arm64", want: []specs.Arch{specs.ArchAARCH64, specs.ArchARM}},
		{name: "annotation allowed", node: node(nil, true), ann: map[string]string{AnnotationSeccompCompatABIs: "x32,x86"}, goarch: "amd64",
			want: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}},
		{name: "annotation none narrows", node: node([]string{"x86"}, true), ann: map[string]string{AnnotationSeccompCompatABIs: "none"}, goarch: "amd64",
			want: []specs.Arch{specs.ArchX86_64}},
		{name: "annotation refused", node: node(nil, false), ann: map[string]string{AnnotationSeccompCompatABIs: "x86"}, goarch: "amd64",
			err: AnnotationSeccompCompatABIs + ": pods may not choose compat ABIs on this node (seccomp.allow_compat_abi_annotation is false)"},
		{name: "annotation wrong arch", node: node(nil, true), ann: map[string]string{AnnotationSeccompCompatABIs: "arm"}, goarch: "amd64",
			err: AnnotationSeccompCompatABIs + `: compat ABI "arm"`},
		{name: "node key wrong arch", node: node([]string{"x86"}, false), goarch: "arm64", err: `key seccomp.compat_abis: compat ABI "x86"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := seccompContainer("default", true, nil)
			c.Node = tc.node
			a, err := ParseAnnotations(tc.ann)
			if err != nil {
				t.Fatal(err)
			}
			c.Annotations = a
			_, err = (&SeccompStep{GOARCH: tc.goarch}).Apply(context.Background(), c)
			if tc.err != "" {
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want InvalidArgument containing %q", err, tc.err)
				}
				if c.Spec.Linux != nil && c.Spec.Linux.Seccomp != nil {
					t.Error("a failed step left a profile in the spec")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Spec.Linux.Seccomp.Architectures; !slices.Equal(got, tc.want) {
				t.Errorf("architectures %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseCompatABIsAnnotation(t *testing.T) {
	for v, want := range map[string][]string{"x86": {"x86"}, "x86,x32": {"x86", "x32"}, "arm": {"arm"}, "none": nil} {
		a, err := ParseAnnotations(map[string]string{AnnotationSeccompCompatABIs: v})
		if err != nil || !a.SeccompCompatABIsSet || !slices.Equal(a.SeccompCompatABIs, want) {
			t.Errorf("%q: %+v, %v; want %q", v, a, err, want)
		}
	}
	for _, v := range []string{"", "X86", "x86, x32", "x86,x86", "i386", "x86,", "none,x86"} {
		_, err := ParseAnnotations(map[string]string{AnnotationSeccompCompatABIs: v})
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "annotation "+AnnotationSeccompCompatABIs) {
			t.Errorf("%q: err %v, want InvalidArgument naming the annotation", v, err)
		}
	}
	if a, _ := ParseAnnotations(nil); a.SeccompCompatABIsSet {
		t.Error("no annotation reads as set")
	}
}
