package seccomp

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// roundTrip is p as JSON gives it back.
func roundTrip(t *testing.T, p *specs.LinuxSeccomp) *specs.LinuxSeccomp {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var out specs.LinuxSeccomp
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

// A cache with a directory shares profiles with every other cache on it
// that has the same generator, and with no other; what it returns is what
// Generate returns (as JSON carries it), whichever cache generated it.
func TestCacheDirSharesByGenerator(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	spec, p := specWith(defaultCaps), Policy{Arch: "amd64"}
	want, err := Generate(spec, p)
	if err != nil {
		t.Fatal(err)
	}
	want = roundTrip(t, want)

	first := NewCache(4)
	if err := first.SetDir(dir, []byte("gen-1")); err != nil {
		t.Fatal(err)
	}
	got, err := first.Generate(spec, p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatal("the generating cache returned something else than Generate")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != 1 {
		t.Fatalf("files in the cache directory: %v, want one", files)
	}
	// Mark the file, to see who reads it.
	marked := roundTrip(t, want)
	marked.DefaultAction = specs.ActKillProcess
	b, _ := json.Marshal(marked)
	if err := os.WriteFile(files[0], b, 0o600); err != nil {
		t.Fatal(err)
	}

	same := NewCache(4)
	if err := same.SetDir(dir, []byte("gen-1")); err != nil {
		t.Fatal(err)
	}
	if got, _ := same.Generate(spec, p); got.DefaultAction != specs.ActKillProcess {
		t.Error("a second cache with the same generator did not read the file")
	}
	other := NewCache(4)
	if err := other.SetDir(dir, []byte("gen-2")); err != nil {
		t.Fatal(err)
	}
	if got, _ := other.Generate(spec, p); !reflect.DeepEqual(got, want) {
		t.Error("a cache with another generator read the first one's file")
	}

	// A file that does not decode is generated again and replaced.
	if err := os.WriteFile(files[0], []byte(`{"defaultAction": `), 0o600); err != nil {
		t.Fatal(err)
	}
	torn := NewCache(4)
	if err := torn.SetDir(dir, []byte("gen-1")); err != nil {
		t.Fatal(err)
	}
	if got, _ := torn.Generate(spec, p); !reflect.DeepEqual(got, want) {
		t.Error("a torn file was not regenerated")
	}
	if got := load(files[0]); !reflect.DeepEqual(got, want) {
		t.Error("a torn file was not replaced")
	}
}

// A directory others can write to is refused: its profiles are applied as is.
func TestCacheDirRefusesWritableByOthers(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := NewCache(1).SetDir(dir, []byte("g")); err == nil {
		t.Error("a world-writable directory was accepted")
	}
	if err := NewCache(1).SetDir(t.TempDir(), nil); err == nil {
		t.Error("an empty generator id was accepted")
	}
}

func TestGeneratorID(t *testing.T) {
	id, err := GeneratorID()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := GeneratorID()
	if len(id) < 20 || string(id) != string(again) {
		t.Errorf("build id %q, then %q", id, again)
	}
}
