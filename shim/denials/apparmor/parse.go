// Package apparmor turns the kernel's AppArmor audit records into denial
// records in the pod's sink, beside the seccomp agent's: a Watcher
// subscribes to the audit netlink multicast group (AUDIT_NLGRP_READLOG,
// which needs CAP_AUDIT_READ and works with or without auditd), keeps the
// records of the generated profiles its shim's containers run under, and
// attributes each to the container whose cgroup the denied process is in.
// A profile is named by its content hash, so containers of other pods may
// share it: the cgroup, not the profile, says whose record it is.
//
// Parsing is pure (Parse), tested on real kernel lines; the socket is the
// edge.
package apparmor

import (
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// Event is one AppArmor audit record.
type Event struct {
	// Time and Serial come from the record's "audit(SECONDS.MILLIS:SERIAL)".
	Time   time.Time
	Serial uint64
	// Verdict is the apparmor= field: "DENIED", "ALLOWED" (complain mode),
	// "AUDIT", "STATUS", ...
	Verdict   string
	Operation string
	Profile   string
	// Path is the file the operation named (name=), "" for non-file ones.
	Path string
	// Capability is the capability's name (capname=) for "capable".
	Capability    string
	RequestedMask string
	DeniedMask    string
	Info          string
	Pid           int
	Comm          string
}

// untrusted are the fields the kernel writes with audit_log_untrustedstring:
// quoted when plain, hex-encoded when they hold blanks, quotes or control
// characters.
var untrusted = map[string]bool{"name": true, "comm": true, "profile": true, "peer": true, "target": true, "exe": true, "name2": true}

// Parse reads one AppArmor record ("audit(...): apparmor=..."). ok is false
// for text that is not an AppArmor record.
func Parse(msg string) (ev Event, ok bool) {
	msg = strings.TrimRight(msg, "\x00\n")
	if rest, found := strings.CutPrefix(msg, "audit("); found {
		stamp, tail, found := strings.Cut(rest, "):")
		if !found {
			return Event{}, false
		}
		ev.Time, ev.Serial = parseStamp(stamp)
		msg = tail
	}
	fields := parseFields(msg)
	ev.Verdict = fields["apparmor"]
	if ev.Verdict == "" {
		return Event{}, false
	}
	ev.Operation = fields["operation"]
	ev.Profile = fields["profile"]
	ev.Path = fields["name"]
	ev.Capability = fields["capname"]
	ev.RequestedMask = fields["requested_mask"]
	ev.DeniedMask = fields["denied_mask"]
	ev.Info = fields["info"]
	ev.Comm = fields["comm"]
	ev.Pid, _ = strconv.Atoi(fields["pid"])
	return ev, true
}

// parseStamp reads "1733230000.123:77".
func parseStamp(s string) (time.Time, uint64) {
	ts, serial, _ := strings.Cut(s, ":")
	sec, frac, _ := strings.Cut(ts, ".")
	secs, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, 0
	}
	ms, _ := strconv.ParseInt(frac, 10, 64)
	n, _ := strconv.ParseUint(serial, 10, 64)
	return time.Unix(secs, ms*int64(time.Millisecond)), n
}

// parseFields splits key=value pairs; values are "quoted" (never holding a
// quote: such strings are hex-encoded instead) or bare up to a blank.
func parseFields(s string) map[string]string {
	m := map[string]string{}
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			return m
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return m
		}
		key := s[:eq]
		if strings.IndexByte(key, ' ') >= 0 {
			// A word without a value: skip it.
			s = key[strings.IndexByte(key, ' '):] + s[eq:]
			continue
		}
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				val, s = s[1:], ""
			} else {
				val, s = s[1:1+end], s[2+end:]
			}
		} else {
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				end = len(s)
			}
			val, s = s[:end], s[end:]
			if untrusted[key] {
				if b, err := hex.DecodeString(val); err == nil && len(val) > 0 {
					val = string(b)
				}
			}
		}
		if _, dup := m[key]; !dup {
			m[key] = val
		}
	}
}
