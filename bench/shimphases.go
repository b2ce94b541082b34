package bench

import (
	"bufio"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// The shim logs how long each step of a Create took in the "container
// created" line (phases="spec=0.120ms intercept.userns=0.410ms ...");
// containerd copies shim logs into its own. These are read back here to split
// the traced breakdown's one "shim exec'd → runc init forked" phase, and a
// CRI pod's start.
var (
	createdLine = regexp.MustCompile(`msg="container created".*\bcontainer_id=(\S+)`)
	podField    = regexp.MustCompile(`\bpod=(\S+)`)
	phasesField = regexp.MustCompile(`\bphases="([^"]*)"`)
)

// phaseSamples are samples (ms) per phase, with the phases in the order
// first seen.
type phaseSamples struct {
	order   []string
	samples map[string][]float64
}

func (p *phaseSamples) add(name string, v float64) {
	if p.samples == nil {
		p.samples = map[string][]float64{}
	}
	if _, seen := p.samples[name]; !seen {
		p.order = append(p.order, name)
	}
	p.samples[name] = append(p.samples[name], v)
}

// shimPhases reads containerd's log and returns the phases of every created
// container for which class returns a non-empty class name, by class.
func shimPhases(logPath string, class func(containerID, pod string) string) (map[string]*phaseSamples, error) {
	f, err := os.Open(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]*phaseSamples{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		m := createdLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var pod string
		if pm := podField.FindStringSubmatch(line); pm != nil {
			pod = pm[1]
		}
		cl := class(m[1], pod)
		p := phasesField.FindStringSubmatch(line)
		if cl == "" || p == nil {
			continue
		}
		ps := out[cl]
		if ps == nil {
			ps = &phaseSamples{}
			out[cl] = ps
		}
		for _, kv := range strings.Fields(p[1]) {
			name, val, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimSuffix(val, "ms"), 64)
			if err != nil {
				continue
			}
			ps.add(name, v)
		}
	}
	return out, sc.Err()
}

// phaseMetrics turns one class's phases into metrics of group; a missing
// class is reported as not measured.
func (b *runner) phaseMetrics(group string, ps *phaseSamples) []Metric {
	if ps == nil || len(ps.order) == 0 {
		b.notMeasured = append(b.notMeasured, NotMeasured{Name: group, Reason: "no \"container created\" line with phases in containerd's log"})
		return nil
	}
	var metrics []Metric
	for _, name := range ps.order {
		metrics = append(metrics, Metric{
			Group:    group,
			Name:     shimPhaseName(name),
			Unit:     "ms",
			Baseline: "none (runc's shim logs no phases)",
			Stockade: (&collector{samples: ps.samples[name]}).outcome(),
			Runc:     Outcome{NotApplicable: "runc's shim logs no phases"},
		})
	}
	return metrics
}

// shimPhaseName says what a phase of the shim's Create covers.
func shimPhaseName(name string) string {
	what := map[string]string{
		"spec":               "read config.json",
		"intercept.config":   "node config and options file; at a shim's first container also the pipeline and denial agent built",
		"intercept.userns":   "pipeline: user namespace (range lease, id maps)",
		"intercept.seccomp":  "pipeline: seccomp profile (generated or cached)",
		"intercept.apparmor": "pipeline: AppArmor",
		"intercept.denials":  "pipeline: denial agent wiring",
		"intercept.result":   "pipeline result written to the bundle",
		"intercept":          "the whole pipeline phase, all of the above",
		"remap":              "idmapped rootfs options",
		"rootfs":             "rootfs mount",
		"libcontainer":       "libcontainer config and state",
		"stdio":              "stdio FIFOs/pipes",
		"init":               "runc init started, through nsexec and rootfs, until it waits for Start",
		"registered":         "container registered",
	}[name]
	if what == "" {
		return name
	}
	return name + " (" + what + ")"
}
