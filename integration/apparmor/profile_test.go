package apparmor

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"
)

// TestContainerConfinedByGeneratedProfile: the container's init and a
// process exec'd into it run under a generated profile, in enforce mode (the
// node's default seccomp mode), and the kernel lists that profile.
func TestContainerConfinedByGeneratedProfile(t *testing.T) {
	env := appArmorEnv(t)
	_, task := startSleeper(t, env)

	l := label(t, task.Pid())
	m := generatedLabel.FindStringSubmatch(l)
	if m == nil {
		t.Fatalf("container init pid %d runs as %q, want a generated stockade profile", task.Pid(), l)
	}
	if m[2] != "enforce" {
		t.Errorf("label %q: want enforce mode (the node's seccomp mode is enforce)", l)
	}
	if mode, ok := loadedProfiles(t)[m[1]]; !ok || mode != "enforce" {
		t.Errorf("profile %s: kernel lists it as %q (listed: %v), want enforce", m[1], mode, ok)
	}
	code, out := execIn(t, env, task, "cat", "/proc/self/attr/current")
	if code != 0 || strings.TrimRight(out, "\x00\n") != l {
		t.Errorf("exec'd process: exit %d, label %q; want the init's %q", code, out, l)
	}
}

// TestDeniedWriteFailsWithEACCESAndIsLogged: a write that only the profile
// forbids (the mount is a world-writable tmpfs at /sys/fs/bpf, under the
// profile's deny rule for /sys/fs) fails with EACCES, while a write to the
// container's own writable root works; the kernel logs the denial against
// the container's profile.
func TestDeniedWriteFailsWithEACCESAndIsLogged(t *testing.T) {
	env := appArmorEnv(t)
	_, task := startSleeper(t, env, withBPFFSTmpfs())
	m := generatedLabel.FindStringSubmatch(label(t, task.Pid()))
	if m == nil {
		t.Fatalf("not confined by a generated profile: %q", label(t, task.Pid()))
	}
	log := openKmsg(t)

	if code, out := execIn(t, env, task, "sh", "-c", "echo ok > /tmp/allowed && cat /tmp/allowed"); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("write to the writable root: exit %d: %s", code, out)
	}
	code, out := execIn(t, env, task, "sh", "-c", "echo x > /sys/fs/bpf/denied")
	if code == 0 || !strings.Contains(out, "Permission denied") {
		t.Fatalf("write to /sys/fs/bpf/denied: exit %d, output %q; want EACCES (Permission denied)", code, out)
	}
	// The test's premise: the mount table lets the write through (a
	// read-write tmpfs, mode 1777), so the denial is AppArmor's.
	mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", task.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\S+ \S+ \S+ \S+ /sys/fs/bpf rw,.* - tmpfs `).Match(mi) {
		t.Fatalf("no read-write tmpfs at /sys/fs/bpf in the container:\n%s", mi)
	}
	line := log.waitFor(t, `apparmor="DENIED"`, `profile="`+m[1]+`"`, `name="/sys/fs/bpf/denied"`)
	t.Logf("kernel: %s", line)
}

// TestComplainModeFollowsSeccompMode: a node in seccomp complain mode gets
// profiles in complain mode; the profile's explicit deny rules still hold
// (AppArmor enforces deny rules in complain mode).
func TestComplainModeFollowsSeccompMode(t *testing.T) {
	env := appArmorEnv(t)
	env.WithNodeConfig(t, "[seccomp]\nmode = \"complain\"")
	_, task := startSleeper(t, env, withBPFFSTmpfs())
	l := label(t, task.Pid())
	m := generatedLabel.FindStringSubmatch(l)
	if m == nil || m[2] != "complain" {
		t.Fatalf("label %q, want a generated profile in complain mode", l)
	}
	if mode := loadedProfiles(t)[m[1]]; mode != "complain" {
		t.Errorf("kernel lists %s as %q, want complain", m[1], mode)
	}
	if code, out := execIn(t, env, task, "sh", "-c", "echo x > /sys/fs/bpf/denied"); code == 0 || !strings.Contains(out, "Permission denied") {
		t.Errorf("explicit deny rule in complain mode: exit %d, %q; want EACCES", code, out)
	}
}

// TestProfileLoadedOncePerHashUnloadedWithLast: two containers with the
// same spec (two shims) share one profile, which the kernel loads once (its
// audit records of policy loads say so); a different spec gets another; the
// profile stays while one container uses it and is removed with the last.
func TestProfileLoadedOncePerHashUnloadedWithLast(t *testing.T) {
	env := appArmorEnv(t)
	log := openKmsg(t)
	_, a := startSleeper(t, env)
	name := generatedLabel.FindStringSubmatch(label(t, a.Pid()))
	if name == nil {
		t.Fatalf("not confined: %q", label(t, a.Pid()))
	}
	quoted := `name="` + name[1] + `"`

	_, b := startSleeper(t, env)
	if lb := label(t, b.Pid()); !strings.HasPrefix(lb, name[1]+" ") {
		t.Fatalf("same spec, different profile: %q and %q", name[0], lb)
	}

	_, c := startSleeper(t, env, withBPFFSTmpfs())
	other := generatedLabel.FindStringSubmatch(label(t, c.Pid()))
	if other == nil || other[1] == name[1] {
		t.Fatalf("a different spec (one more mount) must get a different profile: %q", label(t, c.Pid()))
	}

	removeTask(t, env, a)
	if _, ok := loadedProfiles(t)[name[1]]; !ok {
		t.Fatalf("profile %s unloaded while container b still uses it", name[1])
	}
	removeTask(t, env, b)
	if _, ok := loadedProfiles(t)[name[1]]; ok {
		t.Errorf("profile %s still loaded after its last container was deleted", name[1])
	}
	if _, ok := loadedProfiles(t)[other[1]]; !ok {
		t.Errorf("profile %s of the still running container c was unloaded", other[1])
	}
	removeTask(t, env, c)
	if _, ok := loadedProfiles(t)[other[1]]; ok {
		t.Errorf("profile %s still loaded after its container was deleted", other[1])
	}

	// The kernel audits every policy change in order: once the removal is
	// logged, every load before it has been too.
	log.waitFor(t, `apparmor="STATUS"`, `operation="profile_remove"`, quoted)
	if n := log.count(`apparmor="STATUS"`, `operation="profile_load"`, quoted) + log.count(`apparmor="STATUS"`, `operation="profile_replace"`, quoted); n != 1 {
		t.Errorf("profile %s was loaded or replaced %d times for two containers, want once", name[1], n)
	}
	log.waitFor(t, `apparmor="STATUS"`, `operation="profile_load"`, `name="`+other[1]+`"`)
}

// TestRequired: with apparmor.required on a node that enforces AppArmor,
// containers run confined; where stockade cannot enforce it (here: the
// configured apparmor_parser does not exist) creation fails naming the key,
// and without required the container runs unconfined, as documented.
func TestRequired(t *testing.T) {
	env := appArmorEnv(t)
	t.Run("enforcing node", func(t *testing.T) {
		env.WithNodeConfig(t, "[apparmor]\nrequired = true")
		_, task := startSleeper(t, env)
		if l := label(t, task.Pid()); !generatedLabel.MatchString(l) {
			t.Fatalf("label %q, want a generated profile", l)
		}
	})
	t.Run("cannot enforce, required", func(t *testing.T) {
		env.WithNodeConfig(t, "[apparmor]\nrequired = true\nparser_path = \"/nonexistent/apparmor_parser\"")
		c := env.NewContainer(t, newID("aa"), []string{"sleep", "3600"})
		ctx, cancel := context.WithTimeout(env.Context(), 2*time.Minute)
		defer cancel()
		task, err := c.NewTask(ctx, cio.NullIO)
		if err == nil {
			_, _ = task.Delete(ctx)
			t.Fatal("created a container with apparmor.required on a node where the profile cannot be loaded")
		}
		if !strings.Contains(err.Error(), "apparmor.required") {
			t.Errorf("error %q does not name apparmor.required", err)
		}
	})
	t.Run("cannot enforce, not required", func(t *testing.T) {
		env.WithNodeConfig(t, "[apparmor]\nparser_path = \"/nonexistent/apparmor_parser\"")
		_, task := startSleeper(t, env)
		if l := label(t, task.Pid()); l != "unconfined" {
			t.Errorf("label %q, want unconfined (no profile can be loaded, and none is required)", l)
		}
	})
}

// TestLocalhostProfiles: a profile the pod names is used only where
// apparmor.allow_localhost_profiles allows it, and must be loaded; a pod
// asking for "unconfined" still gets the generated profile.
func TestLocalhostProfiles(t *testing.T) {
	env := appArmorEnv(t)
	own := "it-localhost-" + strings.ReplaceAll(newID("p"), "-", "")
	loadTestProfile(t, own)

	t.Run("not allowed", func(t *testing.T) {
		_, task := startSleeper(t, env, withProfile(own))
		if l := label(t, task.Pid()); !generatedLabel.MatchString(l) {
			t.Errorf("label %q: the pod's own profile was used although allow_localhost_profiles is off", l)
		}
	})
	t.Run("unconfined requested", func(t *testing.T) {
		env.WithNodeConfig(t, "[apparmor]\nallow_localhost_profiles = true")
		_, task := startSleeper(t, env, withProfile("unconfined"))
		if l := label(t, task.Pid()); !generatedLabel.MatchString(l) {
			t.Errorf("label %q: a pod asking for unconfined must still get the generated profile", l)
		}
	})
	t.Run("allowed", func(t *testing.T) {
		env.WithNodeConfig(t, "[apparmor]\nallow_localhost_profiles = true")
		_, task := startSleeper(t, env, withProfile("localhost/"+own))
		if l := label(t, task.Pid()); l != own+" (enforce)" {
			t.Errorf("label %q, want %q", l, own+" (enforce)")
		}
	})
	t.Run("allowed but not loaded", func(t *testing.T) {
		env.WithNodeConfig(t, "[apparmor]\nallow_localhost_profiles = true")
		c := env.NewContainer(t, newID("aa"), []string{"sleep", "3600"}, withProfile(own+"-missing"))
		ctx, cancel := context.WithTimeout(env.Context(), 2*time.Minute)
		defer cancel()
		task, err := c.NewTask(ctx, cio.NullIO)
		if err == nil {
			_, _ = task.Delete(ctx)
			t.Fatal("created a container whose localhost profile is not loaded")
		}
		if !strings.Contains(err.Error(), "not loaded") {
			t.Errorf("error %q does not say the profile is not loaded", err)
		}
	})
}
