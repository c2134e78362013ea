package engage

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is the Prometheus Observer of Engage calls:
// noderuntime_engage_requests_total{operation,status} and
// noderuntime_engage_request_duration_seconds{operation}.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
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
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration)
	}
	return m
}

// ObserveEngageCall implements Observer.
func (m *Metrics) ObserveEngageCall(op, status string, d time.Duration) {
	m.requests.WithLabelValues(op, status).Inc()
	m.duration.WithLabelValues(op).Observe(d.Seconds())
}
