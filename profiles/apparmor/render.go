// Package apparmor renders, and loads, the AppArmor profile stockade puts on
// every container it starts.
//
// Render is pure: it turns an OCI spec and a Policy into profile text, so it
// is tested without AppArmor in the kernel. The profile is self-contained (no
// #include, no variables), so its text, and therefore its name, depends only
// on the spec and the policy, never on which abstractions a host happens to
// ship. Host probing (host.go) and loading (loader.go) are the side-effect
// edges; both take their dependencies injected.
//
// In enforce mode every deny rule is an audit deny: AppArmor logs nothing
// an explicit deny rule refuses (docker-default's denials are silent), and
// stockade's denials must reach the kernel log and the pod's denial stream.
// In complain mode they stay plain deny rules: the kernel enforces an
// explicit deny in complain mode only when it is quiet (an audit deny is
// reported as ALLOWED and let through), and the baseline must hold.
//
// The baseline is at least as strict as Docker's docker-default: deny rules
// for /proc, /sys, mount, and the AF_ALG socket family; signals and ptrace
// only among the container's own processes. On top of it, the spec narrows
// the profile: capabilities are granted one by one from the bounding set,
// and, when the root filesystem is read-only, writes are granted only below
// the spec's writable mounts. AppArmor enforces deny rules even in complain
// mode, so in complain mode the baseline still holds and only the
// spec-derived narrowing is relaxed to logging.
package apparmor

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// NamePrefix starts the name of every profile stockade generates, so they
// can be told apart from the host's own profiles.
const NamePrefix = "stockade-"

// hashLen is how many hex digits of the content hash go into a name: 64 bits
// is plenty for the few hundred distinct profiles a node sees.
const hashLen = 16

// Mode is how the kernel treats accesses the profile does not allow.
type Mode string

const (
	// Enforce denies and logs.
	Enforce Mode = "enforce"
	// Complain allows and logs, except for explicit deny rules, which the
	// kernel enforces in complain mode too.
	Complain Mode = "complain"
)

// Policy is what the node decides about a profile, as opposed to what the
// spec says about the container.
type Policy struct {
	// Mode is Enforce or Complain; "" means Enforce.
	Mode Mode
	// ABI pins the AppArmor feature ABI the profile is written against
	// ("abi/3.0"), so a newer kernel does not start mediating classes the
	// profile has no rules for. "" omits the abi rule, which AppArmor 2.x
	// parsers need. Status.ABI reports what the host's parser supports.
	ABI string
	// RuntimeLabel is the AppArmor label of the process that signals the
	// container (the shim), if it is confined; "" or "unconfined" adds
	// nothing beyond the rule for unconfined senders.
	RuntimeLabel string
}

// Profile is one rendered profile.
type Profile struct {
	// Name is NamePrefix plus a hash of the profile's content, so identical
	// specs under identical policies share one loaded profile.
	Name string
	// Text is the profile source, as apparmor_parser reads it.
	Text string
}

var (
	abiRe   = regexp.MustCompile(`^abi/[0-9]+(\.[0-9]+)*$`)
	labelRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_./-]*$`)
	nameRe  = regexp.MustCompile(`^` + NamePrefix + `[0-9a-f]{16}$`)
)

// ValidName reports whether name has the shape of a generated profile name.
// The loader uses it before building file names from a profile name.
func ValidName(name string) bool { return nameRe.MatchString(name) }

// Render builds the profile for one container. It fails with an
// *InvalidError (an invalid-argument error) when the spec holds a mount
// destination or capability that cannot be expressed safely.
func Render(spec *specs.Spec, p Policy) (Profile, error) {
	if spec == nil {
		return Profile{}, &InvalidError{Field: "spec", Reason: "is nil"}
	}
	if err := p.validate(); err != nil {
		return Profile{}, err
	}
	caps, err := capabilityRules(spec)
	if err != nil {
		return Profile{}, err
	}
	files, err := fileRules(spec)
	if err != nil {
		return Profile{}, err
	}
	r := renderer{policy: p, caps: caps, files: files}
	// The name is derived from the text rendered without a name; the text
	// then names itself, which its peer rules need.
	sum := sha256.Sum256([]byte(r.text("")))
	name := NamePrefix + hex.EncodeToString(sum[:])[:hashLen]
	return Profile{Name: name, Text: r.text(name)}, nil
}

func (p Policy) validate() error {
	switch p.Mode {
	case "", Enforce, Complain:
	default:
		return &InvalidError{Field: "policy mode", Value: string(p.Mode), Reason: "want enforce or complain"}
	}
	if p.ABI != "" && !abiRe.MatchString(p.ABI) {
		return &InvalidError{Field: "policy abi", Value: p.ABI, Reason: `want "abi/<version>"`}
	}
	if p.RuntimeLabel != "" && !labelRe.MatchString(p.RuntimeLabel) {
		return &InvalidError{Field: "policy runtime label", Value: p.RuntimeLabel, Reason: "not a plain profile name"}
	}
	return nil
}

type renderer struct {
	policy Policy
	caps   []string
	files  []string
}

func (r renderer) text(name string) string {
	var b strings.Builder
	line := func(format string, args ...any) {
		// No trailing blanks: an indented empty line would be "  ".
		b.WriteString(strings.TrimRight(fmt.Sprintf(format, args...), " "))
		b.WriteByte('\n')
	}
	line("# Generated by stockade from one container spec; do not edit.")
	line("# The profile name is a hash of this text.")
	if r.policy.ABI != "" {
		line("abi <%s>,", r.policy.ABI)
	}
	line("")
	flags := "attach_disconnected,mediate_deleted"
	if r.policy.Mode == Complain {
		flags += ",complain"
	}
	line("profile %s flags=(%s) {", name, flags)

	line("  # Reachability is the network namespace's business; AF_ALG (the kernel")
	line("  # crypto API) is a recurring source of kernel bugs and is never needed.")
	line("  network,")
	line("  %s network alg,", r.deny())
	line("")
	line("  # Only the capabilities in the container's bounding set.")
	for _, c := range r.caps {
		line("  capability %s,", c)
	}
	line("")
	line("  # Reading, mapping, locking and running files are governed by the mount")
	line("  # table and file modes; writes are granted below.")
	line("  /{,**} rkmix,")
	for _, f := range r.files {
		line("  %s", r.denyRule(f))
	}
	line("")
	line("  # The mount table is set up by runc before this profile applies; the")
	line("  # container may not change it, or step around masked paths by unmounting.")
	line("  %s mount,", r.deny())
	line("  %s umount,", r.deny())
	line("  %s pivot_root,", r.deny())
	line("")
	for _, l := range procSysRules {
		line("  %s", r.denyRule(l))
	}
	line("")
	line("  # Processes of this container may signal and trace each other; the")
	line("  # runtime and the host may signal them.")
	line("  signal (send,receive) peer=%s,", name)
	line("  signal (receive) peer=unconfined,")
	if l := r.policy.RuntimeLabel; l != "" && l != "unconfined" && l != name {
		line("  signal (receive) peer=%s,", l)
	}
	line("  ptrace (trace,tracedby,read,readby) peer=%s,", name)
	line("}")
	return b.String()
}

// deny is the keyword deny rules start with in this profile's mode.
func (r renderer) deny() string {
	if r.policy.Mode == Complain {
		return "deny"
	}
	return "audit deny"
}

// denyRule rewrites a rule starting with "deny " for the profile's mode.
func (r renderer) denyRule(l string) string {
	if rest, ok := strings.CutPrefix(l, "deny "); ok {
		return r.deny() + " " + rest
	}
	return l
}

// procSysRules are the fixed /proc and /sys denials. They are written as
// component-exact alternations (see otherThan) rather than docker-default's
// fixed-width patterns, which let names like /proc/sys/kernel/sched_* through.
var procSysRules = []string{
	"# /proc: writes only to per-process files (/proc/<pid>/...) and to the",
	"# IPC-namespaced /proc/sys/kernel/shm* limits.",
	"deny /proc/* w,",
	"deny /proc/{" + otherThan("sys", "0-9") + ",[0-9]*[^0-9/]*}/** w,",
	"deny /proc/sys/{" + otherThan("kernel", "") + "}{,/**} w,",
	"deny /proc/sys/kernel/{" + notStartingWith("shm", "") + "}{,/**} w,",
	"deny /proc/{sysrq-trigger,kcore} rwklx,",
	"",
	"# /sys: no writes outside /sys/fs/cgroup; no access at all to firmware",
	"# tables, power meters (RAPL side channel) or the LSM policy interface.",
	"deny /sys/{" + otherThan("fs", "") + "}{,/**} wklx,",
	"deny /sys/fs/{" + otherThan("cgroup", "") + "}{,/**} wklx,",
	"deny /sys/firmware/** rwklx,",
	"deny /sys/devices/virtual/powercap/** rwklx,",
	"deny /sys/kernel/security/** rwklx,",
}

// notStartingWith returns comma-separated glob alternatives that together
// match exactly the non-empty path components that do not start with word,
// and whose first character is not in the class notFirst either (a
// bracket-expression fragment such as "0-9"). AppArmor globs have no
// negative lookahead, so "anything but X" is spelled out per prefix.
func notStartingWith(word, notFirst string) string {
	alts := make([]string, 0, 2*len(word))
	for i := 0; i < len(word); i++ {
		prefix := word[:i]
		if i > 0 {
			// A component that is a proper prefix of word.
			alts = append(alts, prefix)
		}
		exclude := string(word[i])
		if i == 0 {
			exclude += notFirst
		}
		// Same prefix, then a different character, then anything.
		alts = append(alts, prefix+"[^"+exclude+"/]*")
	}
	return strings.Join(alts, ",")
}

// otherThan is notStartingWith plus the components that extend word, that is
// every component except word itself.
func otherThan(word, notFirst string) string {
	return notStartingWith(word, notFirst) + "," + word + "?*"
}
