//go:build cgo && seccomp

package denials

import "testing"

func TestSmokeStorm(t *testing.T) {
	for i := 0; i < 3; i++ {
		for _, o := range []StormOptions{{}, {Window: -1}} {
			r, err := Storm(100000, o)
			t.Logf("%v: lat=%v rate=%.0f lost=%d err=%v", o.Window, r.Latency, r.Rate, r.Lost, err)
		}
	}
}
