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
// the traced breakdown's one "shim exec'd → runc init forked" phase.
var (
	createdLine = regexp.MustCompile(`msg="container created".*\bcontainer_id=(\S+)`)
	phasesField = regexp.MustCompile(`\bphases="([^"]*)"`)
)

// shimPhases returns, per phase name in the order first seen, the samples
// (ms) of every container whose id starts with prefix, from containerd's log.
func shimPhases(logPath, prefix string) ([]string, map[string][]float64, error) {
	f, err := os.Open(logPath)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var order []string
	samples := map[string][]float64{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		m := createdLine.FindStringSubmatch(line)
		if m == nil || !strings.HasPrefix(m[1], prefix) {
			continue
		}
		p := phasesField.FindStringSubmatch(line)
		if p == nil {
			continue
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
			if _, seen := samples[name]; !seen {
				order = append(order, name)
			}
			samples[name] = append(samples[name], v)
		}
	}
	return order, samples, sc.Err()
}
