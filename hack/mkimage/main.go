// Command mkimage writes a single-layer OCI image layout tarball from host
// files, so the integration tests and the benchmark have images without a
// registry or a container runtime. The output is reproducible: fixed owners,
// a fixed timestamp (SOURCE_DATE_EPOCH, default 0) and sorted members.
//
//	mkimage -o bin/images/busybox.tar -ref docker.io/stockade-test/busybox:latest \
//	        -busybox /bin/busybox -base -cmd '["sh"]'
//	mkimage -o bin/images/pause.tar -ref docker.io/stockade-test/pause:latest \
//	        -add bin/hack/pause:/pause:0755 -entrypoint '["/pause"]'
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// jsonArgs parses an exec-form argument list such as '["sh","-c","x"]'.
type jsonArgs []string

func (a *jsonArgs) String() string { b, _ := json.Marshal([]string(*a)); return string(b) }
func (a *jsonArgs) Set(v string) error {
	var args []string
	if err := json.Unmarshal([]byte(v), &args); err != nil {
		return fmt.Errorf("want a JSON array of strings: %w", err)
	}
	*a = args
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		out, ref, busybox string
		base              bool
		adds, envs        multiFlag
		entrypoint, cmd   jsonArgs
		workdir           = "/"
	)
	flag.StringVar(&out, "o", "", "output tarball (OCI image layout)")
	flag.StringVar(&ref, "ref", "", "image reference, e.g. docker.io/stockade-test/busybox:latest")
	flag.StringVar(&busybox, "busybox", "", "static busybox binary to install as /bin/busybox with applet symlinks in /bin")
	flag.BoolVar(&base, "base", false, "add /etc/passwd, /etc/group, /tmp (1777), /root, /proc, /sys, /dev and /run")
	flag.Var(&adds, "add", "SRC:DST[:MODE] host file to copy into the image (repeatable)")
	flag.Var(&envs, "env", "KEY=VALUE for the image config (repeatable; PATH is set by default)")
	flag.Var(&entrypoint, "entrypoint", "entrypoint as a JSON array")
	flag.Var(&cmd, "cmd", "cmd as a JSON array")
	flag.StringVar(&workdir, "workdir", workdir, "working directory")
	flag.Parse()
	if out == "" || ref == "" || flag.NArg() != 0 {
		flag.Usage()
		return fmt.Errorf("-o and -ref are required")
	}

	created, err := sourceDate()
	if err != nil {
		return err
	}
	l := newLayer(created)
	if base {
		if err := addBase(l); err != nil {
			return err
		}
	}
	if busybox != "" {
		if err := addBusybox(l, busybox); err != nil {
			return err
		}
	}
	for _, a := range adds {
		if err := addHostFile(l, a); err != nil {
			return err
		}
	}

	env := []string{"PATH=" + defaultPath}
	for _, e := range envs {
		if strings.HasPrefix(e, "PATH=") {
			env[0] = e
			continue
		}
		env = append(env, e)
	}
	return writeLayout(out, imageSpec{
		ref:        ref,
		entrypoint: entrypoint,
		cmd:        cmd,
		env:        env,
		workdir:    workdir,
		created:    created,
	}, l)
}

// sourceDate honours SOURCE_DATE_EPOCH so rebuilds give identical digests.
func sourceDate() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// addBase adds the few files that most tools (and CRI's user lookup) expect.
func addBase(l *layer) error {
	passwd := "root:x:0:0:root:/root:/bin/sh\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	group := "root:x:0:\nnogroup:x:65534:\n"
	for _, step := range []error{
		l.Dir("/etc", 0o755),
		l.File("/etc/passwd", 0o644, []byte(passwd)),
		l.File("/etc/group", 0o644, []byte(group)),
		l.Dir("/tmp", 0o1777),
		l.Dir("/root", 0o700),
		l.Dir("/proc", 0o755),
		l.Dir("/sys", 0o755),
		l.Dir("/dev", 0o755),
		// Real images have /run; without it a read-only rootfs depends
		// on the runtime creating the mountpoint of the spec's /run tmpfs,
		// which it cannot (seen with runc and stockade alike).
		l.Dir("/run", 0o755),
	} {
		if step != nil {
			return step
		}
	}
	return nil
}

// addBusybox installs the binary as /bin/busybox and one relative symlink per
// applet, the layout `busybox --install -s /bin` gives (but with relative
// targets, since the host path of the binary means nothing in the image).
func addBusybox(l *layer, bin string) error {
	data, err := os.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("read busybox: %w", err)
	}
	if err := l.File("/bin/busybox", 0o755, data); err != nil {
		return err
	}
	list, err := exec.Command(bin, "--list").Output()
	if err != nil {
		return fmt.Errorf("%s --list: %w", bin, err)
	}
	n := 0
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := l.Symlink("/bin/"+applet, "busybox"); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("%s --list printed no applets", bin)
	}
	return nil
}

// addHostFile parses SRC:DST[:MODE] (octal mode, default 0755) and copies it.
func addHostFile(l *layer, spec string) error {
	parts := strings.Split(spec, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return fmt.Errorf("-add %q: want SRC:DST[:MODE]", spec)
	}
	mode := int64(0o755)
	if len(parts) == 3 {
		m, err := strconv.ParseInt(parts[2], 8, 64)
		if err != nil {
			return fmt.Errorf("-add %q: mode: %w", spec, err)
		}
		mode = m
	}
	data, err := os.ReadFile(parts[0])
	if err != nil {
		return fmt.Errorf("-add %q: %w", spec, err)
	}
	return l.File(parts[1], mode, data)
}
