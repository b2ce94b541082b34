package hooks

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/cri"
	"github.com/stockade-dev/stockade/profiles/seccomp"
)

// FuzzParseAnnotations: untrusted pod annotations never panic the parser,
// every rejection is InvalidArgument naming a stockade.dev/ key, and only
// known values are accepted.
func FuzzParseAnnotations(f *testing.F) {
	f.Add("stockade.dev/seccomp-mode", "complain")
	f.Add("stockade.dev/seccomp-mode", "off")
	f.Add("stockade.dev/seccomp-profile", "web.v1")
	f.Add("stockade.dev/seccomp-profile", "prod/web/app")
	f.Add("stockade.dev/workload", "web")
	f.Add("stockade.dev/bogus", "x")
	f.Add("io.kubernetes.cri.sandbox-id", "abc")
	f.Fuzz(func(t *testing.T, k, v string) {
		a, err := ParseAnnotations(map[string]string{k: v})
		if err != nil {
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), k) {
				t.Fatalf("rejection %v is not InvalidArgument naming %q", err, k)
			}
			return
		}
		if a.SeccompMode != "" && a.SeccompMode != "enforce" && a.SeccompMode != "complain" && a.SeccompMode != SeccompModeRecord {
			t.Fatalf("accepted mode %q", a.SeccompMode)
		}
		// Profile and workload names become paths in the profile store.
		for _, p := range strings.Split(a.SeccompProfile+"/"+a.Workload, "/") {
			if p == "." || p == ".." || strings.ContainsAny(p, "\x00\\") {
				t.Fatalf("accepted path-like name %q", v)
			}
		}
		if strings.HasPrefix(k, AnnotationPrefix) && k != AnnotationSeccompMode && k != AnnotationSeccompProfile && k != AnnotationWorkload {
			t.Fatalf("accepted unknown key %q", k)
		}
	})
}

// FuzzSpecPipeline runs arbitrary OCI specs (JSON) through the pure steps
// of the pipeline (seccomp, with AppArmor in its no-AppArmor path): no
// panic, and whatever is accepted denies what every stockade container must
// never get, in enforce mode.
func FuzzSpecPipeline(f *testing.F) {
	for _, seed := range []string{
		`{"process":{"args":["sh"],"cwd":"/","capabilities":{"bounding":["CAP_SYS_ADMIN"]}},"root":{"path":"rootfs"},"linux":{}}`,
		`{"process":{"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"},"linux":{"seccomp":{"defaultAction":"SCMP_ACT_ALLOW"}}}`,
		`{"process":{"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"},"linux":{"seccomp":{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["io_uring_setup","keyctl"],"action":"SCMP_ACT_ALLOW"}]}}}`,
		`{"annotations":{"stockade.dev/seccomp-mode":"complain"},"process":{"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"},"linux":{}}`,
		`{"process":{"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"},"linux":{"seccomp":{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":4294967295,"op":"SCMP_CMP_EQ"}]}]}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		var spec specs.Spec
		if json.Unmarshal(doc, &spec) != nil || spec.Process == nil || spec.Linux == nil {
			return
		}
		ann, err := ParseAnnotations(spec.Annotations)
		if err != nil {
			return
		}
		c := &Container{ID: "fuzz", Spec: &spec, Pod: cri.PodFromAnnotations("fuzz", spec.Annotations), Annotations: ann, Node: config.Default()}
		if _, err := (Pipeline{NewSeccompStep()}).Apply(context.Background(), c); err != nil {
			return
		}
		p := spec.Linux.Seccomp
		if p == nil {
			t.Fatal("the pipeline left a container without seccomp")
		}
		for _, name := range []string{"io_uring_setup", "keyctl", "kexec_load", "userfaultfd"} {
			if act, _ := seccomp.Evaluate(p, name, [6]uint64{}); act == specs.ActAllow {
				t.Fatalf("%s allowed by the effective profile", name)
			}
		}
	})
}
