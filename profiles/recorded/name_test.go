package recorded

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestParseName(t *testing.T) {
	long := strings.Repeat("a", 253)
	for _, tc := range []struct {
		in      string
		want    Name
		wantErr string // substring; "" means valid
	}{
		{in: "shop/web/app", want: Name{"shop", "web", "app"}},
		{in: "kube-system/coredns/coredns", want: Name{"kube-system", "coredns", "coredns"}},
		{in: "default/web.v2/app-1", want: Name{"default", "web.v2", "app-1"}},
		{in: "0/1/2", want: Name{"0", "1", "2"}},
		{in: long + "/w/c", want: Name{long, "w", "c"}},
		{in: "../x/y", wantErr: `namespace ".."`},
		{in: "./x/y", wantErr: `namespace "."`},
		{in: "x/../y", wantErr: `workload ".."`},
		{in: "x/y/..", wantErr: `container ".."`},
		{in: ".", wantErr: "want namespace/workload/container"},
		{in: "", wantErr: "want namespace/workload/container"},
		{in: "a/b", wantErr: "want namespace/workload/container"},
		{in: "a/b/c/d", wantErr: "want namespace/workload/container"},
		{in: "/a/b", wantErr: `namespace "": must not be empty`},
		{in: "a/b/", wantErr: `container "": must not be empty`},
		{in: "A/b/c", wantErr: `namespace "A": character 'A'`},
		{in: "a/B/c", wantErr: `workload "B"`},
		{in: "a/b/c_d", wantErr: `container "c_d": character '_'`},
		{in: "a/b c/d", wantErr: `workload "b c"`},
		{in: "-a/b/c", wantErr: "must start and end with"},
		{in: "a/b./c", wantErr: `workload "b."`},
		{in: "a/b/c-", wantErr: `container "c-"`},
		{in: "a/.b/c", wantErr: `workload ".b"`},
		{in: long + "a/w/c", wantErr: "longer than 253"},
		{in: "a/b\x00/c", wantErr: `workload "b\x00"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseName(tc.in)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseName(%q): %v", tc.in, err)
				}
				if got != tc.want {
					t.Fatalf("ParseName(%q) = %#v, want %#v", tc.in, got, tc.want)
				}
				if got.String() != tc.in {
					t.Errorf("String() = %q, want %q", got.String(), tc.in)
				}
				if err := got.Validate(); err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseName(%q) = %#v, want error containing %q", tc.in, got, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseName(%q): %v, want it to contain %q", tc.in, err, tc.wantErr)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("ParseName(%q): %v does not wrap ErrInvalidArgument", tc.in, err)
			}
		})
	}
}

func TestNameValidate(t *testing.T) {
	if err := (Name{"a", "b", "c"}).Validate(); err != nil {
		t.Fatal(err)
	}
	err := (Name{"a", "b/c", "d"}).Validate()
	if err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), `workload "b/c"`) {
		t.Fatalf("Validate of a workload with a slash: %v", err)
	}
	if err := (Name{}).Validate(); err == nil {
		t.Fatal("Validate of the zero Name succeeded")
	}
}
