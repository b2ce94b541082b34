package profilestore

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/stockade-dev/stockade/profiles/recorded"
)

// Replace writes what it is given (no merge, so runs are not counted
// twice) and only over the profile the caller read.
func TestReplace(t *testing.T) {
	s := testStore(t)
	seven := webProfile()
	seven.Runs = 7
	sealed := recorded.Normalize(seven)

	// Nothing stored: "" is the checksum read.
	if err := s.Replace(sealed, "x"); !errors.Is(err, ErrChanged) || !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("replace over nothing with a checksum: %v, want ErrChanged", err)
	}
	if err := s.Replace(sealed, ""); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(shopWebApp)
	if err != nil || got.Runs != 7 || got.Checksum != sealed.Checksum {
		t.Fatalf("stored %+v, %v; want the replacement as given", got, err)
	}

	// A shim saves a recording in between: the stale replace is refused
	// and the recording kept.
	saved := mustSave(t, s, webProfile())
	if err := s.Replace(sealed, got.Checksum); !errors.Is(err, ErrChanged) {
		t.Fatalf("stale replace: %v, want ErrChanged", err)
	}
	if now, _ := s.Load(shopWebApp); now.Checksum != saved.Checksum {
		t.Fatal("a stale replace overwrote a saved recording")
	}
	if err := s.Replace(sealed, saved.Checksum); err != nil {
		t.Fatal(err)
	}

	// An unsealed profile is refused: the store only holds sealed ones.
	raw := webProfile()
	raw.Checksum = ""
	if err := s.Replace(raw, sealed.Checksum); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("unsealed: %v, want invalid argument", err)
	}
	if err := s.Replace(nil, ""); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("nil: %v, want invalid argument", err)
	}
}
