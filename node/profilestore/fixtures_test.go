package profilestore

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/profiles/recorded"
)

var (
	t0         = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	shopWebApp = recorded.Name{Namespace: "shop", Workload: "web", Container: "app"}
)

func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// webProfile is a recording of a small web server on amd64.
func webProfile() *recorded.Profile {
	return recorded.New(shopWebApp, recorded.Image{Name: "docker.io/library/nginx:1.27", Digest: digestOf("nginx")}, t0,
		map[specs.Arch][]string{
			specs.ArchX86_64: strings.Fields(`accept4 bind brk close epoll_create1 epoll_ctl epoll_wait
				fstat listen mmap openat read recvfrom sendfile setsockopt socket write writev`),
			specs.ArchX86: {"socketcall", "read", "write"},
		})
}

func mustEncode(t *testing.T, p *recorded.Profile) []byte {
	t.Helper()
	data, err := recorded.Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustMerge(t *testing.T, a, b *recorded.Profile) *recorded.Profile {
	t.Helper()
	m, err := recorded.Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
