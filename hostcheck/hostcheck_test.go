package hostcheck

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/node/apparmorhost"
)

// fullHost is a host with everything stockade can use; tests take parts away.
func fullHost() (Probes, map[string]string) {
	files := map[string]string{
		"/proc/sys/kernel/seccomp/actions_avail":     "kill_process kill_thread trap errno user_notif trace log allow\n",
		"/proc/sys/user/max_user_namespaces":         "63432\n",
		"/proc/sys/kernel/unprivileged_userns_clone": "1\n",
	}
	fsTypes := map[string]int64{"/sys/fs/cgroup": cgroup2Magic}
	return Probes{
		ReadFile: func(p string) ([]byte, error) {
			if v, ok := files[p]; ok {
				return []byte(v), nil
			}
			return nil, fs.ErrNotExist
		},
		FSType: func(p string) (int64, error) {
			if v, ok := fsTypes[p]; ok {
				return v, nil
			}
			return 0, fs.ErrNotExist
		},
		KernelSeccomp: func() error { return nil },
		NotifSizes:    func() error { return nil },
		Libseccomp: func() (Libseccomp, error) {
			return Libseccomp{Compiled: true, Major: 2, Minor: 5, Micro: 4, API: 6}, nil
		},
		IDMap: func() (State, string) { return Yes, "ok" },
		Audit: func() (State, string) { return Yes, "ok" },
		AppArmor: func(string) apparmorhost.Status {
			return apparmorhost.Status{Enabled: true, Parser: "/usr/sbin/apparmor_parser", ABI: "abi/3.0"}
		},
	}, files
}

func find(t *testing.T, r Report, feature string) Check {
	t.Helper()
	for _, c := range r.Checks {
		if c.Feature == feature {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", feature, r)
	return Check{}
}

func TestFullHostIsOK(t *testing.T) {
	p, _ := fullHost()
	r := Run(p, config.Default())
	if !r.OK {
		t.Fatalf("not OK: %+v", r)
	}
	for _, c := range r.Checks {
		if c.State != Yes || c.Action == "" {
			t.Errorf("%+v", c)
		}
	}
	if c := find(t, r, "libseccomp"); c.Detail != "libseccomp 2.5.4, API level 6" {
		t.Errorf("libseccomp detail %q", c.Detail)
	}
	if c := find(t, r, "seccomp"); !strings.Contains(c.Detail, "user_notif trace log allow") {
		t.Errorf("seccomp detail %q", c.Detail)
	}
}

func TestMissingFeatures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*Probes, map[string]string, *config.Config)
		feature string
		state   State
		ok      bool
		detail  string
	}{
		{"no apparmor, not required", func(p *Probes, _ map[string]string, _ *config.Config) {
			p.AppArmor = func(string) apparmorhost.Status {
				return apparmorhost.Status{Reason: "the kernel has no AppArmor support"}
			}
		}, "apparmor", No, true, "no AppArmor support"},
		{"no apparmor, required", func(p *Probes, _ map[string]string, c *config.Config) {
			c.AppArmor.Required = true
			p.AppArmor = func(string) apparmorhost.Status {
				return apparmorhost.Status{Reason: "the kernel has no AppArmor support"}
			}
		}, "apparmor", No, false, "no AppArmor support"},
		{"no user notification, denials on", func(p *Probes, f map[string]string, _ *config.Config) {
			p.NotifSizes = func() error { return syscall.EINVAL }
			f["/proc/sys/kernel/seccomp/actions_avail"] = "kill_process errno log allow"
		}, "seccomp user notification", No, false, "invalid argument"},
		{"no user notification, denials off", func(p *Probes, f map[string]string, c *config.Config) {
			c.Denials.Enabled = false
			p.NotifSizes = func() error { return syscall.EINVAL }
			f["/proc/sys/kernel/seccomp/actions_avail"] = "kill_process errno log allow"
		}, "seccomp user notification", No, true, ""},
		{"notification via actions_avail", func(p *Probes, _ map[string]string, _ *config.Config) {
			p.NotifSizes = func() error { return syscall.EPERM }
		}, "seccomp user notification", Yes, true, "actions_avail lists user_notif"},
		{"old libseccomp API", func(p *Probes, _ map[string]string, _ *config.Config) {
			p.Libseccomp = func() (Libseccomp, error) { return Libseccomp{Compiled: true, Major: 2, Minor: 4, API: 3}, nil }
		}, "seccomp user notification", No, false, "API level 3"},
		{"built without libseccomp", func(p *Probes, _ map[string]string, _ *config.Config) {
			p.Libseccomp = func() (Libseccomp, error) { return Libseccomp{}, nil }
		}, "libseccomp", No, false, "-tags seccomp"},
		{"no log action, enforce", func(_ *Probes, f map[string]string, _ *config.Config) {
			f["/proc/sys/kernel/seccomp/actions_avail"] = "kill_process errno user_notif allow"
		}, "seccomp log action", No, true, ""},
		{"no log action, complain", func(_ *Probes, f map[string]string, c *config.Config) {
			c.Seccomp.Mode = "complain"
			f["/proc/sys/kernel/seccomp/actions_avail"] = "kill_process errno user_notif allow"
		}, "seccomp log action", No, false, ""},
		{"no seccomp", func(p *Probes, _ map[string]string, _ *config.Config) {
			p.KernelSeccomp = func() error { return syscall.EINVAL }
		}, "seccomp", No, false, "PR_GET_SECCOMP"},
		{"userns disabled in the kernel", func(_ *Probes, f map[string]string, _ *config.Config) {
			f["/proc/sys/user/max_user_namespaces"] = "0\n"
		}, "user namespaces", No, false, "max_user_namespaces is 0"},
		{"userns off in config", func(_ *Probes, f map[string]string, c *config.Config) {
			c.UserNS.Enabled = false
			f["/proc/sys/user/max_user_namespaces"] = "0\n"
		}, "user namespaces", No, true, ""},
		{"idmap unknown as non-root", func(p *Probes, _ map[string]string, _ *config.Config) {
			p.IDMap = func() (State, string) { return Unknown, "unknown (not root)" }
		}, "idmapped mounts", Unknown, true, "not root"},
		{"no audit", func(p *Probes, _ map[string]string, _ *config.Config) {
			p.Audit = func() (State, string) { return No, "protocol not supported" }
		}, "kernel audit", No, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, files := fullHost()
			cfg := config.Default()
			tc.mutate(&p, files, cfg)
			r := Run(p, cfg)
			c := find(t, r, tc.feature)
			if c.State != tc.state || r.OK != tc.ok || !strings.Contains(c.Detail, tc.detail) {
				t.Errorf("got %+v, report ok %v; want state %s, ok %v, detail containing %q", c, r.OK, tc.state, tc.ok, tc.detail)
			}
			if c.Action == "" {
				t.Error("no action")
			}
		})
	}
}

func TestCgroupVersions(t *testing.T) {
	for _, tc := range []struct {
		types map[string]int64
		want  string
	}{
		{map[string]int64{"/sys/fs/cgroup": cgroup2Magic}, "v2"},
		{map[string]int64{"/sys/fs/cgroup": tmpfsMagic, "/sys/fs/cgroup/unified": cgroup2Magic}, "hybrid"},
		{map[string]int64{"/sys/fs/cgroup": tmpfsMagic}, "v1"},
		{map[string]int64{}, "statfs"},
	} {
		p, _ := fullHost()
		p.FSType = func(path string) (int64, error) {
			if v, ok := tc.types[path]; ok {
				return v, nil
			}
			return 0, errors.New("no such file")
		}
		if c := find(t, Run(p, config.Default()), "cgroup"); !strings.Contains(c.Detail, tc.want) {
			t.Errorf("%v: detail %q, want %q", tc.types, c.Detail, tc.want)
		}
	}
}

// TestThisHost runs the real probes. CI's machine has seccomp with user
// notification and the log action, user namespaces, idmapped tmpfs mounts
// and a hybrid cgroup layout, but no AppArmor.
func TestThisHost(t *testing.T) {
	r := Run(Real(), config.Default())
	for _, c := range r.Checks {
		t.Logf("%-26s %-7s %-8s %s | %s", c.Feature, c.State, c.Need, c.Detail, c.Action)
	}
	for _, f := range []string{"seccomp", "seccomp user notification", "seccomp log action", "user namespaces"} {
		if c := find(t, r, f); c.State != Yes {
			t.Errorf("%s: %+v", f, c)
		}
	}
	c := find(t, r, "idmapped mounts")
	if os.Geteuid() != 0 {
		if c.State != Unknown {
			t.Errorf("idmap as non-root: %+v", c)
		}
	} else if c.State == Unknown {
		t.Errorf("idmap probe failed to run as root: %s", c.Detail)
	}
	if c := find(t, r, "apparmor"); c.State == Yes {
		t.Logf("this host has AppArmor: %s", c.Detail)
	}
}

func TestCompatABIs(t *testing.T) {
	cfg := config.Default()
	c := checkCompatABIs("amd64", cfg)
	if c.Detail != "x86_64 (off: x86, x32)" || !strings.Contains(c.Action, "calls through x86, x32 kill the calling thread with SIGSYS") {
		t.Errorf("default: %+v", c)
	}
	cfg.Seccomp.CompatABIs, cfg.Seccomp.AllowCompatABIAnnotation = []string{"x86"}, true
	c = checkCompatABIs("amd64", cfg)
	if c.Detail != "x86_64, x86 (off: x32)" || !strings.Contains(c.Action, "stockade.dev/seccomp-compat-abis") {
		t.Errorf("x86 on: %+v", c)
	}
	cfg.Seccomp.CompatABIs = []string{"arm"}
	if c := checkCompatABIs("arm64", cfg); c.Detail != "aarch64, arm" || strings.Contains(c.Action, "SIGSYS") {
		t.Errorf("arm64 with arm: %+v", c)
	}
}
