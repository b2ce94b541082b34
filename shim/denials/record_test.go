package denials

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncateField(t *testing.T) {
	if got, cut := truncateField("/usr/bin/curl"); cut || got != "/usr/bin/curl" {
		t.Errorf("short field changed: %q %v", got, cut)
	}
	exact := strings.Repeat("a", maxFieldBytes)
	if got, cut := truncateField(exact); cut || got != exact {
		t.Error("a field of exactly maxFieldBytes was cut")
	}
	long := "/" + strings.Repeat("d/", 2047) + "probe" // a 4 KiB exe path
	got, cut := truncateField(long)
	if !cut || len(got) > maxFieldBytes || !strings.HasPrefix(long, strings.TrimSuffix(got[:strings.Index(got, "...[")], "")) {
		t.Fatalf("cut=%v len=%d: %q", cut, len(got), got)
	}
	kept := got[:strings.Index(got, "...[truncated ")]
	if want := "...[truncated " + itoa(len(long)-len(kept)) + " bytes]"; !strings.HasSuffix(got, want) {
		t.Errorf("marker: %q does not end in %q", got[len(got)-40:], want)
	}
	// Cuts never split a UTF-8 sequence.
	multi := strings.Repeat("日", 1000)
	if got, _ := truncateField(multi); !utf8.ValidString(got) || len(got) > maxFieldBytes {
		t.Errorf("cut a rune: valid=%v len=%d", utf8.ValidString(got), len(got))
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestRecordTruncatesWorkloadFields: a record's workload-controlled strings
// are bounded and the record says which were cut (issue 21 item 3: a 4 KiB
// exe path in every record and shim-log line).
func TestRecordTruncatesWorkloadFields(t *testing.T) {
	r := &Record{Comm: "short", Exe: "/" + strings.Repeat("x", 4000), Image: strings.Repeat("i", 2000), Args: hexArgs([6]uint64{1})}
	r.truncateFields()
	if len(r.Exe) > maxFieldBytes || len(r.Image) > maxFieldBytes || r.Comm != "short" {
		t.Errorf("exe %d, image %d bytes, comm %q", len(r.Exe), len(r.Image), r.Comm)
	}
	if strings.Join(r.Truncated, ",") != "exe,image" {
		t.Errorf("truncated = %v, want [exe image]", r.Truncated)
	}
	line, _ := json.Marshal(r)
	if len(line) > 3*maxFieldBytes {
		t.Errorf("record is %d bytes", len(line))
	}
}
