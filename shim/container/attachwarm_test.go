package container

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stockade-dev/stockade/internal/roottest"
)

// The warm-up write names the cgroup the process is in, and moving there
// changes no process's cgroup.
func TestAttachSelfStaysInOwnCgroup(t *testing.T) {
	roottest.Require(t, "writes to its own cgroup.procs")
	dir, err := ownCgroupDir()
	if err != nil {
		t.Fatal(err)
	}
	procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(strings.Fields(string(procs)), strconv.Itoa(os.Getpid())) {
		t.Fatalf("%s/cgroup.procs does not list this process (%d)", dir, os.Getpid())
	}
	before, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if err := attachSelf(); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Fatalf("the warm-up write moved the process:\nbefore %s\nafter  %s", before, after)
	}
}
