package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/config"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// TestPostgresRestartsWhileExecutionsRun stops and restarts the service's Postgres (a
// throwaway cluster on the same port) while executions run. While it is down:
// executions whose token is in the memory cache keep succeeding; those that need the
// database (an authorization not in the cache) end in onError within their deadline,
// neither hanging nor answering 500; an execution with an Idempotency-Key answers 503
// `unavailable` without calling Engage (nothing ran, the caller retries); /readyz is
// red, /healthz green. When Postgres is back, /readyz turns green and everything works
// again, with no restart of the service.
func TestPostgresRestartsWhileExecutionsRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cluster, url := dbtest.NewCluster(t)
	s := startService(t, serviceOptions{dbURL: url, configure: func(c *config.Config) { c.ExecutionTimeout = 2 * time.Second }})
	sim := s.sims[0]
	cached := s.createClientCredentials("in the cache", sim)
	uncached := s.createClientCredentials("not in the cache", sim)
	login := s.createLogin("webex login in the cache")
	conv := seedConversation(sim)
	for _, auth := range []string{cached, login} {
		if a, _ := s.execute(appendText(auth, conv, "warm", 2000), nil); a.Outcome != "onAppendMessageSuccess" {
			t.Fatalf("before the restart: %s %+v", a.Outcome, a.Error)
		}
	}
	eventually(t, 10*time.Second, "the authorization listener did not connect", s.app.Authorizations().Listening)
	// The listener's connect empties the cache, and an invalidation that arrives while
	// a token is read (a notification of the set-up, say) keeps that read from caching
	// it: execute each until its token is served from the cache.
	for _, auth := range []string{cached, login} {
		eventually(t, 10*time.Second, "the token did not reach the cache", func() bool {
			before := cacheHits(t, s)
			a, _ := s.execute(search(auth, 2000), nil)
			return a.Outcome == "conversationActive" && cacheHits(t, s) > before
		})
	}

	// Load runs through the whole restart: cached-token executions must never fail.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var loadRuns atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			auth := []string{cached, login}[w%2]
			for !stop.Load() {
				if a, _ := s.execute(search(auth, 2000), nil); a.Outcome != "conversationActive" {
					t.Errorf("a cached-token execution during the restart: %s %+v", a.Outcome, a.Error)
					return
				}
				loadRuns.Add(1)
			}
		})
	}

	if err := cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.status("/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz with postgres down: %d, want 503", got)
	}
	if got := s.status("/healthz"); got != http.StatusOK {
		t.Errorf("/healthz with postgres down: %d, want 200", got)
	}
	eventually(t, 10*time.Second, "the listener did not notice that postgres went away", func() bool { return !s.app.Authorizations().Listening() })
	for range 3 {
		a, took := s.execute(search(uncached, 1000), nil)
		if a.Outcome != "onError" || a.code() != "internal" {
			t.Errorf("an execution that needs the database: %s %+v, want onError", a.Outcome, a.Error)
		}
		if took > 1100*time.Millisecond {
			t.Errorf("an execution that needs the database answered after %s, past its deadline", took)
		}
	}
	calls := sim.Calls(engagesim.OpAppend)
	resp, raw := s.do(http.MethodPost, "/v1/executions", acmeKey, appendText(cached, conv, "keyed", 1000), http.Header{"Idempotency-Key": {"during-the-outage"}})
	var problem struct{ Code string }
	if resp.StatusCode != http.StatusServiceUnavailable || json.Unmarshal(raw, &problem) != nil || problem.Code != "unavailable" {
		t.Errorf("an execution with an Idempotency-Key: %d %s, want 503 unavailable", resp.StatusCode, raw)
	}
	if sim.Calls(engagesim.OpAppend) != calls {
		t.Error("an execution whose idempotency store is down called Engage")
	}
	runs := loadRuns.Load()
	eventually(t, 10*time.Second, "cached-token executions stalled while postgres was down", func() bool { return loadRuns.Load() > runs+20 })

	if err := cluster.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "/readyz did not turn green after postgres came back", func() bool { return s.status("/readyz") == http.StatusOK })
	eventually(t, 30*time.Second, "an authorization not in the cache did not work again", func() bool {
		a, _ := s.execute(search(uncached, 2000), nil)
		return a.Outcome == "conversationActive"
	})
	if a, _ := s.execute(appendText(cached, conv, "keyed", 2000), http.Header{"Idempotency-Key": {"after-the-outage"}}); a.Outcome != "onAppendMessageSuccess" {
		t.Errorf("with an Idempotency-Key after the restart: %s %+v", a.Outcome, a.Error)
	}
	eventually(t, 10*time.Second, "the authorization listener did not reconnect", s.app.Authorizations().Listening)
	stop.Store(true)
	wg.Wait()
}

// cacheHits is the service's count of tokens served from its memory cache.
func cacheHits(t *testing.T, s *service) float64 {
	t.Helper()
	families, err := s.app.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "noderuntime_token_cache_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == "hit" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
