package denial

import (
	"testing"

	"github.com/stockade-dev/stockade/cri"
)

func TestFor(t *testing.T) {
	for name, tc := range map[string]struct {
		pod  cri.Pod
		ns   string
		want Attribution
	}{
		"standalone":               {cri.PodFromAnnotations("c1", nil), "builds", Attribution{Namespace: "builds", Pod: "c1", PodUID: "c1", Container: "c1"}},
		"standalone, no namespace": {cri.PodFromAnnotations("c1", nil), "", Attribution{Namespace: "default", Pod: "c1", PodUID: "c1", Container: "c1"}},
		// The sandbox is named as the kubelet and crictl name it.
		"sandbox": {cri.PodFromAnnotations("sb", map[string]string{
			cri.AnnotationContainerType: cri.ContainerTypeSandbox, cri.AnnotationSandboxNamespace: "shop",
			cri.AnnotationSandboxName: "web-0", cri.AnnotationSandboxUID: "u1",
		}), "k8s.io", Attribution{Namespace: "shop", Pod: "web-0", PodUID: "u1", Container: cri.SandboxContainerName}},
		"container": {cri.PodFromAnnotations("c2", map[string]string{
			cri.AnnotationContainerType: cri.ContainerTypeContainer, cri.AnnotationSandboxNamespace: "shop",
			cri.AnnotationSandboxName: "web-0", cri.AnnotationSandboxUID: "u1", cri.AnnotationContainerName: "app",
			cri.AnnotationImageName: "app:1",
		}), "k8s.io", Attribution{Namespace: "shop", Pod: "web-0", PodUID: "u1", Container: "app", Image: "app:1"}},
		// CRI always sets these; if one is missing, the ID files the record.
		"container, fields missing": {cri.PodFromAnnotations("c3", map[string]string{
			cri.AnnotationContainerType: cri.ContainerTypeContainer,
		}), "k8s.io", Attribution{Namespace: "default", Pod: "c3", PodUID: "c3", Container: "c3"}},
	} {
		if got := For(tc.pod, tc.ns, tc.pod.SandboxID); got != tc.want {
			t.Errorf("%s: For = %+v, want %+v", name, got, tc.want)
		}
	}
}

func TestListenerMetadata(t *testing.T) {
	for md, want := range map[string]string{
		ListenerMetadata(ModeComplain, "p"): ModeComplain,
		ListenerMetadata(ModeEnforce, "p"):  ModeEnforce,
		"":                                  ModeEnforce,
		"mode=complain":                     ModeEnforce, // not ours: fail safe
		"stockade/v1 mode=weird":            ModeEnforce,
	} {
		if got, _ := ParseListenerMetadata(md); got != want {
			t.Errorf("ParseListenerMetadata(%q) = %s, want %s", md, got, want)
		}
	}
	if _, p := ParseListenerMetadata(ListenerMetadata(ModeEnforce, "recorded:web/app")); p != "recorded:web/app" {
		t.Errorf("profile = %q", p)
	}
}
