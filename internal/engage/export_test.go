package engage

import "github.com/prometheus/client_golang/prometheus"

// Breakers returns the count of one base URL's breakers in state, for the tests of
// package engage_test.
func (m *Metrics) Breakers(target, state string) prometheus.Gauge {
	return m.breaker.WithLabelValues(target, state)
}
