package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestReportParity(t *testing.T) {
	const spec = "[k8s.io] Security Context bucket runtime should support HostPID"
	pass := map[string]specResult{spec: {state: "passed"}}
	fail := map[string]specResult{spec: {state: "failed", message: "refused"}}
	entry := func(config string) []*design {
		return []*design{{config: config, re: regexp.MustCompile(`HostPID$`), reason: "host PID"}}
	}
	for _, tc := range []struct {
		name           string
		runc, def, exm map[string]specResult
		byDesign       []*design
		want           bool
	}{
		{"all pass", pass, pass, pass, nil, true},
		{"stockade fails, no entry", pass, fail, pass, nil, false},
		{"stockade fails, entry for its config", pass, fail, pass, entry("default"), true},
		{"stockade fails, entry for the other config", pass, fail, pass, entry("exempt"), false},
		{"exempt fails, entry for every config", pass, pass, fail, entry("*"), true},
		{"runc fails too", fail, fail, fail, nil, true},
		{"timed out counts as failed", pass, map[string]specResult{spec: {state: "timedout"}}, pass, nil, false},
		{"skipped under stockade is no failure", pass, map[string]specResult{spec: {state: "skipped"}}, pass, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			results := map[string]map[string]specResult{
				"runc/default": tc.runc, "stockade/default": tc.def, "stockade/exempt": tc.exm,
			}
			out := t.TempDir()
			if got := report(results, tc.byDesign, out); got != tc.want {
				t.Fatalf("report() = %v, want %v", got, tc.want)
			}
			b, err := os.ReadFile(filepath.Join(out, "parity.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "critest: stockade/default: ") {
				t.Errorf("parity.txt has no summary line:\n%s", b)
			}
		})
	}
}

func TestReadByDesign(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		text    string
		wantErr string
	}{
		{"# comment\n\ndefault | HostPID$ | host PID namespace\n* | a|b | alternation inside a pattern\n", ""},
		{"default | HostPID$\n", "want CONFIG | PATTERN | REASON"},
		{"sometimes | HostPID$ | reason\n", `config "sometimes"`},
		{"default | ( | reason\n", "missing closing )"},
		{"default | HostPID$ |  \n", "want CONFIG | PATTERN | REASON"},
	} {
		path := filepath.Join(dir, "by-design.txt")
		if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := readByDesign(path)
		if tc.wantErr == "" {
			if err != nil || len(got) != 2 || got[1].re.String() != "a|b" {
				t.Errorf("%q: got %v, %v", tc.text, got, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%q: error %v, want it to contain %q", tc.text, err, tc.wantErr)
		}
	}
}

// The shipped lists must parse: a malformed line would only show in CI.
func TestShippedLists(t *testing.T) {
	if _, err := readByDesign("by-design.txt"); err != nil {
		t.Error(err)
	}
	if _, err := readSkips("skip.txt"); err != nil {
		t.Error(err)
	}
}
