package httpapi

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LatencyBuckets resolve 1 ms to 30 s.
var LatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Metrics are the HTTP edge's own metrics.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	// children caches the series of each route and status, so a request costs no label
	// hashing and no lookup in the vectors. Routes are the router's patterns and
	// statuses the handlers' few codes: the map stays small.
	mu       sync.RWMutex
	children map[routeStatus]routeSeries
}

type routeStatus struct {
	route  string
	status int
}

type routeSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// NewMetrics registers the HTTP metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "noderuntime_http_requests_total",
			Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "noderuntime_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern.",
			Buckets: LatencyBuckets,
		}, []string{"route"}),
	}
	m.children = map[routeStatus]routeSeries{}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// observe counts and times one answered request.
func (m *Metrics) observe(route string, status int, d time.Duration) {
	k := routeStatus{route, status}
	m.mu.RLock()
	s, ok := m.children[k]
	m.mu.RUnlock()
	if !ok {
		s = routeSeries{
			requests: m.requests.WithLabelValues(route, strconv.Itoa(status)),
			duration: m.duration.WithLabelValues(route),
		}
		m.mu.Lock()
		m.children[k] = s
		m.mu.Unlock()
	}
	s.requests.Inc()
	s.duration.Observe(d.Seconds())
}
