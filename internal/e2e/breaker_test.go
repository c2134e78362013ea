package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// TestTheCircuitBreakerFailsFastWhileEngageIsDownAndRecoversByItself: while one Engage
// answers 503 (slowly), the first executions wait for their failure, then the breaker of
// that base URL opens and the next ones end at once in the node's failure outcome with
// engage_circuit_open, without a call to Engage; another Engage is not affected. When
// Engage recovers, executions succeed again with no restart and nothing done by hand,
// and the breaker's metric follows (one breaker open, then none).
func TestTheCircuitBreakerFailsFastWhileEngageIsDownAndRecoversByItself(t *testing.T) {
	s := startService(t, serviceOptions{sims: 2})
	down, healthy := s.sims[0], s.sims[1]
	auth := s.createClientCredentials("failing region", down)
	other := s.createClientCredentials("healthy region", healthy)
	conv := seedConversation(down)
	if a, _ := s.execute(appendText(auth, conv, "before", 5000), nil); a.Outcome != "onAppendMessageSuccess" {
		t.Fatalf("before the outage: %s %+v", a.Outcome, a.Error)
	}

	const slow = 300 * time.Millisecond
	down.InjectFault(engagesim.Fault{Status: http.StatusServiceUnavailable, Latency: slow})
	failures := 0
	for failures < 20 {
		a, took := s.execute(appendText(auth, conv, "during", 5000), nil)
		if a.Outcome != "Failure" {
			t.Fatalf("during the outage: %s %+v, want Failure", a.Outcome, a.Error)
		}
		failures++
		if a.code() == "engage_circuit_open" {
			break
		}
		if a.code() != "engage_unavailable" || took < slow {
			t.Fatalf("before the breaker opened: %s after %s", a.code(), took)
		}
	}
	if failures > 6 {
		t.Fatalf("the breaker opened only after %d failures, want 5 in a row", failures)
	}
	calls := down.Calls(engagesim.OpAppend)
	for range 10 {
		a, took := s.execute(appendText(auth, conv, "refused", 5000), nil)
		if a.Outcome != "Failure" || a.code() != "engage_circuit_open" || !strings.Contains(a.Error.Message, "failing") {
			t.Fatalf("with the breaker open: %s %+v", a.Outcome, a.Error)
		}
		if took >= slow {
			t.Fatalf("with the breaker open an execution took %s: not failing fast", took)
		}
	}
	if n := down.Calls(engagesim.OpAppend) - calls; n != 0 {
		t.Fatalf("%d calls reached Engage through an open breaker", n)
	}
	if a, _ := s.execute(search(auth, 5000), nil); a.Outcome != "onError" || a.code() != "engage_circuit_open" {
		t.Fatalf("search with the breaker open: %s %+v, want onError engage_circuit_open", a.Outcome, a.Error)
	}
	if a, _ := s.execute(search(other, 5000), nil); a.Outcome != "noConversationFound" {
		t.Fatalf("another Engage while this one is down: %s %+v", a.Outcome, a.Error)
	}
	open := `noderuntime_circuit_breakers{state="open",target="` + down.BaseURL() + `"}`
	if v := metric(s.scrapeMetrics(), open); v != "1" {
		t.Fatalf("%s = %q, want 1", open, v)
	}

	down.ClearFaults()
	eventually(t, 15*time.Second, "executions did not succeed again after Engage recovered", func() bool {
		a, _ := s.execute(appendText(auth, conv, "after", 5000), nil)
		return a.Outcome == "onAppendMessageSuccess"
	})
	for range 5 {
		if a, _ := s.execute(appendText(auth, conv, "after", 5000), nil); a.Outcome != "onAppendMessageSuccess" {
			t.Fatalf("after recovery: %s %+v", a.Outcome, a.Error)
		}
	}
	if v := metric(s.scrapeMetrics(), open); v != "0" {
		t.Fatalf("%s = %q after recovery, want 0", open, v)
	}
}
