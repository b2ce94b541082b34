package idmapfs

import "testing"

func TestIDMapSupported(t *testing.T) {
	ok, fs, err := IDMapSupported(t.TempDir())
	if err != nil || fs == "" {
		t.Fatalf("IDMapSupported(tmp) = %v %q %v", ok, fs, err)
	}
	t.Logf("temp dir on %s: idmap supported = %v", fs, ok)
	if ok, fs, err := IDMapSupported("/proc/self"); ok || err != nil {
		t.Errorf("procfs (%s) reported idmappable: %v", fs, err)
	}
	if _, _, err := IDMapSupported("/does/not/exist"); err == nil {
		t.Error("missing path: no error")
	}
	for rel, want := range map[string][2]int{"6.1.0-18-amd64": {6, 1}, "5.15": {5, 15}, "6.18.44-fc-v657": {6, 18}, "junk": {0, 0}, "6.x": {0, 0}} {
		if a, b := parseKernelRelease(rel); a != want[0] || b != want[1] {
			t.Errorf("parseKernelRelease(%q) = %d.%d", rel, a, b)
		}
	}
}
