package seccomp

import "testing"

// TestSeccompCompiledIn fails when the package is built without libseccomp:
// the shim must be built with CGO_ENABLED=1 -tags seccomp, and so must the
// tests that compile profiles to BPF.
func TestSeccompCompiledIn(t *testing.T) {
	if !CompileSupported {
		t.Fatal("seccomp support is not compiled in: build with CGO_ENABLED=1 -tags seccomp")
	}
	major, minor, micro, err := LibraryVersion()
	if err != nil {
		t.Fatal(err)
	}
	if major < 2 || (major == 2 && minor < 5) {
		t.Errorf("libseccomp %d.%d.%d is older than 2.5, which runc's notify support needs", major, minor, micro)
	}
	t.Logf("libseccomp %d.%d.%d", major, minor, micro)
}
