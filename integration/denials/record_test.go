package denials

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/integration/harness"
	"github.com/stockade-dev/stockade/node/profilestore"
	"github.com/stockade-dev/stockade/profiles/recorded"
	"github.com/stockade-dev/stockade/shim/denials"
)

// recordScript is the workload recorded and then held to its profile: a
// shell, files, a directory, an exec'd program, and one call through the
// 32-bit entry (int 0x80), which must be recorded under SCMP_ARCH_X86.
const recordScript = `set -e
echo data > /tmp/f; cat /tmp/f; cp /tmp/f /tmp/g; ls / >/dev/null
mkdir -p /tmp/d; rmdir /tmp/d; probe int80-getpid; echo finished`

// withRecord adds a [record] section to the node config for the test, with
// a fresh store, and returns the store directory and a function that
// rewrites the section.
func withRecord(t *testing.T, env *harness.Env, keys string) (string, func(store, keys string)) {
	t.Helper()
	store := filepath.Join(t.TempDir(), "profiles")
	if err := os.Mkdir(store, 0o755); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(env.NodeConfig)
	if err != nil {
		t.Fatal(err)
	}
	set := func(store, keys string) {
		s := string(orig) + "\n[record]\nstore_dir = \"" + store + "\"\n" + keys + "\n"
		if err := os.WriteFile(env.NodeConfig, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set(store, keys)
	t.Cleanup(func() { _ = os.WriteFile(env.NodeConfig, orig, 0o644) })
	return store, set
}

// recordPrograms counts the recorder's eBPF programs loaded on the host,
// waiting a few seconds for them to go: a recording that ends must take
// its program with it, and the kernel detaches a tracepoint program only
// after an RCU grace period.
func recordPrograms(t *testing.T) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := countRecordPrograms()
		if n == 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func countRecordPrograms() int {
	n := 0
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return n
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded meanwhile
		}
		if info, err := p.Info(); err == nil && info.Name == "stockade_rec" {
			n++
		}
		p.Close()
	}
}

func annotations(kv ...string) oci.SpecOpts {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return oci.WithAnnotations(m)
}

// TestRecordThenEnforce is record mode's promise end to end: a busybox
// script is recorded (twice, so the runs merge), its profile is in the
// store with the image's digest, the same script runs cleanly under the
// profile, and a syscall it never made is denied and reaches the sink.
func TestRecordThenEnforce(t *testing.T) {
	env := stockadeEnv(t)
	// The script's int $0x80 getpid needs the x86 ABI in the filter: it is
	// off by default (seccomp.compat_abis), and a call from an ABI the
	// filter does not cover kills the thread.
	storeDir, _ := withRecord(t, env, "allow = true\n\n[seccomp]\ncompat_abis = [\"x86\"]")
	const workload = "script"
	name := recorded.Name{Namespace: harness.Namespace, Workload: workload, Container: ""}

	var recordedIDs []string
	for range 2 {
		id, code, out := run(t, env, recordScript, annotations("stockade.dev/seccomp-mode", "record", "stockade.dev/workload", workload))
		if code != 0 || !strings.Contains(out, "finished") {
			t.Fatalf("recorded run: exit %d\n%s", code, out)
		}
		recordedIDs = append(recordedIDs, id)
	}
	if n := recordPrograms(t); n != 0 {
		t.Errorf("%d recorder programs still loaded after the recorded containers were deleted", n)
	}
	// Outside Kubernetes the container is named by its ID, so two runs give
	// two profiles; the workload annotation names them both "script".
	store, err := profilestore.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	var p *recorded.Profile
	for _, id := range recordedIDs {
		name.Container = id
		if p, err = store.Load(name); err != nil {
			t.Fatalf("profile of %s: %v", id, err)
		}
		if p.Runs != 1 || len(p.Images) != 1 || !strings.HasPrefix(p.Images[0].Digest, "sha256:") || p.Images[0].Name != harness.BusyboxImage {
			t.Errorf("profile %s: runs %d, images %+v", name, p.Runs, p.Images)
		}
	}
	native, compat := p.Syscalls[specs.ArchX86_64], p.Syscalls[specs.ArchX86]
	// The shell, what it execs, and runc's init after the filter loaded
	// (execve of the shell); nothing runc did before (mount, pivot_root).
	for _, want := range []string{"execve", "openat", "write", "mkdir", "rmdir", "wait4", "exit_group"} {
		if !slices.Contains(native, want) {
			t.Errorf("%s not recorded: %v", want, native)
		}
	}
	for _, never := range []string{"mount", "pivot_root", "getpriority", "sethostname"} {
		if slices.Contains(native, never) {
			t.Errorf("%s recorded, but the script never made it under the filter", never)
		}
	}
	if !slices.Contains(compat, "getpid") {
		t.Errorf("int 0x80 getpid not recorded under SCMP_ARCH_X86: %v", p.Syscalls)
	}

	// Merge: a profile for one name recorded twice.
	name.Container = "merged"
	first, _ := store.Load(recorded.Name{Namespace: harness.Namespace, Workload: workload, Container: recordedIDs[0]})
	second, _ := store.Load(recorded.Name{Namespace: harness.Namespace, Workload: workload, Container: recordedIDs[1]})
	for _, q := range []*recorded.Profile{first, second} {
		c := *q
		c.Name = name
		if _, err := store.Save(&c); err != nil {
			t.Fatal(err)
		}
	}
	merged, err := store.Load(name)
	if err != nil || merged.Runs != 2 {
		t.Fatalf("merged profile: %+v, %v", merged, err)
	}

	// Enforce it: the script runs cleanly, with no denial.
	ref := harness.Namespace + "/" + workload + "/merged"
	id, code, out := run(t, env, recordScript, annotations("stockade.dev/seccomp-profile", ref))
	if code != 0 || !strings.Contains(out, "finished") {
		t.Fatalf("script under its recorded profile: exit %d\n%s", code, out)
	}
	if rs := harness.DenialRecords(t, logPath(env, "", id)); len(rs) != 0 {
		t.Errorf("the recorded script was denied under its own profile: %+v", rs)
	}
	// A call the script never made: the baseline allows getpriority, the
	// recorded profile does not.
	id, code, out = run(t, env, "probe getpriority; echo end", annotations("stockade.dev/seccomp-profile", ref))
	if code != 0 || !strings.Contains(out, "getpriority errno=EPERM") {
		t.Fatalf("getpriority under the recorded profile: exit %d\n%s", code, out)
	}
	rs := records(t, logPath(env, "", id), 1)
	if len(rs) != 1 || rs[0].Syscall != "getpriority" || rs[0].Action != denials.ActionDenied || rs[0].Profile != "recorded:"+ref {
		t.Errorf("denial records: %+v", rs)
	}
	// The baseline alone lets it through.
	if _, _, out := run(t, env, "probe getpriority"); !strings.Contains(out, "getpriority ok") {
		t.Errorf("getpriority under the baseline: %s", out)
	}

	// The operator's view: list, show and both exports.
	list := stockadeCLI(t, env, "profile", "list", "--store", storeDir)
	if !strings.Contains(list, "merged") || !strings.Contains(list, workload) {
		t.Errorf("stockade profile list:\n%s", list)
	}
	oci := stockadeCLI(t, env, "profile", "export", ref, "--store", storeDir, "--format", "oci")
	var lp specs.LinuxSeccomp
	if err := json.Unmarshal([]byte(oci), &lp); err != nil || lp.DefaultAction != specs.ActErrno || len(lp.Syscalls) == 0 {
		t.Errorf("export --format oci: %v\n%s", err, oci)
	}
	spo := stockadeCLI(t, env, "profile", "export", ref, "--store", storeDir, "--format", "spo")
	if !strings.Contains(spo, "kind: SeccompProfile") || !strings.Contains(spo, "getpid") {
		t.Errorf("export --format spo:\n%s", spo)
	}
}

// TestRecordBadInput: record mode where the node does not allow it, a
// store that is missing, a profile that does not exist and one that is
// corrupt each fail that one container with an error naming the cause,
// and leave no recording behind.
func TestRecordBadInput(t *testing.T) {
	env := stockadeEnv(t)
	storeDir, setRecord := withRecord(t, env, "")
	create := func(ann ...string) error {
		t.Helper()
		id := newID("rb")
		c := env.NewContainer(t, id, []string{"true"}, annotations(ann...))
		_, err := c.NewTask(env.Context(), env.NewIO(nil, nil, nil))
		return err
	}
	if err := create("stockade.dev/seccomp-mode", "record"); err == nil || !strings.Contains(err.Error(), "record.allow is false") {
		t.Errorf("record mode not allowed: %v", err)
	}
	if err := create("stockade.dev/seccomp-profile", "nope/nope"); err == nil || !strings.Contains(err.Error(), `"`+harness.Namespace+`/nope/nope" not found`) {
		t.Errorf("missing profile: %v", err)
	}
	if err := create("stockade.dev/seccomp-profile", "../etc"); err == nil || !strings.Contains(err.Error(), "stockade.dev/seccomp-profile") {
		t.Errorf("path-like profile name: %v", err)
	}
	// A corrupt profile is never applied.
	path := filepath.Join(storeDir, harness.Namespace, "w", "c.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"apiVersion":"stockade.dev/v1","kind":"RecordedSeccompProfile"`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := create("stockade.dev/seccomp-profile", "w/c"); err == nil || !strings.Contains(err.Error(), harness.Namespace+"/w/c") || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt profile: %v", err)
	}
	// A store that is missing fails a recording before it starts, and
	// takes nothing with it.
	setRecord(filepath.Join(storeDir, "missing"), "allow = true")
	if err := create("stockade.dev/seccomp-mode", "record"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing store: %v", err)
	}
	if n := recordPrograms(t); n != 0 {
		t.Errorf("%d recorder programs loaded after failed creates", n)
	}
}
