package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/config"
	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// failureEdge is each exercised node's outcome for an Engage failure that is not a
// refusal (ENGAGE.md §2: 5xx, 429, bad response): Search has no failure edge of its own.
var failureEdge = map[string]string{
	"search-conversation": "onError",
	"append-message":      "Failure",
	"close-conversation":  "onFailure",
}

// engageOp is the simulator's operation of each exercised node.
var engageOp = map[string]string{
	"search-conversation": engagesim.OpSearch,
	"append-message":      engagesim.OpAppend,
	"close-conversation":  engagesim.OpClose,
}

// TestEngageFaultsUnderFiftyConcurrentExecutions runs 50 executions at once (Search,
// Append and Close in turn, started over 150 ms so that they do not all reach their
// deadline in the same instant) against an Engage that is slow past the deadline, answers
// 503 or 429, resets the connection, or answers a malformed body. Each ends in the
// outcome ENGAGE.md gives it, with its error code, never a 5xx from the runtime; a
// timeout answers within the deadline plus 100 ms; nothing that may have changed a
// conversation is sent twice; and once it is over no goroutine is left behind.
//
// Each fault has its own simulator (its own Engage base URL), so the circuit breaker one
// fault trips does not answer for the next.
func TestEngageFaultsUnderFiftyConcurrentExecutions(t *testing.T) {
	const concurrent = 50
	cases := []struct {
		name      string
		fault     engagesim.Fault
		timeoutMs int
		outcome   func(node string) string
		codes     []string // the error codes allowed
	}{
		// A deadline long enough for every call to reach Engage on a busy machine (50
		// connections dialled at once under the race detector): one that timed out before
		// its request was written would leave Engage a call short, which the count below
		// cannot tell from a runtime that never calls.
		{"latency past the deadline", engagesim.Fault{Latency: 5 * time.Second}, 1000,
			func(string) string { return "onTimeout" }, []string{"timeout"}},
		// Five failures in a row open the breaker: the rest fail fast, with its code.
		{"503", engagesim.Fault{Status: http.StatusServiceUnavailable}, 5000,
			failureOf, []string{"engage_unavailable", "engage_circuit_open"}},
		{"500", engagesim.Fault{Status: http.StatusInternalServerError}, 5000,
			failureOf, []string{"engage_unavailable", "engage_circuit_open"}},
		{"429", engagesim.Fault{Status: http.StatusTooManyRequests}, 5000,
			failureOf, []string{"engage_rate_limited"}},
		{"connection reset", engagesim.Fault{Reset: true}, 5000,
			failureOf, []string{"engage_unavailable", "engage_circuit_open"}},
		{"malformed body", engagesim.Fault{Malformed: true}, 5000,
			failureOf, []string{"engage_bad_response", "engage_circuit_open"}},
	}
	s := startService(t, serviceOptions{sims: len(cases)})
	auths := make([]string, len(cases))
	for i, sim := range s.sims {
		auths[i] = s.createClientCredentials(fmt.Sprintf("engage %d", i), sim)
		// Warm up: a token in the cache and connections in the pools.
		if a, _ := s.execute(search(auths[i], 5000), nil); a.Outcome != "noConversationFound" {
			t.Fatalf("warm-up: %s %+v", a.Outcome, a.Error)
		}
	}
	baseline := s.goroutineBaseline()

	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim := s.sims[i]
			sim.InjectFault(c.fault)
			convs := make([]string, concurrent)
			for j := range convs {
				convs[j] = seedConversation(sim)
			}
			before := sim.Counts().Calls
			var mu sync.Mutex
			var slowest time.Duration
			sent := map[string]int{}   // node -> executions
			opened := map[string]int{} // node -> executions the open breaker refused
			staggered(concurrent, 150*time.Millisecond, func(j int) {
				e := []execution{
					search(auths[i], c.timeoutMs),
					appendText(auths[i], convs[j], "fault "+c.name, c.timeoutMs),
					closeConversation(auths[i], convs[j], c.timeoutMs),
				}[j%3]
				node := e["node"].(string)
				a, took := executeAt(t, s.client, s.url, e, nil)
				if want := c.outcome(node); a.Outcome != want || !slices.Contains(c.codes, a.code()) {
					t.Errorf("%s: %s %+v, want %s with one of %v", node, a.Outcome, a.Error, want, c.codes)
				}
				if limit := time.Duration(c.timeoutMs)*time.Millisecond + deadlineSlack; c.outcome(node) == "onTimeout" && took > limit {
					t.Errorf("%s: answered after %s (the service took %d ms), over the deadline plus %s (%s)", node, took, a.DurationMs, deadlineSlack, limit)
				}
				mu.Lock()
				slowest = max(slowest, took)
				sent[node]++
				if a.code() == "engage_circuit_open" {
					opened[node]++
				}
				mu.Unlock()
			})
			if c.outcome("") == "onTimeout" {
				t.Logf("the slowest answer took %s (deadline %d ms)", slowest.Round(time.Millisecond), c.timeoutMs)
			}
			// No repeat of anything that may have changed a conversation; Search may be
			// repeated once after a connection failure or a 502/503/504.
			after := sim.Counts().Calls
			for node, n := range sent {
				op := engageOp[node]
				calls, reached := after[op]-before[op], n-opened[node]
				if node == "search-conversation" {
					// A search whose repeat the opened breaker refused made one call.
					if calls > 2*reached+opened[node] {
						t.Errorf("search: %d calls for %d executions, %d of them refused by the breaker", calls, n, opened[node])
					}
				} else if calls != reached {
					t.Errorf("%s: %d calls for %d executions that reached Engage: a side effect was repeated", node, calls, reached)
				}
			}
			sim.ClearFaults()
		})
	}
	s.waitForGoroutines(baseline)
	for _, sim := range s.sims {
		eventually(t, 5*time.Second, "the simulator still serves a request no one waits for", func() bool { return sim.InFlight() == 0 })
	}
}

func failureOf(node string) string { return failureEdge[node] }

// TestASlowTokenEndpointCostsAnExecutionNoMoreThanItsDeadline: 50 executions at once
// (started over 150 ms) need a token refresh while the token endpoint takes 10 s to answer. Each ends in
// onTimeout within its deadline plus 100 ms; the endpoint sees one request for all of
// them (one refresh per authorization); and once it answers again, executions succeed
// with nothing done by hand.
func TestASlowTokenEndpointCostsAnExecutionNoMoreThanItsDeadline(t *testing.T) {
	s := startService(t, serviceOptions{})
	sim := s.sims[0]
	auth := s.createClientCredentials("slow token endpoint", sim)
	if _, err := s.app.Pool().Exec(t.Context(), `update authorizations set token_expiry = now() - interval '1 hour' where id = $1`, auth); err != nil {
		t.Fatal(err)
	}
	baseline := s.goroutineBaseline()
	tokenCalls := sim.Calls(engagesim.OpToken)
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Latency: 10 * time.Second})
	const deadline = 400 * time.Millisecond
	var slowest atomic.Int64
	staggered(50, 150*time.Millisecond, func(int) {
		a, took := executeAt(t, s.client, s.url, search(auth, int(deadline/time.Millisecond)), nil)
		for old := slowest.Load(); int64(took) > old && !slowest.CompareAndSwap(old, int64(took)); old = slowest.Load() {
		}
		if a.Outcome != "onTimeout" || a.code() != "timeout" {
			t.Errorf("%s %+v, want onTimeout", a.Outcome, a.Error)
		}
		if took > deadline+deadlineSlack {
			t.Errorf("answered after %s (the service took %d ms), over the deadline plus %s", took, a.DurationMs, deadlineSlack)
		}
	})
	t.Logf("the slowest answer took %s (deadline %s)", time.Duration(slowest.Load()).Round(time.Millisecond), deadline)
	if n := sim.Calls(engagesim.OpToken) - tokenCalls; n != 1 {
		t.Errorf("the token endpoint got %d requests for 50 executions, want 1", n)
	}
	sim.ClearFaults()
	eventually(t, 20*time.Second, "executions did not succeed again after the token endpoint recovered", func() bool {
		a, _ := s.execute(search(auth, 2000), nil)
		return a.Outcome == "noConversationFound"
	})
	s.waitForGoroutines(baseline)
}

// A token endpoint that fails while the stored token has expired is an outage of the
// endpoint, not of the runtime nor of the authorization: onError with its own code, the
// authorization still active, and no second request while the endpoint backs off.
func TestAFailingTokenEndpointWithAnExpiredTokenIsTokenUnavailable(t *testing.T) {
	s := startService(t, serviceOptions{})
	sim := s.sims[0]
	auth := s.createClientCredentials("failing token endpoint", sim)
	if _, err := s.app.Pool().Exec(t.Context(), `update authorizations set token_expiry = now() - interval '1 hour' where id = $1`, auth); err != nil {
		t.Fatal(err)
	}
	tokenCalls := sim.Calls(engagesim.OpToken)
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Status: http.StatusServiceUnavailable})
	for i, what := range []string{"the failed refresh", "while it backs off"} {
		a, _ := s.execute(search(auth, 2000), nil)
		if a.Outcome != "onError" || a.code() != "token_unavailable" {
			t.Fatalf("%s: %s %+v, want onError token_unavailable", what, a.Outcome, a.Error)
		}
		if n := sim.Calls(engagesim.OpToken) - tokenCalls; n != 1 {
			t.Fatalf("after execution %d the token endpoint got %d requests, want 1", i+1, n)
		}
	}
	var status string
	if err := s.app.Pool().QueryRow(t.Context(), `select status from authorizations where id = $1`, auth).Scan(&status); err != nil {
		t.Fatal(err)
	}
	if status != "active" {
		t.Fatalf("status %q after an outage of the token endpoint, want active", status)
	}
}

// A token endpoint that does not answer within the refresh timeout, while the
// execution still has time, is the endpoint failing, as a 5xx is: onError
// token_unavailable (the runbook's `error` result: "answered 5xx or 429, or timed out"),
// not onTimeout, which says the execution's own deadline passed. The execution answers
// long before its deadline.
func TestATokenEndpointTimingOutBeforeTheDeadlineIsTokenUnavailable(t *testing.T) {
	s := startService(t, serviceOptions{configure: func(c *config.Config) { c.ExecutionTimeout = time.Second }}) // refresh timeout 500 ms
	sim := s.sims[0]
	auth := s.createClientCredentials("hanging token endpoint", sim)
	if _, err := s.app.Pool().Exec(t.Context(), `update authorizations set token_expiry = now() - interval '1 hour' where id = $1`, auth); err != nil {
		t.Fatal(err)
	}
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Latency: 10 * time.Second})
	for _, what := range []string{"the refresh that timed out", "while it backs off"} {
		a, took := executeAt(t, s.client, s.url, search(auth, 5000), nil)
		if a.Outcome != "onError" || a.code() != "token_unavailable" {
			t.Errorf("%s: %s %+v after %s of a 5 s deadline, want onError token_unavailable", what, a.Outcome, a.Error, took.Round(time.Millisecond))
		}
	}
	sim.ClearFaults()
}
