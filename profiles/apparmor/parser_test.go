package apparmor

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stockade-dev/stockade/profiles/apparmor/apparmortest"
)

// The tests in this file run the real apparmor_parser. It parses and
// compiles profiles without a kernel that has AppArmor (-Q: skip kernel
// load, -K: skip cache), which is all the tests need. Its -D dfa-states
// dump shows the compiled file-permission automaton, which lets the tests
// check what a rule actually matches instead of what its text suggests.

// compile runs apparmor_parser -Q -K on text, and once more against the
// Debian feature set when it is installed, failing the test with the
// parser's output if either rejects the profile.
func compile(t testing.TB, text string) {
	t.Helper()
	parser := apparmortest.ParserPath(t)
	f := filepath.Join(t.TempDir(), "profile")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	runs := [][]string{{"-Q", "-K", f}}
	if _, err := os.Stat(apparmortest.FeaturesFile); err == nil {
		runs = append(runs, []string{"-Q", "-K", "-M", apparmortest.FeaturesFile, f})
	}
	for _, args := range runs {
		out, err := exec.Command(parser, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("apparmor_parser %v: %v\n%s\nprofile:\n%s", args, err, out, numbered(text))
		}
	}
}

func numbered(text string) string {
	var b strings.Builder
	for i, l := range strings.Split(text, "\n") {
		b.WriteString(strconv.Itoa(i+1) + "\t" + l + "\n")
	}
	return b.String()
}

// dfa is the file-permission automaton apparmor_parser compiled.
type dfa struct {
	perms map[int][2]uint32 // state -> allow, deny
	next  map[int]map[byte]int
	def   map[int]int           // default transition for bytes not listed
	none  map[int]map[byte]bool // bytes the default transition excludes
}

// compileDFA compiles text and parses the first automaton of the dump,
// which is the file one.
func compileDFA(t testing.TB, text string) *dfa {
	t.Helper()
	parser := apparmortest.ParserPath(t)
	f := filepath.Join(t.TempDir(), "profile")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(parser, "-Q", "-K", "-D", "dfa-states", f).CombinedOutput()
	if err != nil {
		t.Fatalf("apparmor_parser: %v\n%s", err, out)
	}
	d := &dfa{perms: map[int][2]uint32{}, next: map[int]map[byte]int{}, def: map[int]int{}, none: map[int]map[byte]bool{}}
	var (
		stateRe = regexp.MustCompile(`^\{(\d+)\} perms: (?:none|\s*\(0x ([0-9a-f]+)/([0-9a-f]+)/[0-9a-f]+/[0-9a-f]+\))$`)
		byteRe  = regexp.MustCompile(` 0x([0-9a-f]{1,2}) -> \{(\d+)\}`)
		defRe   = regexp.MustCompile(`^    \[(?:\^(.*))?\] -> \{(\d+)\}`)
	)
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	headers, cur := 0, -1
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, "<==") {
			if headers++; headers > 1 {
				break
			}
			continue
		}
		if m := stateRe.FindStringSubmatch(l); m != nil {
			cur, _ = strconv.Atoi(m[1])
			if m[2] != "" {
				a, _ := strconv.ParseUint(m[2], 16, 32)
				dn, _ := strconv.ParseUint(m[3], 16, 32)
				d.perms[cur] = [2]uint32{uint32(a), uint32(dn)}
			}
			d.next[cur] = map[byte]int{}
			continue
		}
		if cur < 0 || !strings.HasPrefix(l, "    ") {
			continue
		}
		// "[^...]" is the default transition with its exceptions, "[]"
		// one without.
		if m := defRe.FindStringSubmatch(l); m != nil {
			to, _ := strconv.Atoi(m[2])
			d.def[cur] = to
			d.none[cur] = parseClass(t, m[1])
			continue
		}
		if m := byteRe.FindStringSubmatch(l); m != nil {
			c, _ := strconv.ParseUint(m[1], 16, 8)
			to, _ := strconv.Atoi(m[2])
			d.next[cur][byte(c)] = to
			continue
		}
		t.Fatalf("unparsed dfa line %q", l)
	}
	if len(d.next) == 0 {
		t.Fatalf("no automaton in parser output:\n%s", out)
	}
	return d
}

// parseClass reads the body of a "[^...]" class as the dump prints it.
func parseClass(t testing.TB, s string) map[byte]bool {
	set := map[byte]bool{}
	var prev int = -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && s[i+1] == 'x':
			j := i + 2
			for j < len(s) && j < i+4 && strings.IndexByte("0123456789abcdef", s[j]) >= 0 {
				j++
			}
			v, err := strconv.ParseUint(s[i+2:j], 16, 8)
			if err != nil {
				t.Fatalf("bad class %q", s)
			}
			c, i = byte(v), j-1
		case c == '\\' && i+1 < len(s):
			i++
			c = s[i]
		case c == '-' && prev >= 0 && i+1 < len(s):
			hi := s[i+1]
			for x := prev; x <= int(hi); x++ {
				set[byte(x)] = true
			}
			i++
			prev = -1
			continue
		}
		set[c] = true
		prev = int(c)
	}
	return set
}

// access returns the permission bits the profile grants on path (owner
// half; allow minus deny).
func (d *dfa) access(path string) uint32 {
	s := 1
	for i := 0; i < len(path); i++ {
		c := path[i]
		if to, ok := d.next[s][c]; ok {
			s = to
			continue
		}
		if to, ok := d.def[s]; ok && !d.none[s][c] {
			s = to
			continue
		}
		return 0
	}
	p := d.perms[s]
	return (p[0] &^ p[1]) & 0x3fff
}

// Owner-half permission bits as apparmor_parser 3.0 encodes them.
const (
	permWrite = 0x2
	permRead  = 0x4
)

func (d *dfa) writable(path string) bool { return d.access(path)&permWrite != 0 }
func (d *dfa) readable(path string) bool { return d.access(path)&permRead != 0 }
