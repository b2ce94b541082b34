// Package hostcheck reports what a node offers stockade and what stockade
// will do with it under the node's configuration; `stockade check` prints
// the report. The checks are pure functions of Probes, so they are tested
// with invented hosts; Real probes the running one.
package hostcheck

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/node/apparmorhost"
)

// State is whether the host has a feature.
type State string

const (
	Yes     State = "yes"
	No      State = "no"
	Unknown State = "unknown"
)

// Need is how much stockade, as configured, depends on a feature.
type Need string

const (
	// Required: without it stockade cannot work as configured.
	Required Need = "required"
	// Optional: without it stockade degrades as Action says.
	Optional Need = "optional"
	// Info: reported for operators, nothing depends on it.
	Info Need = "info"
)

// Check is one line of the report.
type Check struct {
	Feature string `json:"feature"`
	State   State  `json:"state"`
	Need    Need   `json:"need"`
	// Detail is what the probe found (versions, errors).
	Detail string `json:"detail,omitempty"`
	// Action is what stockade will do on this host.
	Action string `json:"action"`
}

// Failed reports whether a required feature is not known to be present.
func (c Check) Failed() bool { return c.Need == Required && c.State != Yes }

// Report is the outcome of all checks.
type Report struct {
	Checks []Check `json:"checks"`
	// OK is true when no required feature is missing.
	OK bool `json:"ok"`
}

// Libseccomp describes the libseccomp stockade is linked against.
type Libseccomp struct {
	// Compiled is false in builds without cgo or the seccomp tag.
	Compiled            bool
	Major, Minor, Micro uint
	// API is libseccomp's API level (5 and up support user notification).
	API uint
}

// Probes are the facts about a host the checks need, as functions so that
// tests can invent hosts. Real returns the running host's.
type Probes struct {
	// ReadFile reads a host file such as /proc/sys/user/max_user_namespaces.
	ReadFile func(path string) ([]byte, error)
	// FSType returns the filesystem magic number of path (statfs f_type).
	FSType func(path string) (int64, error)
	// KernelSeccomp fails if the kernel has no seccomp (prctl PR_GET_SECCOMP).
	KernelSeccomp func() error
	// NotifSizes calls seccomp(SECCOMP_GET_NOTIF_SIZES), which exists
	// exactly where seccomp user notification does.
	NotifSizes func() error
	// Libseccomp reports the linked library.
	Libseccomp func() (Libseccomp, error)
	// IDMap tries an idmapped mount.
	IDMap func() (State, string)
	// Audit tries the kernel audit netlink socket.
	Audit func() (State, string)
	// AppArmor probes AppArmor with apparmor.parser_path.
	AppArmor func(parserPath string) apparmorhost.Status
}

// Filesystem magic numbers (statfs f_type).
const (
	cgroup2Magic = 0x63677270
	tmpfsMagic   = 0x01021994
	cgroup1Magic = 0x0027e0eb
)

// Run performs every check against cfg.
func Run(p Probes, cfg *config.Config) Report {
	actions := readActions(p)
	checks := []Check{
		checkSeccomp(p, actions),
		checkLibseccomp(p),
		checkUserNotif(p, actions, cfg),
		checkSeccompLog(actions, cfg),
		checkCompatABIs(runtime.GOARCH, cfg),
		checkAppArmor(p, cfg),
		checkUserNS(p, cfg),
		checkIDMap(p, cfg),
		checkCgroup(p),
		checkAudit(p),
	}
	r := Report{Checks: checks, OK: true}
	for _, c := range checks {
		if c.Failed() {
			r.OK = false
		}
	}
	return r
}

// readActions returns the seccomp return actions the kernel supports, or
// nil if it does not say.
func readActions(p Probes) map[string]bool {
	b, err := p.ReadFile("/proc/sys/kernel/seccomp/actions_avail")
	if err != nil {
		return nil
	}
	m := map[string]bool{}
	for _, a := range strings.Fields(string(b)) {
		m[a] = true
	}
	return m
}

func checkSeccomp(p Probes, actions map[string]bool) Check {
	c := Check{Feature: "seccomp", Need: Required}
	if err := p.KernelSeccomp(); err != nil {
		c.State, c.Detail = No, fmt.Sprintf("prctl(PR_GET_SECCOMP): %v", err)
		c.Action = "cannot start containers: every container gets a seccomp filter"
		return c
	}
	if actions == nil {
		c.State, c.Detail = No, "kernel has seccomp but no filter mode (/proc/sys/kernel/seccomp/actions_avail missing)"
		c.Action = "cannot start containers: every container gets a seccomp filter"
		return c
	}
	c.State = Yes
	c.Detail = "filter actions: " + strings.Join(sortedKeys(actions), " ")
	c.Action = "every container gets a generated seccomp filter"
	return c
}

func checkLibseccomp(p Probes) Check {
	c := Check{Feature: "libseccomp", Need: Required}
	lib, err := p.Libseccomp()
	switch {
	case !lib.Compiled:
		c.State, c.Detail = No, "this stockade was built without libseccomp (needs cgo and -tags seccomp)"
		c.Action = "cannot build seccomp filters"
	case err != nil:
		c.State, c.Detail = No, fmt.Sprintf("libseccomp %d.%d.%d: %v", lib.Major, lib.Minor, lib.Micro, err)
		c.Action = "cannot build seccomp filters"
	default:
		c.State = Yes
		c.Detail = fmt.Sprintf("libseccomp %d.%d.%d, API level %d", lib.Major, lib.Minor, lib.Micro, lib.API)
		c.Action = "seccomp filters are compiled in-process"
		if lib.API < 5 {
			c.Detail += " (user notification needs API level 5)"
		}
	}
	return c
}

func checkUserNotif(p Probes, actions map[string]bool, cfg *config.Config) Check {
	c := Check{Feature: "seccomp user notification", Need: Info}
	if cfg.Denials.Enabled {
		// Denials stream from seccomp user notification.
		c.Need = Required
	}
	err := p.NotifSizes()
	switch {
	case err == nil:
		c.State, c.Detail = Yes, "seccomp(SECCOMP_GET_NOTIF_SIZES) works"
	case actions["user_notif"]:
		c.State, c.Detail = Yes, fmt.Sprintf("actions_avail lists user_notif (SECCOMP_GET_NOTIF_SIZES: %v)", err)
	default:
		c.State, c.Detail = No, fmt.Sprintf("SECCOMP_GET_NOTIF_SIZES: %v; actions_avail lacks user_notif", err)
	}
	if lib, lerr := p.Libseccomp(); c.State == Yes && lerr == nil && lib.Compiled && lib.API < 5 {
		c.State, c.Detail = No, fmt.Sprintf("the kernel supports it, libseccomp API level %d does not (needs 5)", lib.API)
	}
	switch {
	case !cfg.Denials.Enabled:
		c.Action = "not used: denials.enabled is false"
	case c.State == Yes:
		c.Action = "denied syscalls are streamed to " + cfg.Denials.Dir
	default:
		c.Action = "cannot stream denials; set denials.enabled = false to run without"
	}
	return c
}

// checkCompatABIs reports which syscall ABIs every container's filter
// covers (seccomp.compat_abis): a node setting, not a probe.
func checkCompatABIs(goarch string, cfg *config.Config) Check {
	c := Check{Feature: "seccomp ABIs", Need: Info, State: Yes}
	native := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[goarch]
	if native == "" {
		c.State, c.Detail = No, "unsupported architecture "+goarch
		c.Action = "cannot generate seccomp filters"
		return c
	}
	var off []string
	for _, a := range config.CompatABINames(goarch) {
		if !slices.Contains(cfg.Seccomp.CompatABIs, a) {
			off = append(off, a)
		}
	}
	c.Detail = strings.Join(append([]string{native}, cfg.Seccomp.CompatABIs...), ", ")
	if len(off) == 0 {
		c.Action = "filters cover every ABI; each compat ABI adds filter compile time to container starts"
	} else {
		c.Detail += " (off: " + strings.Join(off, ", ") + ")"
		c.Action = "calls through " + strings.Join(off, ", ") + " kill the calling thread with SIGSYS (kernel audit type=1326 sig=31); seccomp.compat_abis turns them on"
	}
	if cfg.Seccomp.AllowCompatABIAnnotation {
		c.Action += "; pods may choose with stockade.dev/seccomp-compat-abis"
	}
	return c
}

func checkSeccompLog(actions map[string]bool, cfg *config.Config) Check {
	c := Check{Feature: "seccomp log action", Need: Optional}
	if cfg.Seccomp.Mode == "complain" {
		// Complain mode allows and logs: it is the log action.
		c.Need = Required
	}
	if actions["log"] {
		c.State, c.Detail = Yes, "actions_avail lists log (SECCOMP_RET_LOG, SECCOMP_FILTER_FLAG_LOG)"
		c.Action = "complain-mode pods are logged, not blocked; denials also reach the kernel audit log"
		return c
	}
	c.State, c.Detail = No, "actions_avail lacks log"
	if c.Need == Required {
		c.Action = "cannot run pods in complain mode (seccomp.mode = complain)"
	} else {
		c.Action = "complain mode is unavailable; enforce mode works"
	}
	return c
}

func checkAppArmor(p Probes, cfg *config.Config) Check {
	c := Check{Feature: "apparmor", Need: Optional}
	if cfg.AppArmor.Required {
		c.Need = Required
	}
	st := p.AppArmor(cfg.AppArmor.ParserPath)
	if st.Enabled {
		c.State = Yes
		c.Detail = "parser " + st.Parser
		if st.ABI != "" {
			c.Detail += ", " + st.ABI
		}
		c.Action = "every container gets a generated profile, in its seccomp mode"
		if cfg.AppArmor.AllowLocalhostProfiles {
			c.Action += "; pods may pick a loaded Localhost profile instead"
		}
		return c
	}
	c.State, c.Detail = No, st.Reason
	if c.Need == Required {
		c.Action = "refuses every container: apparmor.required is set"
	} else {
		c.Action = "skipped: containers run without an AppArmor profile"
	}
	return c
}

func checkUserNS(p Probes, cfg *config.Config) Check {
	c := Check{Feature: "user namespaces", Need: Info}
	if cfg.UserNS.Enabled {
		c.Need = Required
	}
	b, err := p.ReadFile("/proc/sys/user/max_user_namespaces")
	n, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	switch {
	case err != nil:
		c.State, c.Detail = No, fmt.Sprintf("kernel without user namespaces: %v", err)
	case perr != nil:
		c.State, c.Detail = Unknown, fmt.Sprintf("max_user_namespaces is %q", bytes.TrimSpace(b))
	case n <= 0:
		c.State, c.Detail = No, "max_user_namespaces is 0"
	default:
		c.State, c.Detail = Yes, fmt.Sprintf("max_user_namespaces=%d", n)
	}
	// Debian's knob only restricts unprivileged users; the shim is root.
	if b, err := p.ReadFile("/proc/sys/kernel/unprivileged_userns_clone"); err == nil {
		c.Detail += ", unprivileged_userns_clone=" + strings.TrimSpace(string(b))
	}
	switch {
	case !cfg.UserNS.Enabled:
		c.Action = "not used: userns.enabled is false"
	case c.State == Yes:
		c.Action = "every pod gets its own user namespace and host ID range"
	default:
		c.Action = "cannot remap pods; set userns.enabled = false to run without"
	}
	return c
}

func checkIDMap(p Probes, cfg *config.Config) Check {
	c := Check{Feature: "idmapped mounts", Need: Info}
	if cfg.UserNS.Enabled {
		c.Need = Optional
	}
	c.State, c.Detail = p.IDMap()
	switch {
	case !cfg.UserNS.Enabled:
		c.Action = "not used: userns.enabled is false"
	case c.State == Yes:
		c.Action = "volumes of remapped pods are idmapped, no chown"
	case c.State == Unknown:
		c.Action = "run check as root to know; where unsupported, volumes of remapped pods appear owned by nobody"
	default:
		c.Action = "volumes on filesystems without idmap support appear owned by nobody in remapped pods"
	}
	return c
}

func checkCgroup(p Probes) Check {
	c := Check{Feature: "cgroup", Need: Info, Action: "containers are placed in cgroups by libcontainer"}
	root, err := p.FSType("/sys/fs/cgroup")
	switch {
	case err != nil:
		c.State, c.Detail = Unknown, fmt.Sprintf("statfs /sys/fs/cgroup: %v", err)
	case root == cgroup2Magic:
		c.State, c.Detail = Yes, "v2 (unified)"
	case root == tmpfsMagic:
		if u, err := p.FSType("/sys/fs/cgroup/unified"); err == nil && u == cgroup2Magic {
			c.State, c.Detail = Yes, "hybrid (v1 controllers, v2 at /sys/fs/cgroup/unified)"
		} else {
			c.State, c.Detail = Yes, "v1 (legacy)"
		}
	case root == cgroup1Magic:
		c.State, c.Detail = Yes, "v1 (single hierarchy at /sys/fs/cgroup)"
	default:
		c.State, c.Detail = Unknown, fmt.Sprintf("/sys/fs/cgroup has filesystem type 0x%x", root)
	}
	return c
}

func checkAudit(p Probes) Check {
	c := Check{Feature: "kernel audit", Need: Info}
	c.State, c.Detail = p.Audit()
	if c.State == Yes {
		c.Action = "seccomp log-action records reach the audit stream (auditd or journald)"
	} else {
		c.Action = "kernel audit records are not readable; denials still stream via user notification"
	}
	return c
}

// sortedKeys lists the actions in the kernel's order, strictest first, then
// any it added since, alphabetically: a map loses the order, output must
// not change from run to run.
func sortedKeys(m map[string]bool) []string {
	order := []string{"kill_process", "kill_thread", "trap", "errno", "user_notif", "trace", "log", "allow"}
	var out, extra []string
	for _, k := range order {
		if m[k] {
			out = append(out, k)
		}
	}
	for k := range m {
		if !slices.Contains(order, k) {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	return append(out, extra...)
}
