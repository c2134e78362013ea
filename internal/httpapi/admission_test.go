package httpapi_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// Past the cap an execution is refused with 503 before it runs: Engage is not called,
// its Idempotency-Key is not recorded (the retry runs it once), and the metrics say so.
func TestAnExecutionPastTheCapIsRefusedBeforeItRunsAndItsRetryRunsOnce(t *testing.T) {
	t.Parallel()
	f := newIdempotencyFixture(t, harnessOptions{maxExecutions: 2})
	h := f.h
	h.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Latency: time.Minute})
	search := []byte(`{"node":"search-conversation","version":"1.3","authorizationId":"` + authOK +
		`","input":{"channel":"sms","bizAddress":"b","customerAddress":"c"}}`)

	// Two searches held at Engage fill the cap.
	ctx, release := context.WithCancel(t.Context())
	defer release()
	var held sync.WaitGroup
	for range 2 {
		held.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.srv.URL+"/v1/executions", bytes.NewReader(search))
			req.Header.Set("Authorization", "Bearer "+execKey)
			req.Header.Set("Content-Type", "application/json")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	waitUntil(t, 30*time.Second, "two searches waiting on Engage", func() bool { return h.sim.InFlight() == 2 })

	body := f.appendBody("refused, then retried")
	resp, raw := f.post(t, "after-refusal", body, execKey)
	p := problemOf(t, raw)
	if resp.StatusCode != http.StatusServiceUnavailable || p["code"] != "overloaded" || resp.Header.Get("Retry-After") != "1" ||
		!strings.Contains(p["detail"].(string), "maximum of 2 executions") {
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
		if got := counter(t, h.metrics, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// The API key is checked first: an unknown caller is told so, not to retry.
	if resp, _ := h.post(t, "/v1/executions", "not-a-key", body, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("an unknown key past the cap: %d, want 401", resp.StatusCode)
	}

	release()
	held.Wait()
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
	if got := counter(t, h.metrics, "noderuntime_executions_refused_total", nil); got != 1 {
		t.Errorf("refused %v times, want 1", got)
	}
}
