package httpapi_test

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/httpapi"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// Past the cap an execution is refused with 503 before it runs: Engage is not called,
// its Idempotency-Key is not recorded (the retry runs it once), and the metrics say so.
func TestAnExecutionPastTheCapIsRefusedBeforeItRunsAndItsRetryRunsOnce(t *testing.T) {
	t.Parallel()
	f := newIdempotencyFixture(t, harnessOptions{admission: &httpapi.AdmissionOptions{Max: 2}})
	h := f.h
	release := holdSearches(t, h, 2) // fill the cap
	defer release()

	body := f.appendBody("refused, then retried")
	resp, raw := f.post(t, "after-refusal", body, execKey)
	p := problemOf(t, raw)
	if resp.StatusCode != http.StatusServiceUnavailable || p["code"] != "overloaded" || resp.Header.Get("Retry-After") != "1" ||
		!strings.Contains(p["detail"].(string), "this replica is running its maximum of 2 executions") {
		t.Fatalf("past the cap: %d (Retry-After %q) %s", resp.StatusCode, resp.Header.Get("Retry-After"), raw)
	}
	if n := f.messages(t); n != 0 || h.sim.Calls(engagesim.OpAppend) != 0 {
		t.Fatalf("a refused append reached Engage: %d messages", n)
	}
	for name, want := range map[string]float64{
		"noderuntime_executions_refused_total": 1,
		"noderuntime_executions_in_flight":     2,
		"noderuntime_executions_max_in_flight": 2,
	} {
		if got := counter(t, h.metrics, name, map[string]string{"limit": "replica"}); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// The API key is checked first: an unknown caller is told so, not to retry.
	if resp, _ := h.post(t, "/v1/executions", "not-a-key", body, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("an unknown key past the cap: %d, want 401", resp.StatusCode)
	}

	release()
	waitUntil(t, 30*time.Second, "the held executions to end", func() bool {
		return counter(t, h.metrics, "noderuntime_executions_in_flight", nil) == 0
	})
	resp, raw = f.post(t, "after-refusal", body, execKey)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), `"outcome":"onAppendMessageSuccess"`) || resp.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("the retry: %d %s (replayed %q)", resp.StatusCode, raw, resp.Header.Get("Idempotent-Replayed"))
	}
	if n := f.messages(t); n != 1 {
		t.Fatalf("%d messages after the retry, want 1", n)
	}
	if got := counter(t, h.metrics, "noderuntime_executions_refused_total", map[string]string{"limit": "replica"}); got != 1 {
		t.Errorf("refused %v times, want 1", got)
	}
}

// A tenant past its own cap is refused while another tenant's executions still run: one
// tenant's flood does not take the replica from the others.
func TestATenantPastItsOwnCapIsRefusedWhileAnotherTenantsExecutionsRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{admission: &httpapi.AdmissionOptions{Max: 3, PerTenant: 2, Tenants: []tenant.ID{"acme", "globex"}}})
	release := holdSearches(t, h, 2)
	defer release()

	resp, raw := h.post(t, "/v1/executions", execKey, searchBody, nil)
	p := problemOf(t, raw)
	if resp.StatusCode != http.StatusServiceUnavailable || p["code"] != "overloaded" || resp.Header.Get("Retry-After") != "1" ||
		!strings.Contains(p["detail"].(string), "this tenant is running its maximum of 2 executions") {
		t.Fatalf("acme past its cap: %d (Retry-After %q) %s", resp.StatusCode, resp.Header.Get("Retry-After"), raw)
	}
	// The access log names the tenant refused, for the operator (docs/runbook.md), at
	// WARN: a designed refusal is not an error of the service.
	if !slices.ContainsFunc(strings.Split(h.logs.String(), "\n"), func(l string) bool {
		return strings.Contains(l, `"errorCode":"overloaded"`) && strings.Contains(l, `"tenant":"acme"`) &&
			strings.Contains(l, `"level":"WARN"`)
	}) {
		t.Errorf("no access-log line names acme's refusal:\n%s", h.logs.String())
	}
	// globex has a slot of the replica's: its execution runs (the harness knows no
	// authorization of globex's, so it ends in onAuthorizationFailure, not in a 503).
	resp, raw = h.post(t, "/v1/executions", globexKey, searchBody, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), `"outcome":"onAuthorizationFailure"`) {
		t.Fatalf("globex beside acme's full share: %d %s", resp.StatusCode, raw)
	}
	for limit, want := range map[string]float64{"tenant": 1, "replica": 0} {
		if got := counter(t, h.metrics, "noderuntime_executions_refused_total", map[string]string{"limit": limit}); got != want {
			t.Errorf("refused{limit=%q} = %v, want %v", limit, got, want)
		}
	}
	release()
	waitUntil(t, 30*time.Second, "acme's held executions to end", func() bool {
		return counter(t, h.metrics, "noderuntime_executions_in_flight", nil) == 0
	})
	if resp, raw := h.post(t, "/v1/executions", execKey, searchBody, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("acme after its executions ended: %d %s", resp.StatusCode, raw)
	}
}

var searchBody = []byte(`{"node":"search-conversation","version":"1.3","authorizationId":"` + authOK +
	`","input":{"channel":"sms","bizAddress":"b","customerAddress":"c"}}`)

// holdSearches starts n of acme's searches, held at Engage until release, and waits
// until all are there.
func holdSearches(t *testing.T, h *harness, n int) (release func()) {
	t.Helper()
	h.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Latency: time.Minute})
	ctx, cancel := context.WithCancel(t.Context())
	var held sync.WaitGroup
	for range n {
		held.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.srv.URL+"/v1/executions", bytes.NewReader(searchBody))
			req.Header.Set("Authorization", "Bearer "+execKey)
			req.Header.Set("Content-Type", "application/json")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	waitUntil(t, 30*time.Second, "searches waiting on Engage", func() bool { return h.sim.InFlight() == n })
	return func() {
		cancel()
		held.Wait()
		h.sim.ClearFaults()
	}
}
