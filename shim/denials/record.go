package denials

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/stockade-dev/stockade/denial"
)

// Sources of records: the seccomp agent, or the kernel's AppArmor audit
// records.
const (
	SourceSeccomp  = "seccomp"
	SourceAppArmor = "apparmor"
)

// Actions a record reports: what the workload experienced.
const (
	ActionDenied  = "denied"
	ActionAllowed = "allowed"
)

// TypeGap marks a record that stands for records that were lost (queue full,
// sink failing). Denial records have an empty Type.
const TypeGap = "gap"

// Record is one line of the JSON-lines sink: a denied (or, in complain mode,
// would-be-denied) syscall, an aggregate of repeats of it, or a gap.
type Record struct {
	// Type is "" for denials and TypeGap for gap records.
	Type string `json:"type,omitempty"`
	// Time is when the syscall was made; for an aggregate, the last repeat;
	// for a gap, when the loss was reported.
	Time time.Time `json:"time"`
	// Since is the start of the window an aggregate folds (aggregates only).
	Since time.Time `json:"since,omitzero"`

	Node        string `json:"node"`
	Namespace   string `json:"namespace"`
	Pod         string `json:"pod"`
	PodUID      string `json:"pod_uid"`
	Container   string `json:"container"`
	ContainerID string `json:"container_id"`
	Image       string `json:"image,omitempty"`

	// Pid is the thread that made the syscall, as seen from the shim's pid
	// namespace (the host's, normally).
	Pid int `json:"pid,omitempty"`
	// Comm and Exe are read from /proc through a pidfd taken while the
	// syscall was blocked (or, on kernels without thread pidfds, while it
	// still is), and left empty if the thread died before they were read
	// (the pid may already name someone else). A thread's values are
	// reused for up to a second.
	Comm string `json:"comm,omitempty"`
	Exe  string `json:"exe,omitempty"`

	Syscall   string   `json:"syscall,omitempty"`
	SyscallNr int      `json:"syscall_nr,omitempty"`
	Arch      string   `json:"arch,omitempty"`
	Args      []string `json:"args,omitempty"`

	// Source is what denied: SourceSeccomp (also meant when empty, in
	// records written before sources existed) or SourceAppArmor.
	Source string `json:"source,omitempty"`
	// Operation, Path, Capability and DeniedMask describe an AppArmor
	// denial, from its audit record: the mediated operation ("open",
	// "mknod", "capable", ...), the file it named, the capability it
	// needed, and the permissions refused ("w", "c", ...).
	Operation  string `json:"operation,omitempty"`
	Path       string `json:"path,omitempty"`
	Capability string `json:"capability,omitempty"`
	DeniedMask string `json:"denied_mask,omitempty"`

	// Action is what the workload got: ActionDenied or ActionAllowed.
	Action string `json:"action,omitempty"`
	// Errno is the error the syscall returned ("EPERM"), "" when allowed.
	Errno   string `json:"errno,omitempty"`
	Mode    string `json:"mode,omitempty"`
	Profile string `json:"profile,omitempty"`

	// Seq numbers the records of one container as the agent produced them.
	// A record lost to a full queue still used its number, so readers can
	// see where a gap belongs.
	Seq uint64 `json:"seq,omitempty"`
	// Count is how many syscalls this record stands for: 1 for a first
	// occurrence, the number of repeats for an aggregate.
	Count uint64 `json:"count,omitempty"`
	// Dropped is, for a gap record, how many syscalls the lost records stood
	// for (the sum of their counts).
	Dropped uint64 `json:"dropped,omitempty"`
	// Overflow marks an aggregate of calls that got no aggregate of their
	// own because their container already had maxWindowsPerContainer
	// distinct (pid, arguments) windows open: it counts those calls of its
	// syscall but names no pid, comm, exe or arguments, since they may
	// differ. The first call of each was still reported on its own.
	Overflow bool `json:"overflow,omitempty"`
	// Truncated lists the fields cut to maxFieldBytes ("exe", "image", ...);
	// the cut value ends in a marker saying how many bytes were removed.
	Truncated []string `json:"truncated,omitempty"`
}

// maxFieldBytes bounds each string a workload controls in a record. exe can
// be a 4 KiB path, and every record and every shim-log line carries it.
const maxFieldBytes = 1024

// truncateField cuts s to at most maxFieldBytes, at a UTF-8 boundary, and
// appends a marker that says how much was removed. ok reports a cut.
func truncateField(s string) (string, bool) {
	if len(s) <= maxFieldBytes {
		return s, false
	}
	marker := func(n int) string { return "...[truncated " + strconv.Itoa(n) + " bytes]" }
	// The marker's length depends on the count; reserve for the largest.
	keep := maxFieldBytes - len(marker(len(s)))
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return s[:keep] + marker(len(s)-keep), true
}

// truncateFields applies truncateField to every workload-controlled string
// of r and lists the fields it cut.
func (r *Record) truncateFields() {
	for _, f := range []struct {
		name string
		v    *string
	}{{"comm", &r.Comm}, {"exe", &r.Exe}, {"image", &r.Image}, {"profile", &r.Profile}, {"path", &r.Path}} {
		var cut bool
		if *f.v, cut = truncateField(*f.v); cut {
			r.Truncated = append(r.Truncated, f.name)
		}
	}
	argsCut := false
	for i := range r.Args {
		var cut bool
		r.Args[i], cut = truncateField(r.Args[i])
		argsCut = argsCut || cut
	}
	if argsCut {
		r.Truncated = append(r.Truncated, "args")
	}
}

// setAttribution copies the container identity into r.
func (r *Record) setAttribution(node, containerID string, a denial.Attribution) {
	r.Node = node
	r.ContainerID = containerID
	r.Namespace = a.Namespace
	r.Pod = a.Pod
	r.PodUID = a.PodUID
	r.Container = a.Container
	r.Image = a.Image
}

// attribution recovers the identity a record carries; gap records reuse it.
func (r *Record) attribution() denial.Attribution {
	return denial.Attribution{Namespace: r.Namespace, Pod: r.Pod, PodUID: r.PodUID, Container: r.Container, Image: r.Image}
}

// gapRecord is the record written in place of dropped records of one container.
func gapRecord(from *Record, dropped uint64, now time.Time) *Record {
	g := &Record{Type: TypeGap, Time: now, Dropped: dropped, Mode: from.Mode, Profile: from.Profile}
	g.setAttribution(from.Node, from.ContainerID, from.attribution())
	return g
}

// hexArgs renders syscall arguments the way strace and audit do, as hex:
// they are mostly flags and pointers, which read better in hex.
func hexArgs(args [6]uint64) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = "0x" + strconv.FormatUint(a, 16)
	}
	return out
}
