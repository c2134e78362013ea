package nodes_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/nodes"
	"github.com/noderuntime/noderuntime/internal/outcomes"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// scriptedCredentials hands out token (on domain) and answers a refresh with refreshed,
// or with refreshErr; tokenErr, when set, fails the first read.
type scriptedCredentials struct {
	domain, token, refreshed string
	tokenErr, refreshErr     error
}

func (c scriptedCredentials) credential(token string) nodes.Credential {
	return nodes.Credential{AuthorizationID: "a1", BaseURL: "http://engage.test/api/v1", Domain: c.domain,
		AccessToken: secrets.New(token), ExpiresAt: time.Now().Add(time.Hour)}
}

func (c scriptedCredentials) Token(context.Context, tenant.ID, string) (nodes.Credential, error) {
	if c.tokenErr != nil {
		return nodes.Credential{}, c.tokenErr
	}
	return c.credential(c.token), nil
}

func (c scriptedCredentials) Refresh(context.Context, tenant.ID, string, secrets.Value) (nodes.Credential, error) {
	if c.refreshErr != nil {
		return nodes.Credential{}, c.refreshErr
	}
	return c.credential(c.refreshed), nil
}

// hangingEngage records each call, then holds it until the caller gives up.
type hangingEngage struct{ mem *engageInMemory }

func (h hangingEngage) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mem.mu.Lock()
	h.mem.calls = append(h.mem.calls, engageCall{method: r.Method, path: r.URL.Path})
	h.mem.mu.Unlock()
	<-r.Context().Done()
	return nil, r.Context().Err()
}

// Result.Unapplied is what lets an idempotency key be released instead of replaying a
// failure for 24 h: it must be set on every failure that certainly changed nothing in
// Engage (before any call left, or a call Engage refused before acting), and never on
// one after which Engage may have acted (it failed, or did not answer in time), nor on
// a success.
func TestUnappliedMarksOnlyTheFailuresThatLeftEngageAsItWas(t *testing.T) {
	t.Parallel()
	appendInput := func(id, text string) string {
		return `{"conversationId":"` + id + `","channel":"sms","direction":"outbound","messageType":"text","text":"` + text + `","timestamp":"` + wireTimestamp + `"}`
	}
	for _, tc := range []struct {
		name      string
		input     func(id string) string
		creds     func(sim *engagesim.Sim) scriptedCredentials
		fault     engagesim.Fault
		hang      bool // Engage takes the call and never answers
		timeout   time.Duration
		outcome   string // "" : any failure outcome
		unapplied bool
		calls     int // append calls that reached Engage
	}{
		{name: "input that is not an object", input: func(string) string { return `[]` },
			outcome: string(outcomes.OnInvalidData), unapplied: true},
		{name: "a required field missing", input: func(string) string {
			return `{"channel":"sms","direction":"outbound","messageType":"text","text":"x","timestamp":"` + wireTimestamp + `"}`
		}, outcome: string(outcomes.OnInvalidData), unapplied: true},
		{name: "a text over the limit", input: func(id string) string { return appendInput(id, strings.Repeat("x", 4097)) },
			outcome: string(outcomes.OnInvalidData), unapplied: true},
		{name: "an authorization that cannot be used", creds: func(sim *engagesim.Sim) scriptedCredentials {
			return scriptedCredentials{domain: fuzzDomain, tokenErr: &outcomes.AuthorizationError{Code: outcomes.CodeAuthorizationNotFound, Message: "no such authorization"}}
		}, outcome: string(outcomes.OnAuthorizationFailure), unapplied: true},
		{name: "a refresh after a 401 that fails", creds: func(sim *engagesim.Sim) scriptedCredentials {
			return scriptedCredentials{domain: fuzzDomain, token: "revoked", refreshErr: fmt.Errorf("refresh token: %w: 503", outcomes.ErrTokenUnavailable)}
		}, outcome: string(outcomes.OnError), unapplied: true, calls: 1},
		{name: "a token refused after the refresh too", creds: func(sim *engagesim.Sim) scriptedCredentials {
			return scriptedCredentials{domain: fuzzDomain, token: "revoked", refreshed: "revoked again"}
		}, outcome: string(outcomes.OnAuthorizationFailure), unapplied: true, calls: 2},
		{name: "rate limited", fault: engagesim.Fault{Op: engagesim.OpAppend, Status: http.StatusTooManyRequests, Times: 1},
			unapplied: true, calls: 1},
		{name: "a target the call cannot leave for", creds: func(sim *engagesim.Sim) scriptedCredentials {
			return scriptedCredentials{domain: "", token: sim.AccessToken(fuzzDomain)} // no domain: KindInvalidRequest
		}, unapplied: true},
		{name: "Engage said no", input: func(string) string { return appendInput("no-such-conversation", "hi") },
			outcome: string(outcomes.OnAppendMessageFailure), unapplied: false, calls: 1},
		{name: "Engage failed", fault: engagesim.Fault{Op: engagesim.OpAppend, Status: http.StatusServiceUnavailable, Times: 1},
			unapplied: false, calls: 1},
		{name: "no answer before the deadline", hang: true,
			timeout: 300 * time.Millisecond, outcome: string(outcomes.OnTimeout), unapplied: false, calls: 1},
		{name: "success", outcome: "onAppendMessageSuccess", unapplied: false, calls: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim := engagesim.New(engagesim.Config{})
			t.Cleanup(sim.Close)
			mem := &engageInMemory{sim: sim}
			creds := scriptedCredentials{domain: fuzzDomain, token: sim.AccessToken(fuzzDomain)}
			if tc.creds != nil {
				creds = tc.creds(sim)
			}
			id := sim.SeedConversation(fuzzDomain, engagesim.Conversation{Channel: "sms", CustomerAddress: "+15550001", BizAddress: "+15559999", Status: "active"})
			if tc.fault != (engagesim.Fault{}) {
				sim.InjectFault(tc.fault)
			}
			input := appendInput(id, "hi")
			if tc.input != nil {
				input = tc.input(id)
			}
			var transport http.RoundTripper = mem
			if tc.hang {
				transport = hangingEngage{mem}
			}
			x := nodes.NewExecutor(nodes.ExecutorOptions{Engage: engage.New(engage.Options{Transport: transport}), Credentials: creds})
			v, err := nodes.NewRegistry().Lookup("append-message", "1.4")
			if err != nil {
				t.Fatal(err)
			}
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			res := x.Execute(ctx, v, nodes.Request{Tenant: "acme", AuthorizationID: "a1", Input: json.RawMessage(input)})
			if tc.outcome != "" && string(res.Outcome) != tc.outcome {
				t.Fatalf("outcome %s %+v, want %s", res.Outcome, res.Error, tc.outcome)
			}
			if tc.outcome == "" && res.Error == nil {
				t.Fatalf("outcome %s without an error, want a failure", res.Outcome)
			}
			if res.Unapplied != tc.unapplied {
				t.Fatalf("%s %+v: Unapplied %v, want %v", res.Outcome, res.Error, res.Unapplied, tc.unapplied)
			}
			var appends int
			for _, c := range mem.take() {
				if c.method == http.MethodPost && strings.HasSuffix(c.path, "/messages") {
					appends++
				}
			}
			if appends != tc.calls {
				t.Fatalf("%d append calls reached Engage, want %d", appends, tc.calls)
			}
		})
	}
}

// A call the open circuit breaker refuses never leaves: it is Unapplied, so a retry with
// the same idempotency key runs again instead of replaying the refusal. The failure that
// tripped the breaker reached Engage, and is not.
func TestACallTheOpenBreakerRefusedIsUnapplied(t *testing.T) {
	t.Parallel()
	sim := engagesim.New(engagesim.Config{})
	t.Cleanup(sim.Close)
	mem := &engageInMemory{sim: sim}
	id := sim.SeedConversation(fuzzDomain, engagesim.Conversation{Channel: "sms", CustomerAddress: "+15550001", BizAddress: "+15559999", Status: "active"})
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpAppend, Status: http.StatusServiceUnavailable, Times: 1})
	client := engage.New(engage.Options{Transport: mem, Breaker: &engage.BreakerOptions{ConsecutiveFailures: 1, OpenFor: time.Hour}})
	x := nodes.NewExecutor(nodes.ExecutorOptions{Engage: client,
		Credentials: scriptedCredentials{domain: fuzzDomain, token: sim.AccessToken(fuzzDomain)}})
	v, err := nodes.NewRegistry().Lookup("append-message", "1.4")
	if err != nil {
		t.Fatal(err)
	}
	input := json.RawMessage(`{"conversationId":"` + id + `","channel":"sms","direction":"outbound","messageType":"text","text":"hi","timestamp":"` + wireTimestamp + `"}`)
	for i, want := range []struct {
		code      string
		unapplied bool
		calls     int
	}{
		{outcomes.CodeEngageUnavailable, false, 1}, // the 503 that trips the breaker
		{outcomes.CodeCircuitOpen, true, 0},        // refused before it left
	} {
		res := x.Execute(t.Context(), v, nodes.Request{Tenant: "acme", AuthorizationID: "a1", Input: input})
		if res.Outcome != outcomes.Failure || res.Error == nil || res.Error.Code != want.code {
			t.Fatalf("execution %d: %s %+v, want Failure %s", i+1, res.Outcome, res.Error, want.code)
		}
		if res.Unapplied != want.unapplied {
			t.Errorf("execution %d (%s): Unapplied %v, want %v", i+1, want.code, res.Unapplied, want.unapplied)
		}
		if n := len(mem.take()); n != want.calls {
			t.Errorf("execution %d: %d calls reached Engage, want %d", i+1, n, want.calls)
		}
	}
}
