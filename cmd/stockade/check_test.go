package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stockade-dev/stockade/hostcheck"
	"github.com/stockade-dev/stockade/node/apparmorhost"
)

// fakeProbes is a host with everything but AppArmor.
func fakeProbes() hostcheck.Probes {
	files := map[string]string{
		"/proc/sys/kernel/seccomp/actions_avail": "kill_process kill_thread trap errno user_notif trace log allow",
		"/proc/sys/user/max_user_namespaces":     "1000",
	}
	return hostcheck.Probes{
		ReadFile: func(p string) ([]byte, error) {
			if v, ok := files[p]; ok {
				return []byte(v), nil
			}
			return nil, fs.ErrNotExist
		},
		FSType:        func(string) (int64, error) { return 0x63677270, nil },
		KernelSeccomp: func() error { return nil },
		NotifSizes:    func() error { return nil },
		Libseccomp: func() (hostcheck.Libseccomp, error) {
			return hostcheck.Libseccomp{Compiled: true, Major: 2, Minor: 5, Micro: 4, API: 6}, nil
		},
		IDMap: func() (hostcheck.State, string) { return hostcheck.Yes, "ok" },
		Audit: func() (hostcheck.State, string) { return hostcheck.No, "audit socket:\nprotocol not supported" },
		AppArmor: func(string) apparmorhost.Status {
			return apparmorhost.Status{Reason: "the kernel has no AppArmor support"}
		},
	}
}

func writeConfig(t *testing.T, doc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckRegistered(t *testing.T) {
	if _, ok := commands["check"]; !ok {
		t.Fatal("check is not registered")
	}
}

func TestCheckTable(t *testing.T) {
	var stdout, stderr bytes.Buffer
	cfg := writeConfig(t, "")
	if code := runCheck([]string{"--config", cfg}, &stdout, &stderr, fakeProbes()); code != 0 {
		t.Fatalf("exit %d, stderr %s\n%s", code, stderr.String(), stdout.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"FEATURE", "STOCKADE WILL",
		"apparmor", "no", "skipped: containers run without an AppArmor profile",
		"libseccomp 2.5.4, API level 6",
		"audit socket: protocol not supported", // one line, not two
		"config: " + cfg,
		"result: ok",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckJSONAndRequiredAppArmor(t *testing.T) {
	var stdout, stderr bytes.Buffer
	cfg := writeConfig(t, "[apparmor]\nrequired = true\n")
	code := runCheck([]string{"-o", "json", "--config", cfg}, &stdout, &stderr, fakeProbes())
	if code != 1 {
		t.Fatalf("exit %d with apparmor.required on a host without AppArmor, want 1", code)
	}
	var got struct {
		Config string `json:"config"`
		OK     bool   `json:"ok"`
		Checks []hostcheck.Check
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v:\n%s", err, stdout.String())
	}
	if got.OK || got.Config != cfg || len(got.Checks) == 0 {
		t.Errorf("decoded %+v", got)
	}
	for _, c := range got.Checks {
		if c.Feature == "apparmor" && (c.Need != hostcheck.Required || c.State != hostcheck.No || !strings.Contains(c.Action, "refuses")) {
			t.Errorf("apparmor check %+v", c)
		}
	}
}

func TestCheckUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"-o", "yaml"}, 2, `-o "yaml"`},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--nope"}, 2, "flag provided but not defined"},
		{[]string{"--config", "/nonexistent/stockade.toml"}, 1, "/nonexistent/stockade.toml"},
	} {
		var stdout, stderr bytes.Buffer
		if code := runCheck(tc.args, &stdout, &stderr, fakeProbes()); code != tc.code || !strings.Contains(stderr.String(), tc.msg) {
			t.Errorf("%v: exit %d (want %d), stderr %q (want %q)", tc.args, code, tc.code, stderr.String(), tc.msg)
		}
	}
	var stdout, stderr bytes.Buffer
	cfg := writeConfig(t, "[apparmor]\ncache_dir = \"relative\"\n")
	if code := runCheck([]string{"--config", cfg}, &stdout, &stderr, fakeProbes()); code != 1 || !strings.Contains(stderr.String(), "apparmor.cache_dir") {
		t.Errorf("invalid config: exit %d, stderr %q", code, stderr.String())
	}
}

// TestCheckThisHost runs the real probes end to end; what it finds depends
// on the machine, so only the shape is checked.
func TestCheckThisHost(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := runCheck([]string{"-o", "json", "--config", writeConfig(t, "")}, &stdout, &stderr, hostcheck.Real())
	if code != 0 && code != 1 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var got checkOutput
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil || len(got.Checks) < 9 {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	t.Logf("exit %d\n%s", code, stdout.String())
}
