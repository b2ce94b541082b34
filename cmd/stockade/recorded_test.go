package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/node/profilestore"
	"github.com/stockade-dev/stockade/profiles/recorded"
	"github.com/stockade-dev/stockade/profiles/recorded/spo"
	"github.com/stockade-dev/stockade/profiles/seccomp"
)

var recordedAt = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)

// nativeABIs are this machine's seccomp ABIs, native first: the CLI
// validates the store for the machine it runs on.
func nativeABIs(t *testing.T) []specs.Arch {
	t.Helper()
	abis, err := seccomp.ABIs(runtime.GOARCH)
	if err != nil {
		t.Skipf("no seccomp ABIs for %s: %v", runtime.GOARCH, err)
	}
	return abis
}

// recordedStore is a store with four profiles in three namespaces; shop/
// web/app was recorded twice.
func recordedStore(t *testing.T) *profilestore.Store {
	t.Helper()
	abis := nativeABIs(t)
	s, err := profilestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	save := func(name string, img recorded.Image, at time.Duration, sys map[specs.Arch][]string) {
		n, err := recorded.ParseName(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Save(recorded.New(n, img, recordedAt.Add(at), sys)); err != nil {
			t.Fatal(err)
		}
	}
	nginx := recorded.Image{Name: "docker.io/library/nginx:1.27", Digest: "sha256:" + strings.Repeat("ab", 32)}
	save("shop/web/app", nginx, 0, map[specs.Arch][]string{abis[0]: {"read", "write", "openat", "close"}})
	save("shop/web/app", recorded.Image{Name: "docker.io/library/nginx:1.28"}, 26*time.Hour,
		map[specs.Arch][]string{abis[0]: {"read", "getrandom"}, abis[1]: {"read", "write"}})
	save("shop/web/sidecar", recorded.Image{}, time.Hour, map[specs.Arch][]string{abis[0]: {"read"}})
	save("default/solo/solo", recorded.Image{Name: "busybox"}, 2*time.Hour, map[specs.Arch][]string{abis[0]: {"write", "exit_group"}})
	save("kube-system/coredns/coredns", recorded.Image{Name: "coredns:1.11"}, 3*time.Hour, map[specs.Arch][]string{abis[0]: {"read", "write", "epoll_pwait"}})
	return s
}

func runRec(t *testing.T, run func([]string, *bytes.Buffer, *bytes.Buffer) int, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func recList(args []string, out, errb *bytes.Buffer) int   { return runProfileList(args, out, errb) }
func recShow(args []string, out, errb *bytes.Buffer) int   { return runProfileShow(args, out, errb) }
func recExport(args []string, out, errb *bytes.Buffer) int { return runProfileExport(args, out, errb) }

func corruptRecorded(t *testing.T, s *profilestore.Store, name string) string {
	t.Helper()
	n, err := recorded.ParseName(name)
	if err != nil {
		t.Fatal(err)
	}
	path := s.Path(n)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// An edit without a new checksum.
	if err := os.WriteFile(path, bytes.Replace(data, []byte(`"runs": 1`), []byte(`"runs": 5`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRecordedKindsRegistered(t *testing.T) {
	for _, k := range []string{"list", "show", "export", "seccomp"} {
		if _, ok := profileKinds[k]; !ok {
			t.Errorf("profile kind %q not registered", k)
		}
	}
	var out, errb bytes.Buffer
	if code := runProfile([]string{"list", "--store", recordedStore(t).Dir}, &out, &errb); code != 0 || !strings.Contains(out.String(), "shop") {
		t.Errorf("stockade profile list through runProfile: %d\n%s%s", code, &out, &errb)
	}
}

func TestProfileListTable(t *testing.T) {
	s := recordedStore(t)
	code, out, errOut := runRec(t, recList, "--store", s.Dir)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	want := "" +
		"NAMESPACE    WORKLOAD  CONTAINER  SYSCALLS  RUNS  IMAGES                                                     LAST-RECORDED\n" +
		"default      solo      solo       2         1     busybox                                                    2026-03-04T14:00:00Z\n" +
		"kube-system  coredns   coredns    3         1     coredns:1.11                                               2026-03-04T15:00:00Z\n" +
		"shop         web       app        5         2     docker.io/library/nginx:1.27,docker.io/library/nginx:1.28  2026-03-05T14:00:00Z\n" +
		"shop         web       sidecar    1         1     -                                                          2026-03-04T13:00:00Z\n"
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
}

func TestProfileListFilters(t *testing.T) {
	s := recordedStore(t)
	rows := func(out string) (names []string) {
		for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			f := strings.Fields(l)
			names = append(names, f[0]+"/"+f[1]+"/"+f[2])
		}
		return names
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"-n", "shop"}, []string{"shop/web/app", "shop/web/sidecar"}},
		{[]string{"--namespace=kube-system"}, []string{"kube-system/coredns/coredns"}},
		{[]string{"-n", "shop", "-A"}, []string{"default/solo/solo", "kube-system/coredns/coredns", "shop/web/app", "shop/web/sidecar"}},
		{[]string{"--all-namespaces"}, []string{"default/solo/solo", "kube-system/coredns/coredns", "shop/web/app", "shop/web/sidecar"}},
	} {
		code, out, errOut := runRec(t, recList, append([]string{"--store", s.Dir}, tc.args...)...)
		if code != 0 || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q", tc.args, code, errOut)
			continue
		}
		if got := rows(out); !slices.Equal(got, tc.want) {
			t.Errorf("%v: rows %v, want %v", tc.args, got, tc.want)
		}
	}

	code, out, errOut := runRec(t, recList, "--store", s.Dir, "-n", "nope")
	if code != 0 || out != "" || !strings.Contains(errOut, `no recorded profiles in namespace "nope" in store `+s.Dir) {
		t.Errorf("empty namespace: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestProfileListJSON(t *testing.T) {
	s := recordedStore(t)
	// Flags after other flags and in any order, as with kubectl.
	code, out, errOut := runRec(t, recList, "-o", "json", "--store", s.Dir, "-n", "shop")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var docs []json.RawMessage
	if err := json.Unmarshal([]byte(out), &docs); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(docs) != 2 {
		t.Fatalf("%d profiles, want 2", len(docs))
	}
	p, err := recorded.Decode(docs[0], runtime.GOARCH)
	if err != nil {
		t.Fatalf("listed JSON is not a stored document: %v", err)
	}
	if p.Name.String() != "shop/web/app" || p.Runs != 2 {
		t.Errorf("first profile %+v", p)
	}

	empty := t.TempDir()
	code, out, _ = runRec(t, recList, "-o", "json", "--store", empty)
	if code != 0 || out != "[]\n" {
		t.Errorf("empty store as JSON: exit %d, %q", code, out)
	}
}

func TestProfileListCorrupt(t *testing.T) {
	s := recordedStore(t)
	path := corruptRecorded(t, s, "shop/web/sidecar")
	code, out, errOut := runRec(t, recList, "--store", s.Dir)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if strings.Contains(out, "sidecar") || !strings.Contains(out, "coredns") || !strings.Contains(out, "solo") {
		t.Errorf("good profiles not printed, or the corrupt one printed:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "stockade profile list: warning: ") ||
		!strings.Contains(lines[0], path) || !strings.Contains(lines[0], "checksum") {
		t.Errorf("stderr %q, want one warning naming %s", errOut, path)
	}
}

func TestProfileListErrors(t *testing.T) {
	s := recordedStore(t)
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"--store", missing}, 1, "stockade profile list: profile store " + missing + ": does not exist"},
		{[]string{"--store", "relative"}, 1, "not an absolute path"},
		{[]string{"--store", s.Dir, "-o", "yaml"}, 2, `-o "yaml": want table or json`},
		{[]string{"--store", s.Dir, "shop"}, 2, `unexpected argument "shop"`},
		{[]string{"--bogus"}, 2, "flag provided but not defined"},
		{[]string{"--config", filepath.Join(t.TempDir(), "none.toml")}, 1, "node config"},
	} {
		code, out, errOut := runRec(t, recList, tc.args...)
		if code != tc.code || out != "" || !strings.Contains(errOut, tc.err) {
			t.Errorf("%v: exit %d (want %d), stdout %q, stderr %q (want %q)", tc.args, code, tc.code, out, errOut, tc.err)
		}
	}
}

func TestStoreDir(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte("[record]\nstore_dir = \"/srv/profiles\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg      string
		explicit bool
		flag     string
		want     string
		wantErr  bool
	}{
		{cfgPath, true, "/flag/dir", "/flag/dir", false},
		{cfgPath, true, "", "/srv/profiles", false},
		{filepath.Join(dir, "absent.toml"), false, "", config.Default().Record.StoreDir, false},
		{filepath.Join(dir, "absent.toml"), true, "", "", true},
		{filepath.Join(dir, "absent.toml"), true, "/flag/dir", "/flag/dir", false},
	} {
		got, err := storeDir(tc.cfg, tc.explicit, tc.flag)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("storeDir(%s, %v, %q) = %q, %v; want %q", tc.cfg, tc.explicit, tc.flag, got, err, tc.want)
		}
	}
	// The list verb reads the config's store when --store is absent.
	s := recordedStore(t)
	if err := os.WriteFile(cfgPath, []byte("[record]\nstore_dir = \""+s.Dir+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runRec(t, recList, "--config", cfgPath); code != 0 || !strings.Contains(out, "coredns") {
		t.Errorf("list --config: exit %d\n%s%s", code, out, errOut)
	}
}

func TestProfileShowText(t *testing.T) {
	s := recordedStore(t)
	abis := nativeABIs(t)
	for _, args := range [][]string{
		{"shop/web/app", "--store", s.Dir},
		{"web/app", "-n", "shop", "--store", s.Dir},
		{"--store", s.Dir, "web/app", "--namespace", "shop"},
		{"shop/web/app", "-n", "shop", "--store", s.Dir},
	} {
		code, out, errOut := runRec(t, recShow, args...)
		if code != 0 || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
			continue
		}
		for _, want := range []string{
			"Name:           shop/web/app\n",
			"Annotation:     stockade.dev/seccomp-profile: web/app\n",
			"Images:         docker.io/library/nginx:1.27@sha256:abab",
			"\n                docker.io/library/nginx:1.28\n",
			"Runs:           2\n",
			"First recorded: 2026-03-04T12:00:00Z\n",
			"Last recorded:  2026-03-05T14:00:00Z\n",
			"Checksum:       sha256:",
			"Syscalls:       5 (all ABIs)\n",
			"\n" + string(abis[0]) + " (5):\n  close getrandom openat read write\n",
			"\n" + string(abis[1]) + " (2):\n  read write\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: output lacks %q:\n%s", args, want, out)
			}
		}
		if strings.Index(out, string(abis[0])+" (") > strings.Index(out, string(abis[1])+" (") {
			t.Errorf("%v: native ABI not first:\n%s", args, out)
		}
	}
}

func TestProfileShowJSON(t *testing.T) {
	s := recordedStore(t)
	code, out, errOut := runRec(t, recShow, "shop/web/sidecar", "-o", "json", "--store", s.Dir)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	stored, err := os.ReadFile(s.Path(recorded.Name{Namespace: "shop", Workload: "web", Container: "sidecar"}))
	if err != nil {
		t.Fatal(err)
	}
	if out != string(stored) {
		t.Errorf("show -o json differs from the stored document:\n%s\n%s", out, stored)
	}
}

func TestProfileShowErrors(t *testing.T) {
	s := recordedStore(t)
	path := corruptRecorded(t, s, "default/solo/solo")
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"web/app", "--store", s.Dir}, 1, `stockade profile show: recorded profile "default/web/app" not found in store ` + s.Dir + "\n"},
		{[]string{"shop/web/nope", "--store", s.Dir}, 1, `recorded profile "shop/web/nope" not found in store`},
		{[]string{"solo/solo", "--store", s.Dir}, 1, `recorded profile "default/solo/solo", file ` + path + ": corrupt recorded profile: checksum"},
		{[]string{"shop/web/app", "--store", missing}, 1, "profile store " + missing + ": does not exist"},
		{[]string{"--store", s.Dir}, 2, "usage: stockade profile show NAME"},
		{[]string{"a/b", "c/d", "--store", s.Dir}, 2, "usage: stockade profile show NAME"},
		{[]string{"app", "--store", s.Dir}, 2, `NAME "app": want namespace/workload/container`},
		{[]string{"a/b/c/d", "--store", s.Dir}, 2, `NAME "a/b/c/d"`},
		{[]string{"Shop/web/app", "--store", s.Dir}, 2, `namespace "Shop"`},
		{[]string{"../web/app", "--store", s.Dir}, 2, `namespace ".."`},
		{[]string{"shop/web/app", "-n", "other", "--store", s.Dir}, 2, `NAME shop/web/app is in namespace "shop", -n says "other"`},
		{[]string{"shop/web/app", "-o", "yaml", "--store", s.Dir}, 2, `-o "yaml": want text or json`},
		// Usage errors come before the store is read.
		{[]string{"shop/web/nope", "-o", "yaml", "--store", missing}, 2, `-o "yaml": want text or json`},
	} {
		code, out, errOut := runRec(t, recShow, tc.args...)
		if code != tc.code || out != "" || !strings.Contains(errOut, tc.err) {
			t.Errorf("%v: exit %d (want %d), stdout %q, stderr %q (want %q)", tc.args, code, tc.code, out, errOut, tc.err)
		}
	}
}

func TestProfileExport(t *testing.T) {
	s := recordedStore(t)
	p, err := s.Load(recorded.Name{Namespace: "shop", Workload: "web", Container: "app"})
	if err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runRec(t, recExport, "shop/web/app", "--store", s.Dir)
	if code != 0 || errOut != "" {
		t.Fatalf("oci: exit %d, stderr %q", code, errOut)
	}
	var got specs.LinuxSeccomp
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if want := p.OCI(runtime.GOARCH); !reflect.DeepEqual(&got, want) {
		t.Errorf("oci export %+v, want %+v", got, want)
	}
	if !strings.HasPrefix(out, "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n") || !strings.HasSuffix(out, "}\n") {
		t.Errorf("not indented JSON:\n%s", out)
	}

	code, out, errOut = runRec(t, recExport, "web/app", "-n", "shop", "--format", "spo", "--store", s.Dir)
	want, err := spo.Manifest(p, runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || errOut != "" || out != string(want) {
		t.Errorf("spo: exit %d, stderr %q, output:\n%s", code, errOut, out)
	}
	if !strings.Contains(out, "kind: SeccompProfile\n") || !strings.Contains(out, "name: web-app\n") {
		t.Errorf("spo output:\n%s", out)
	}

	file := filepath.Join(t.TempDir(), "web-app.json")
	code, out, errOut = runRec(t, recExport, "shop/web/app", "--store", s.Dir, "--output", file)
	if code != 0 || out != "" || !strings.Contains(errOut, "wrote shop/web/app (oci) to "+file) {
		t.Fatalf("--output: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	written, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	_, stdoutVersion, _ := runRec(t, recExport, "shop/web/app", "--store", s.Dir)
	if string(written) != stdoutVersion {
		t.Errorf("--output file differs from stdout:\n%s", written)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o644 {
		t.Errorf("--output file mode %v", fi.Mode())
	}
	if entries, _ := os.ReadDir(filepath.Dir(file)); len(entries) != 1 {
		t.Errorf("temporary files left next to the output: %v", entries)
	}
}

func TestProfileExportErrors(t *testing.T) {
	s := recordedStore(t)
	corruptRecorded(t, s, "kube-system/coredns/coredns")
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"shop/web/nope", "--store", s.Dir}, 1, `recorded profile "shop/web/nope" not found in store ` + s.Dir},
		{[]string{"kube-system/coredns/coredns", "--store", s.Dir}, 1, `recorded profile "kube-system/coredns/coredns", file `},
		{[]string{"shop/web/app", "--format", "docker", "--store", s.Dir}, 2, `--format "docker": want oci or spo`},
		{[]string{"shop/web/nope", "--format", "docker", "--store", "/nonexistent"}, 2, `--format "docker": want oci or spo`},
		{[]string{"--store", s.Dir}, 2, "usage: stockade profile export NAME"},
		{[]string{"shop/web/app", "--store", s.Dir, "--output", filepath.Join(t.TempDir(), "no", "such", "dir.json")}, 1, "no such file or directory"},
		{[]string{"shop/web/app", "--store", filepath.Join(t.TempDir(), "missing")}, 1, "does not exist"},
	} {
		code, out, errOut := runRec(t, recExport, tc.args...)
		if code != tc.code || out != "" || !strings.Contains(errOut, tc.err) {
			t.Errorf("%v: exit %d (want %d), stdout %q, stderr %q (want %q)", tc.args, code, tc.code, out, errOut, tc.err)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  []string
		o    string
	}{
		{[]string{"a", "-o", "json", "b"}, []string{"a", "b"}, "json"},
		{[]string{"-o", "json", "a"}, []string{"a"}, "json"},
		{[]string{"a", "--", "-o", "x"}, []string{"a", "-o", "x"}, ""},
		{nil, nil, ""},
	} {
		var o string
		fs := newTestFlagSet(&o)
		pos, err := parseInterspersed(fs, tc.args)
		if err != nil || !slices.Equal(pos, tc.pos) || o != tc.o {
			t.Errorf("%v: %v, -o %q, %v; want %v, %q", tc.args, pos, o, err, tc.pos, tc.o)
		}
	}
}

func newTestFlagSet(o *string) *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.StringVar(o, "o", "", "")
	return fs
}
