package authstore

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/noderuntime/noderuntime/internal/database"
)

// Results of a token refresh, the label values of noderuntime_token_refreshes_total.
const (
	resultSuccess      = "success"
	resultInvalidGrant = "invalid_grant" // and rejected client credentials: final
	resultError        = "error"         // the token endpoint or Postgres failed: backoff
	resultSkipped      = "skipped"       // another caller or replica had refreshed already
)

type metrics struct {
	refreshes *prometheus.CounterVec
	cacheHit  prometheus.Counter
	cacheMiss prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, pool *pgxpool.Pool) *metrics {
	refreshes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "noderuntime_token_refreshes_total",
		Help: "Token refreshes by result: success, invalid_grant (final: needs re-authorization), error (backing off), skipped (already refreshed elsewhere).",
	}, []string{"result"})
	cache := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "noderuntime_token_cache_requests_total",
		Help: "Token requests of the execution path by cache result: hit (no database round trip) or miss.",
	}, []string{"result"})
	for _, r := range []string{resultSuccess, resultInvalidGrant, resultError, resultSkipped} {
		refreshes.WithLabelValues(r)
	}
	m := &metrics{refreshes: refreshes, cacheHit: cache.WithLabelValues("hit"), cacheMiss: cache.WithLabelValues("miss")}
	reg.MustRegister(refreshes, cache, newStatusCollector(pool))
	return m
}

func (m *metrics) refresh(result string) { m.refreshes.WithLabelValues(result).Inc() }

// statusCollector exports noderuntime_authorizations{status}, counted in Postgres at
// scrape time (at most every statusCacheFor, so several scrapers cost one query).
type statusCollector struct {
	pool *pgxpool.Pool
	desc *prometheus.Desc

	mu     sync.Mutex
	at     time.Time
	counts map[Status]float64
}

const statusCacheFor = 10 * time.Second

func newStatusCollector(pool *pgxpool.Pool) *statusCollector {
	return &statusCollector{
		pool: pool,
		desc: prometheus.NewDesc("noderuntime_authorizations", "Authorizations by status (all tenants), counted at scrape time.", []string{"status"}, nil),
	}
}

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil || time.Since(c.at) > statusCacheFor {
		if counts, err := c.count(); err == nil {
			c.counts, c.at = counts, time.Now()
		}
	}
	if c.counts == nil {
		return // Postgres never answered: no sample rather than a wrong zero
	}
	for _, st := range Statuses {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, c.counts[st], string(st))
	}
}

func (c *statusCollector) count() (map[Status]float64, error) {
	ctx, cancel := context.WithTimeout(database.ForScrape(context.Background()), 2*time.Second)
	defer cancel()
	rows, err := c.pool.Query(ctx, "select status, count(*) from authorizations group by status")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := map[Status]float64{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		counts[Status(st)] = float64(n)
	}
	return counts, rows.Err()
}
