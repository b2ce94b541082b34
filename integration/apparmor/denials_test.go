package apparmor

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stockade-dev/stockade/denial"
	"github.com/stockade-dev/stockade/integration/harness"
	"github.com/stockade-dev/stockade/shim/denials"
)

// TestAppArmorDenialInSink: an AppArmor denial of a container's profile
// becomes a record in that container's sink, source apparmor, with the
// operation and path it denied and the container's attribution; another
// container with the same profile gets nothing of it; `stockade denials`
// shows it.
func TestAppArmorDenialInSink(t *testing.T) {
	env := appArmorEnv(t)
	log := openKmsg(t)
	// The denied shell execs into sleep: the process stays, in its
	// container's cgroup, for the watcher to attribute.
	script := "echo x > /sys/fs/bpf/denied; exec sleep 3600"
	c1 := env.NewContainer(t, newID("aad"), []string{"sh", "-c", script}, withBPFFSTmpfs())
	// Same spec, same profile, another shim: a bystander.
	c2 := env.NewContainer(t, newID("aad"), []string{"sleep", "3600"}, withBPFFSTmpfs())
	t2 := env.Start(t, c2)
	waitExec(t, t2.Pid(), "sleep")
	t1 := env.Start(t, c1)
	waitExec(t, t1.Pid(), "sleep")
	m := generatedLabel.FindStringSubmatch(label(t, t1.Pid()))
	if m == nil || !strings.HasPrefix(label(t, t2.Pid()), m[1]+" ") {
		t.Fatalf("want both containers under one generated profile: %q, %q", label(t, t1.Pid()), label(t, t2.Pid()))
	}

	// The kernel logged it (audit works here).
	t.Logf("kernel: %s", log.waitFor(t, `apparmor="DENIED"`, `name="/sys/fs/bpf/denied"`, fmt.Sprintf("pid=%d", t1.Pid())))

	path := sinkPath(env, c1.ID())
	var got *denials.Record
	deadline := time.Now().Add(30 * time.Second)
	for got == nil {
		for _, r := range harness.DenialRecords(t, path) {
			if r.Source == denials.SourceAppArmor && r.Path == "/sys/fs/bpf/denied" {
				got = &r
				break
			}
		}
		if got == nil {
			if time.Now().After(deadline) {
				cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", t1.Pid()))
				t.Fatalf("no apparmor record for /sys/fs/bpf/denied in %s within 30 s (the process's cgroup: %q); records: %+v",
					path, cg, harness.DenialRecords(t, path))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if got.ContainerID != c1.ID() || got.Pod != c1.ID() || got.Namespace != harness.Namespace || got.Profile != m[1] ||
		got.Operation == "" || got.Action != denials.ActionDenied || got.Pid != int(t1.Pid()) || got.Mode != "enforce" {
		t.Errorf("record %+v: want container %s, profile %s, pid %d, an operation, action denied", *got, c1.ID(), m[1], t1.Pid())
	}
	for _, r := range harness.DenialRecords(t, sinkPath(env, c2.ID())) {
		if r.Source == denials.SourceAppArmor {
			t.Errorf("the bystander sharing the profile got the other container's record: %+v", r)
		}
	}

	out, err := runCmd(filepath.Join(env.BinDir, "stockade"), "denials", "--dir", env.LogDir, "-n", harness.Namespace, "--pod", c1.ID())
	if err != nil {
		t.Fatalf("stockade denials: %v\n%s", err, out)
	}
	if !strings.Contains(out, "apparmor") || !strings.Contains(out, "/sys/fs/bpf/denied") {
		t.Errorf("stockade denials does not show the apparmor record:\n%s", out)
	}
}

func sinkPath(env *harness.Env, id string) string {
	return denials.LogPath(env.LogDir, denial.Attribution{Namespace: harness.Namespace, Pod: id, PodUID: id, Container: id})
}
