package task

import (
	"strconv"
	"strings"
	"time"

	"github.com/stockade-dev/stockade/hooks"
)

// phaseClock times the steps of one Create, so that the "container created"
// log line says where the shim's part of a start went (issue 14): the
// benchmark reads it from containerd's log, and an operator can too.
type phaseClock struct {
	last time.Time
	b    strings.Builder
}

func newPhaseClock() *phaseClock { return &phaseClock{last: time.Now()} }

// mark ends the phase named step: the time since the previous mark.
func (p *phaseClock) mark(step string) {
	now := time.Now()
	p.add(strings.TrimPrefix(step, "create."), now.Sub(p.last))
	p.last = now
}

// pipeline adds the hooks pipeline's steps, which ran inside the phase
// marked next ("intercept").
func (p *phaseClock) pipeline(ts []hooks.Timing) {
	for _, t := range ts {
		p.add("intercept."+t.Step, t.Duration)
	}
}

func (p *phaseClock) add(name string, d time.Duration) {
	if p.b.Len() > 0 {
		p.b.WriteByte(' ')
	}
	p.b.WriteString(name)
	p.b.WriteByte('=')
	p.b.WriteString(strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64))
	p.b.WriteString("ms")
}

// String is "spec=0.120ms intercept.userns=0.410ms ... init=9.000ms".
func (p *phaseClock) String() string { return p.b.String() }
