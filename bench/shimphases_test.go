package bench

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestShimPhases(t *testing.T) {
	log := `time="2026-12-03T15:21:54Z" level=info msg="container created" apparmor=enforce container_id=trace-aa phases="spec=0.500ms intercept.seccomp=4.250ms init=30.000ms" pid=1 runtime=io.containerd.stockade.v1
time="2026-12-03T15:21:55Z" level=info msg="container created" container_id=other-bb pod=web phases="spec=9.000ms" pid=2
time="2026-12-03T15:21:56Z" level=info msg="container created" container_id=trace-cc phases="spec=1.500ms init=20.000ms bogus" pid=3
time="2026-12-03T15:21:57Z" level=info msg="container created" container_id=trace-dd pid=4
time="2026-12-03T15:21:58Z" level=info msg="task exit" container_id=trace-aa phases="spec=7.000ms"
`
	path := filepath.Join(t.TempDir(), "containerd.log")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	byClass, err := shimPhases(path, func(id, pod string) string {
		switch {
		case pod == "web":
			return "web"
		case strings.HasPrefix(id, "trace-"):
			return "traced"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	got := byClass["traced"]
	if want := []string{"spec", "intercept.seccomp", "init"}; got == nil || !reflect.DeepEqual(got.order, want) {
		t.Fatalf("traced phases = %+v, want %v", got, want)
	}
	want := map[string][]float64{"spec": {0.5, 1.5}, "intercept.seccomp": {4.25}, "init": {30, 20}}
	if !reflect.DeepEqual(got.samples, want) {
		t.Errorf("samples = %v, want %v", got.samples, want)
	}
	if web := byClass["web"]; web == nil || !reflect.DeepEqual(web.samples, map[string][]float64{"spec": {9}}) {
		t.Errorf("web pod's phases = %+v, want spec 9", web)
	}
}
