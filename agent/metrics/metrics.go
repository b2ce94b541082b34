// Package metrics is the node agent's Prometheus endpoint: denials by
// namespace, pod, container, syscall and action; syscalls lost to gaps;
// bad sink lines; recorded profiles and their cluster synchronisation; the
// Kubernetes Events the agent sent or held back.
//
// Names follow Prometheus conventions (stockade_ prefix, _total for
// counters) and, where the security-profiles-operator has the same
// measurement, its label names: stockade_denials_total carries the labels
// of SPO's security_profiles_operator_seccomp_profile_audit_total (node,
// namespace, pod, container, syscall; no executable, which the workload
// controls), stockade_profile_operations_total{operation} mirrors
// seccomp_profile_total{operation}, and stockade_agent_errors_total{reason}
// mirrors seccomp_profile_error_total{reason}.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stockade-dev/stockade/agent/sink"
)

// Metrics holds the agent's collectors in a registry of their own, so the
// endpoint shows exactly these (and the Go runtime's).
type Metrics struct {
	Registry *prometheus.Registry
	node     string

	denials        *prometheus.CounterVec
	dropped        *prometheus.CounterVec
	badLines       *prometheus.CounterVec
	errors         *prometheus.CounterVec
	profiles       *prometheus.GaugeVec
	profileOps     *prometheus.CounterVec
	events         *prometheus.CounterVec
	lastSinkRecord prometheus.Gauge
}

// New returns the metrics of the agent on node.
func New(node string) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), node: node}
	m.denials = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stockade_denials_total",
		Help: "Syscalls a stockade seccomp profile denied (action=denied) or, in complain mode, would have denied (action=allowed), from the node's denial sink.",
	}, []string{"node", "namespace", "pod", "container", "syscall", "action"})
	m.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stockade_denials_dropped_total",
		Help: "Denied syscalls whose records the shim had to drop (gap records): they happened, but nobody knows which they were.",
	}, []string{"node", "namespace", "pod", "container"})
	m.badLines = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stockade_sink_bad_lines_total",
		Help: "Lines of the denial sink that were not records and were skipped.",
	}, []string{"node", "reason"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stockade_agent_errors_total",
		Help: "Errors of the node agent by reason; the agent logs each and goes on.",
	}, []string{"node", "reason"})
	m.profiles = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stockade_recorded_profiles",
		Help: "Recorded seccomp profiles in this node's profile store, by namespace; pods held to one of them get it on this node.",
	}, []string{"node", "namespace"})
	m.profileOps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stockade_profile_operations_total",
		Help: "Operations on RecordedSeccompProfile objects and the local store: merge (local recordings into the object), update (the object's profile written to the store), delete (the object gone, the local profile removed), conflict (a merge retried on a resourceVersion conflict).",
	}, []string{"node", "operation"})
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stockade_events_total",
		Help: "Kubernetes Events about denials: created, updated (count raised), dropped (rate limit or API error).",
	}, []string{"node", "result"})
	m.lastSinkRecord = prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "stockade_sink_last_record_timestamp_seconds",
		Help:        "Time of the newest denial record the agent has read.",
		ConstLabels: prometheus.Labels{"node": node},
	})
	m.Registry.MustRegister(m.denials, m.dropped, m.badLines, m.errors, m.profiles, m.profileOps, m.events, m.lastSinkRecord,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Record counts one sink record: a denial with its count, or a gap with
// the syscalls it stands for.
func (m *Metrics) Record(r *sink.Record) {
	if r.Type == sink.TypeGap {
		m.dropped.WithLabelValues(m.node, r.Namespace, r.Pod, r.Container).Add(float64(r.Dropped))
		return
	}
	n := r.Count
	if n == 0 {
		n = 1 // a record stands for at least its own syscall
	}
	syscall := r.Syscall
	if syscall == "" {
		syscall = "unknown"
	}
	m.denials.WithLabelValues(m.node, r.Namespace, r.Pod, r.Container, syscall, r.Action).Add(float64(n))
	if !r.Time.IsZero() {
		m.lastSinkRecord.Set(float64(r.Time.UnixNano()) / 1e9)
	}
}

// PodGone drops the series of a pod whose denial log the shims removed
// (retention): a pod's series live as long as its log, so pods that come
// and go do not grow the endpoint without bound.
func (m *Metrics) PodGone(namespace, pod string) {
	l := prometheus.Labels{"namespace": namespace, "pod": pod}
	m.denials.DeletePartialMatch(l)
	m.dropped.DeletePartialMatch(l)
}

// BadLine counts a skipped sink line.
func (m *Metrics) BadLine(reason string) { m.badLines.WithLabelValues(m.node, reason).Inc() }

// Error counts an error by reason.
func (m *Metrics) Error(reason string) { m.errors.WithLabelValues(m.node, reason).Inc() }

// SetProfiles sets the number of stored profiles per namespace, dropping
// namespaces that have none left.
func (m *Metrics) SetProfiles(perNamespace map[string]int) {
	m.profiles.Reset()
	for ns, n := range perNamespace {
		m.profiles.WithLabelValues(m.node, ns).Set(float64(n))
	}
}

// ProfileOp counts a profile operation.
func (m *Metrics) ProfileOp(op string) { m.profileOps.WithLabelValues(m.node, op).Inc() }

// Event counts an Event outcome.
func (m *Metrics) Event(result string) { m.events.WithLabelValues(m.node, result).Inc() }
