package config

import (
	"strings"
	"testing"
	"time"
)

func TestDenialsBoundsKeys(t *testing.T) {
	c, err := Parse([]byte("[denials]\nretention = \"2h\"\nmax_total_bytes = 104857600\nlog_per_minute = 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Denials.RetentionPeriod() != 2*time.Hour || c.Denials.MaxTotalBytes != 100<<20 || c.Denials.LogPerMinute != 3 {
		t.Errorf("parsed %+v", c.Denials)
	}
	if d := Default().Denials; d.RetentionPeriod() != 24*time.Hour || d.MaxTotalBytes != 1<<30 || d.LogPerMinute != 10 {
		t.Errorf("defaults %+v", d)
	}
	if c, err := Parse([]byte("[denials]\nretention = \"0\"\nmax_total_bytes = 0\nlog_per_minute = 0\n")); err != nil || c.Denials.RetentionPeriod() != 0 {
		t.Errorf("0 (keep, no cap, no log) refused: %v", err)
	}
	for _, tc := range []struct{ doc, key string }{
		{"retention = \"soon\"", "denials.retention"},
		{"retention = \"-1h\"", "denials.retention"},
		{"retention = \"10s\"", "denials.retention"}, // would race a container restart
		{"max_total_bytes = 4096", "denials.max_total_bytes"},
		{"max_total_bytes = -1", "denials.max_total_bytes"},
		{"log_per_minute = -1", "denials.log_per_minute"},
		{"log_per_minute = 1000000", "denials.log_per_minute"},
	} {
		_, err := Parse([]byte("[denials]\n" + tc.doc + "\n"))
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: err = %v, want one naming %s", tc.doc, err, tc.key)
		}
	}
}

func TestDenialsMaxRecordsPerSecond(t *testing.T) {
	if d := Default().Denials; d.MaxRecordsPerSecond != DefaultDenialsRecordsPerSec {
		t.Errorf("default = %d", d.MaxRecordsPerSecond)
	}
	for doc, want := range map[string]int{"max_records_per_second = 0": 0, "max_records_per_second = 20": 20} {
		c, err := Parse([]byte("[denials]\n" + doc + "\n"))
		if err != nil || c.Denials.MaxRecordsPerSecond != want {
			t.Errorf("%s: %v, %+v", doc, err, c)
		}
	}
	for _, doc := range []string{"max_records_per_second = -1", "max_records_per_second = 2000000"} {
		if _, err := Parse([]byte("[denials]\n" + doc + "\n")); err == nil || !strings.Contains(err.Error(), "denials.max_records_per_second") {
			t.Errorf("%s: err = %v, want one naming the key", doc, err)
		}
	}
}
