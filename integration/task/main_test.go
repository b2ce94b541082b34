// Package task tests containerd's Task API contract end to end: real busybox
// containers through a private containerd, with stockade's shim or, with
// STOCKADE_TEST_RUNTIME=runc, containerd-shim-runc-v2 + runc, so the tests
// check containerd's contract rather than stockade's quirks.
package task

import (
	"os"
	"testing"

	"github.com/stockade-dev/stockade/integration/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
