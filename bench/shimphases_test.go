package bench

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestShimPhases(t *testing.T) {
	log := `time="2026-12-03T15:21:54Z" level=info msg="container created" apparmor=enforce container_id=trace-aa phases="spec=0.500ms intercept.seccomp=4.250ms init=30.000ms" pid=1 runtime=io.containerd.stockade.v1
time="2026-12-03T15:21:55Z" level=info msg="container created" container_id=other-bb phases="spec=9.000ms" pid=2
time="2026-12-03T15:21:56Z" level=info msg="container created" container_id=trace-cc phases="spec=1.500ms init=20.000ms bogus" pid=3
time="2026-12-03T15:21:57Z" level=info msg="container created" container_id=trace-dd pid=4
time="2026-12-03T15:21:58Z" level=info msg="task exit" container_id=trace-aa phases="spec=7.000ms"
`
	path := filepath.Join(t.TempDir(), "containerd.log")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	order, samples, err := shimPhases(path, "trace-")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"spec", "intercept.seccomp", "init"}; !reflect.DeepEqual(order, want) {
		t.Errorf("order = %v, want %v", order, want)
	}
	want := map[string][]float64{"spec": {0.5, 1.5}, "intercept.seccomp": {4.25}, "init": {30, 20}}
	if !reflect.DeepEqual(samples, want) {
		t.Errorf("samples = %v, want %v", samples, want)
	}
}
