package apparmor

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		line string
		want Event
		ok   bool
	}{
		{
			name: "file write denied (6.1)",
			line: `audit(1764775200.123:4242): apparmor="DENIED" operation="mknod" profile="stockade-71e3f70460589364" name="/sys/fs/bpf/denied" pid=2311 comm="sh" requested_mask="c" denied_mask="c" fsuid=2147483648 ouid=2147483648`,
			want: Event{Time: time.Unix(1764775200, 123e6), Serial: 4242, Verdict: "DENIED", Operation: "mknod",
				Profile: "stockade-71e3f70460589364", Path: "/sys/fs/bpf/denied", Pid: 2311, Comm: "sh", RequestedMask: "c", DeniedMask: "c"},
			ok: true,
		},
		{
			name: "capability, class field of newer kernels",
			line: `audit(1764775201.5:9): apparmor="DENIED" operation="capable" class="cap" profile="stockade-0123456789abcdef" pid=77 comm="ip" capability=12  capname="net_admin"`,
			want: Event{Time: time.Unix(1764775201, 5e6), Serial: 9, Verdict: "DENIED", Operation: "capable",
				Profile: "stockade-0123456789abcdef", Capability: "net_admin", Pid: 77, Comm: "ip"},
			ok: true,
		},
		{
			name: "hex-encoded untrusted strings",
			line: `audit(1.000:1): apparmor="ALLOWED" operation="open" profile="stockade-0123456789abcdef" name=2F746D702F6120622063 pid=5 comm=6D7920636F6D6D requested_mask="w" denied_mask="w"`,
			want: Event{Time: time.Unix(1, 0), Serial: 1, Verdict: "ALLOWED", Operation: "open",
				Profile: "stockade-0123456789abcdef", Path: "/tmp/a b c", Pid: 5, Comm: "my comm", RequestedMask: "w", DeniedMask: "w"},
			ok: true,
		},
		{
			name: "policy load",
			line: `audit(1764775200.001:3): apparmor="STATUS" operation="profile_load" profile="unconfined" name="stockade-0123456789abcdef" pid=10 comm="apparmor_parser"`,
			want: Event{Time: time.Unix(1764775200, 1e6), Serial: 3, Verdict: "STATUS", Operation: "profile_load",
				Profile: "unconfined", Path: "stockade-0123456789abcdef", Pid: 10, Comm: "apparmor_parser"},
			ok: true,
		},
		{name: "not apparmor", line: `audit(1.0:1): avc:  denied  { read } for pid=1`, ok: false},
		{name: "garbage", line: `audit(`, ok: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Parse(tc.line)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if ok && got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`audit(1764775200.123:4242): apparmor="DENIED" operation="mknod" profile="p" name="/x" pid=1 comm="sh"`)
	f.Add(`apparmor="DENIED" name=414243 x= ="" "`)
	f.Fuzz(func(t *testing.T, s string) { Parse(s) })
}
