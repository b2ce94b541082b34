package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestAgentUsageAndStartErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown flag", []string{"--bogus"}, 2, "flag provided but not defined"},
		{"argument", []string{"extra"}, 2, `unexpected argument "extra"`},
		{"missing config", []string{"--config", filepath.Join(dir, "none.toml")}, 1, "none.toml"},
		{"no node", []string{"--node", "", "--denials-dir", dir, "--store-dir", dir, "--state-dir", dir}, 1, "no node name"},
		{"bad kubeconfig", []string{"--node", "n", "--kubeconfig", filepath.Join(dir, "missing"), "--denials-dir", dir,
			"--store-dir", dir, "--state-dir", filepath.Join(dir, "state"), "--metrics-addr", ""}, 1, "kubernetes client config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := runAgent(context.Background(), tc.args, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tc.code, tc.want)
			}
		})
	}
}
