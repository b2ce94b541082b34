package config

import (
	"strings"
	"testing"
)

// TestUserNSRangeSize: userns.range_size defaults to 65536, takes larger
// multiples of 65536, and any other value (or one the pool cannot hold
// once) fails with an error naming the key.
func TestUserNSRangeSize(t *testing.T) {
	if got := Default().UserNS.PodRangeSize(); got != 65536 {
		t.Fatalf("default range size %d", got)
	}
	c, err := Parse([]byte("[userns]\nrange_size = 131072\n"))
	if err != nil || c.UserNS.PodRangeSize() != 131072 {
		t.Fatalf("range_size = 131072: %v, %+v", err, c)
	}
	for _, body := range []string{
		"[userns]\nrange_size = 0\n",
		"[userns]\nrange_size = 65537\n",
		"[userns]\nrange_size = 98304\n",
		"[userns]\nrange_size = 33554432\n",
		"[userns]\npool = \"2147483648+65536\"\nrange_size = 131072\n",
	} {
		if _, err := Parse([]byte(body)); err == nil || !strings.Contains(err.Error(), "userns.range_size") {
			t.Errorf("%q: %v, want an error naming userns.range_size", body, err)
		}
	}
}
