package engage

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is the Prometheus Observer of Engage calls and BreakerObserver of their
// breakers: noderuntime_engage_requests_total{operation,status},
// noderuntime_engage_request_duration_seconds{operation} and
// noderuntime_circuit_breakers{target,state}.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	breaker  *prometheus.GaugeVec

	// calls caches the series of each operation and status, so a call costs no label
	// hashing; operations and statuses are few.
	mu    sync.RWMutex
	calls map[opStatus]callSeries
}

type opStatus struct{ op, status string }

type callSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// NewMetrics creates the metrics and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "noderuntime_engage_requests_total",
			Help: `Engage calls by operation and status: the HTTP status, or "timeout", "canceled", "transport_error" when no answer arrived.`,
		}, []string{"operation", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "noderuntime_engage_request_duration_seconds",
			Help: "Duration of Engage calls, from sending the request to reading the whole answer.",
			// 1 ms to 30 s: a healthy regional Engage answers in tens of milliseconds; the
			// execution deadline caps calls at tens of seconds.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"operation"}),
		// By base URL and state, not by domain: base URLs are bounded by the allowlist,
		// domains are whatever the tenants' authorizations name, a series each, for ever.
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "noderuntime_circuit_breakers",
			Help: "Circuit breakers in front of Engage (one per base URL and Engage domain used since the start), by base URL and state: closed, half_open, open.",
		}, []string{"target", "state"}),
	}
	m.calls = map[opStatus]callSeries{}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.breaker)
	}
	return m
}

// ObserveEngageCall implements Observer.
func (m *Metrics) ObserveEngageCall(op, status string, d time.Duration) {
	k := opStatus{op, status}
	m.mu.RLock()
	s, ok := m.calls[k]
	m.mu.RUnlock()
	if !ok {
		s = callSeries{requests: m.requests.WithLabelValues(op, status), duration: m.duration.WithLabelValues(op)}
		m.mu.Lock()
		m.calls[k] = s
		m.mu.Unlock()
	}
	s.requests.Inc()
	s.duration.Observe(d.Seconds())
}

// BreakerStates returns the values of the state label of noderuntime_circuit_breakers,
// indexed by the states of BreakerObserver. It is an array, so each caller has its own
// copy, without an allocation.
func BreakerStates() [BreakerOpen + 1]string {
	return [...]string{BreakerClosed: "closed", BreakerHalfOpen: "half_open", BreakerOpen: "open"}
}

// ObserveBreakerChange implements BreakerObserver; the domain stays out of the metric.
func (m *Metrics) ObserveBreakerChange(target, _ string, from, to int) {
	if from != BreakerNone {
		m.breaker.WithLabelValues(target, BreakerStates()[from]).Dec()
	} else {
		// A new base URL: all its states from the start, so a query sees zeros, not gaps.
		for _, st := range BreakerStates() {
			m.breaker.WithLabelValues(target, st)
		}
	}
	if to != BreakerNone {
		m.breaker.WithLabelValues(target, BreakerStates()[to]).Inc()
	}
}
