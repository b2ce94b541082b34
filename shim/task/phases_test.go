package task

import (
	"regexp"
	"testing"
	"time"

	"github.com/stockade-dev/stockade/hooks"
)

func TestPhaseClock(t *testing.T) {
	c := newPhaseClock()
	c.mark("create.spec")
	c.pipeline([]hooks.Timing{{Step: "seccomp", Duration: 1500 * time.Microsecond}})
	c.mark("create.intercept")
	re := regexp.MustCompile(`^spec=\d+\.\d{3}ms intercept\.seccomp=1\.500ms intercept=\d+\.\d{3}ms$`)
	if !re.MatchString(c.String()) {
		t.Errorf("phases = %q, want to match %s", c.String(), re)
	}
}
