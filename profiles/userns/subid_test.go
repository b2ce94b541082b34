package userns

import (
	"errors"
	"strings"
	"testing"
)

func parse(t *testing.T, file, text string) []SubIDEntry {
	t.Helper()
	e, err := ParseSubIDs(strings.NewReader(text), file)
	if err != nil {
		t.Fatalf("ParseSubIDs(%s): %v", file, err)
	}
	return e
}

func TestParseSubIDs(t *testing.T) {
	e := parse(t, "/etc/subuid", "# rootless users\n\nalice:100000:65536\n  stockade:2147483648:67108864  \n1001:165536:65536\n")
	if len(e) != 3 {
		t.Fatalf("got %d entries: %+v", len(e), e)
	}
	if e[1].Name != "stockade" || e[1].Start != 1<<31 || e[1].Count != 67108864 || e[1].Line != 4 {
		t.Errorf("entry = %+v", e[1])
	}
}

func TestParseSubIDsErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"alice:100000\n", "/etc/subuid:1: want name:start:count"},
		{"ok:1:1\n:100000:65536\n", "/etc/subuid:2: want name:start:count"},
		{"alice:x:65536\n", "/etc/subuid:1: start \"x\""},
		{"alice:100000:-1\n", "/etc/subuid:1: count \"-1\""},
		{"alice:4294967295:1\n", "/etc/subuid:1: 4294967295+1 extends past"},
		{strings.Repeat("x", maxSubIDLine+1) + "\n", "/etc/subuid"},
	} {
		_, err := ParseSubIDs(strings.NewReader(tc.text), "/etc/subuid")
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSubIDs(%.30q) = %v, want ErrInvalid mentioning %q", tc.text, err, tc.want)
		}
	}
}

func TestResolvePool(t *testing.T) {
	others := "alice:100000:65536\nbob:165536:65536\n"
	own := "stockade:3000000000:6553600\n"
	uid := parse(t, "/etc/subuid", others+own)
	gid := parse(t, "/etc/subgid", own+others)

	p, err := ResolvePool("", uid, gid)
	if err != nil {
		t.Fatal(err)
	}
	if p.Start != 3000000000 || p.Size != 6553600 || p.Ranges() != 100 || !strings.Contains(p.Source, "/etc/subuid:3") {
		t.Errorf("from subuid: %+v", p)
	}

	// The node config wins over /etc/subuid.
	p, err = ResolvePool("2147483648+655360", uid, gid)
	if err != nil || p.Start != 1<<31 || p.Ranges() != 10 || p.Source != "userns.pool" {
		t.Errorf("configured: %+v, %v", p, err)
	}

	// No stockade entry, no files: the default.
	for _, files := range [][2][]SubIDEntry{{nil, nil}, {parse(t, "u", others), parse(t, "g", others)}} {
		p, err = ResolvePool("", files[0], files[1])
		if err != nil || p != DefaultPool() {
			t.Errorf("default: %+v, %v", p, err)
		}
	}
}

func TestResolvePoolErrors(t *testing.T) {
	own := "stockade:3000000000:6553600\n"
	for _, tc := range []struct {
		name, configured, uid, gid, want string
	}{
		{"only subuid", "", own, "", "/etc/subuid:1: stockade has an entry but subgid has none"},
		{"only subgid", "", "", own, "/etc/subgid:1: stockade has an entry but subuid has none"},
		{"disagree", "", own, "stockade:3000000000:655360\n", "disagree"},
		{"host ids", "", "stockade:1000:65536\n", "stockade:1000:65536\n", "inside the host's own IDs"},
		{"too small", "", "stockade:100000:1000\n", "stockade:100000:1000\n", "smaller than one pod range"},
		{"two entries", "", own + "stockade:4000000000:65536\n", own, "more than one entry"},
		{"default overlaps kubelet", "", "kubelet:2147483648:65536\n", "", "overlaps /etc/subuid:1 (user kubelet"},
		{"configured overlaps user", "100000+655360", "", "alice:165536:65536\n", "overlaps /etc/subgid:1 (user alice"},
		{"own overlaps user", "", own + "carol:3000065536:10\n", own, "overlaps /etc/subuid:2 (user carol"},
		{"malformed configured", "1-2-3", "", "", "not a number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid := parse(t, "/etc/subuid", tc.uid)
			gid := parse(t, "/etc/subgid", tc.gid)
			_, err := ResolvePool(tc.configured, uid, gid)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ResolvePool = %v, want ErrInvalid mentioning %q", err, tc.want)
			}
		})
	}
}
