package nodes

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// Metrics count executions by node, version and outcome, and time them. The series of
// every declared outcome exist from the start (at zero), and the hot path does no label
// lookups.
type Metrics struct {
	executions *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	byVersion  []versionMetrics // indexed by Version.index
}

type versionMetrics struct {
	outcomes map[outcomes.Outcome]prometheus.Counter
	duration prometheus.Observer
}

// NewMetrics registers the execution metrics of every version in r on reg; buckets are
// the duration histogram's (the service uses httpapi.LatencyBuckets, 1 ms to 30 s).
func NewMetrics(reg prometheus.Registerer, r *Registry, buckets []float64) *Metrics {
	m := &Metrics{
		executions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "noderuntime_executions_total",
			Help: "Node executions, by node, version and outcome.",
		}, []string{"node", "version", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "noderuntime_execution_duration_seconds",
			Help:    "Time to run a node execution (input checks, token, Engage call), by node and version.",
			Buckets: buckets,
		}, []string{"node", "version"}),
	}
	reg.MustRegister(m.executions, m.duration)
	m.byVersion = make([]versionMetrics, len(r.versions))
	for _, v := range r.versions {
		vm := versionMetrics{
			outcomes: make(map[outcomes.Outcome]prometheus.Counter, len(v.declared)),
			duration: m.duration.WithLabelValues(v.node.def.id, v.number),
		}
		for _, d := range v.declared {
			vm.outcomes[d.name] = m.executions.WithLabelValues(v.node.def.id, v.number, string(d.name))
		}
		m.byVersion[v.index] = vm
	}
	return m
}

func (m *Metrics) observe(v *Version, o outcomes.Outcome, d time.Duration) {
	if m == nil {
		return
	}
	// Every registry numbers its versions alike, so an index is the same version in all.
	vm := &m.byVersion[v.index]
	if c, ok := vm.outcomes[o]; ok {
		c.Inc()
	} else {
		m.executions.WithLabelValues(v.node.def.id, v.number, string(o)).Inc()
	}
	vm.duration.Observe(d.Seconds())
}
