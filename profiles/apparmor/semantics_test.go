package apparmor

import (
	"strings"
	"testing"
)

// These tests ask the compiled automaton, not the profile text, what a
// container may do: glob spelling is easy to get subtly wrong.

func TestBaselineSemantics(t *testing.T) {
	p, err := Render(criSpec(true, criDefaultCaps,
		bind("/data", false),
		bind("/etc/app/config", true),
	), Policy{Mode: Enforce})
	if err != nil {
		t.Fatal(err)
	}
	d := compileDFA(t, p.Text)

	for _, path := range []string{
		"/proc/1/oom_score_adj",
		"/proc/4242/attr/apparmor/exec",
		"/proc/4242/task/4243/comm",
		"/proc/sys/kernel/shmmax",
		"/proc/sys/kernel/shm_rmid_forced",
		"/data", "/data/", "/data/db/file",
		"/dev/shm/sem.x",
		"/dev/null",
		"/etc/hosts",
		"/dev/termination-log",
	} {
		if !d.writable(path) {
			t.Errorf("%s: not writable, want writable", path)
		}
	}
	for _, path := range []string{
		"/proc/sysrq-trigger",
		"/proc/kcore",
		"/proc/self/oom_score_adj", // the kernel resolves self; a literal one is no pid
		"/proc/1x/foo",
		"/proc/bus/pci/00/00.0",
		"/proc/sys/vm/overcommit_memory",
		"/proc/sys/net/ipv4/ip_forward",
		"/proc/sys/kernel/sched_child_runs_first", // docker-default lets s* through
		"/proc/sys/kernel/core_pattern",
		"/proc/sys/kernelx/y",
		"/proc/sys/k",
		"/proc/sysx/y",
		"/sys/kernel/mm/ksm/run",
		"/sys/fs/bpf/x",
		"/sys/fs/cgroupx/y",
		"/sys/fs/cgroup/memory.max", // /sys/fs/cgroup is mounted read-only
		"/sys/class/net/eth0/mtu",
		"/usr/bin/ls", // read-only root
		"/",
		"/etc/app/config/key",
		"/data2/x", // a sibling of a writable mount
		"/dat",
	} {
		if d.writable(path) {
			t.Errorf("%s: writable, want denied", path)
		}
	}
	for _, path := range []string{"/proc/kcore", "/sys/firmware/acpi/tables/DSDT", "/sys/kernel/security/apparmor/profiles", "/sys/devices/virtual/powercap/intel-rapl/intel-rapl:0/energy_uj"} {
		if d.readable(path) {
			t.Errorf("%s: readable, want denied", path)
		}
	}
	for _, path := range []string{"/etc/passwd", "/proc/1/status", "/sys/fs/cgroup/memory.max", "/usr/lib/x86_64-linux-gnu/libc.so.6"} {
		if !d.readable(path) {
			t.Errorf("%s: not readable, want readable", path)
		}
	}
}

func TestWritableRootSemantics(t *testing.T) {
	p, err := Render(criSpec(false, nil, bind("/etc/app/config", true)), Policy{})
	if err != nil {
		t.Fatal(err)
	}
	d := compileDFA(t, p.Text)
	for _, path := range []string{"/usr/local/bin/tool", "/tmp/x", "/var/lib/app/state"} {
		if !d.writable(path) {
			t.Errorf("%s: not writable on a writable root", path)
		}
	}
	for _, path := range []string{"/etc/app/config", "/etc/app/config/key", "/proc/sys/fs/file-max", "/sys/kernel/x"} {
		if d.writable(path) {
			t.Errorf("%s: writable, want denied", path)
		}
	}
}

// hostileDestinations are mount destinations that break a profile, or
// widen it, unless every byte is escaped.
var hostileDestinations = []string{
	"/a*", "/b**", "/c?", "/d[0-9]", "/e[^x]", "/f{g,h}", "/i}", "/j{", "/k]",
	"/l^m", "/@{HOME}", "/n@", `/o"p`, `/q\r`, `/s\`, "/t,u", "/v#w", "/x y",
	"/trailing ", "/new\nline", "/tab\there", "/\x01\x7f", "/\xff\xfe", "/caf\xc3\xa9",
	"/z/** rwx", "/rule,\n  /** rwx,\n", "/$(x)", "/a+b.c|d", "/0123",
}

// TestEscapedDestinationsAreLiteral checks that each escaped destination
// matches exactly itself and its subtree: no glob survives escaping.
func TestEscapedDestinationsAreLiteral(t *testing.T) {
	var b strings.Builder
	b.WriteString("profile t {\n")
	for _, dest := range hostileDestinations {
		b.WriteString("  " + subtree(dest) + " w,\n")
	}
	b.WriteString("}\n")
	d := compileDFA(t, b.String())

	isDest := map[string]bool{}
	for _, dest := range hostileDestinations {
		isDest[dest] = true
	}
	for _, dest := range hostileDestinations {
		for _, path := range []string{dest, dest + "/", dest + "/sub/file"} {
			if !d.writable(path) {
				t.Errorf("%q: escaped rule does not match %q", dest, path)
			}
		}
		// What the unescaped glob would have matched must stay denied.
		for _, probe := range []string{dest + "x", dest[:len(dest)-1], strings.NewReplacer("*", "Z", "?", "Q", "[", "", "]", "", "{", "", "}", "", "\\", "").Replace(dest)} {
			if !isDest[probe] && !strings.HasPrefix(probe, dest+"/") && d.writable(probe) {
				t.Errorf("%q: escaped rule also matches %q", dest, probe)
			}
		}
	}
	for _, probe := range []string{"/", "/etc/passwd", "/zz", "/a", "/b", "/cx"} {
		if d.writable(probe) {
			t.Errorf("unrelated path %q is writable", probe)
		}
	}
}

// TestEveryByteEscapes renders a destination for every byte value but NUL
// and '/', and checks that each compiles to exactly that byte.
func TestEveryByteEscapes(t *testing.T) {
	var b strings.Builder
	b.WriteString("profile t {\n")
	var dests []string
	for c := 1; c < 256; c++ {
		if c == '/' {
			continue
		}
		dest := "/b" + string([]byte{byte(c)}) + "e"
		dests = append(dests, dest)
		b.WriteString("  " + subtree(dest) + " w,\n")
	}
	b.WriteString("}\n")
	d := compileDFA(t, b.String())
	for _, dest := range dests {
		if !d.writable(dest) || !d.writable(dest+"/f") {
			t.Errorf("%q: escaped rule does not match itself", dest)
		}
	}
	for _, probe := range []string{"/be", "/bxxe", "/b/e"} {
		if d.writable(probe) {
			t.Errorf("%q matched: some escape acts as a glob", probe)
		}
	}
}
