package database

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// PoolCollector exports pgxpool's statistics, read at scrape time.
type PoolCollector struct {
	pool                                             *pgxpool.Pool
	counter                                          *QueryCounter
	acquired, idle, total, max, wait, waits, queries *prometheus.Desc
}

// NewPoolCollector returns a collector for pool and, when counter is not nil, the
// queries it sent; register it on the service's registry.
func NewPoolCollector(pool *pgxpool.Pool, counter *QueryCounter) *PoolCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("noderuntime_db_pool_"+name, help, nil, nil)
	}
	return &PoolCollector{
		pool:    pool,
		counter: counter,
		queries: prometheus.NewDesc("noderuntime_db_queries_total",
			"Queries sent to Postgres by origin: scrape (counted for a metrics scrape) or service (everything else).",
			[]string{"origin"}, nil),
		acquired: d("acquired_connections", "Connections currently in use."),
		idle:     d("idle_connections", "Connections idle in the pool."),
		total:    d("total_connections", "Connections open, in use or idle."),
		max:      d("max_connections", "The pool's size limit."),
		wait:     d("acquire_wait_seconds_total", "Time spent waiting for a connection because the pool had none idle: for one to be released, or opened."),
		waits:    d("acquire_waits_total", "Acquires that had to wait because the pool had none idle (one released, or opened)."),
	}
}

// Describe implements prometheus.Collector.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.total, c.max, c.wait, c.waits, c.queries} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	ch <- prometheus.MustNewConstMetric(c.acquired, prometheus.GaugeValue, float64(s.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(s.IdleConns()))
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(s.TotalConns()))
	ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(c.wait, prometheus.CounterValue, s.EmptyAcquireWaitTime().Seconds())
	ch <- prometheus.MustNewConstMetric(c.waits, prometheus.CounterValue, float64(s.EmptyAcquireCount()))
	if c.counter != nil {
		ch <- prometheus.MustNewConstMetric(c.queries, prometheus.CounterValue, float64(c.counter.service.Load()), "service")
		ch <- prometheus.MustNewConstMetric(c.queries, prometheus.CounterValue, float64(c.counter.scrape.Load()), "scrape")
	}
}
