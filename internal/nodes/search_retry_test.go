package nodes_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/nodes"
	"github.com/noderuntime/noderuntime/internal/outcomes"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// These tests run Search against the simulator over real HTTP on loopback, where a
// connection can be reset, and hold it to ENGAGE.md §2's retry rules: one repeat, inside
// the deadline, after a connection failure or a 502/503/504 and after nothing else; one
// refresh and one repeat after a 401.

// loopbackCredentials hands out tokens of a simulator served on loopback, and counts the
// refreshes.
type loopbackCredentials struct {
	sim       *engagesim.Sim
	mu        sync.Mutex
	token     string
	refreshes int
}

func (c *loopbackCredentials) credential() nodes.Credential {
	return nodes.Credential{AuthorizationID: "a1", BaseURL: c.sim.BaseURL(), Domain: fuzzDomain,
		AccessToken: secrets.New(c.token), ExpiresAt: time.Now().Add(time.Hour)}
}

func (c *loopbackCredentials) Token(context.Context, tenant.ID, string) (nodes.Credential, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.credential(), nil
}

func (c *loopbackCredentials) Refresh(context.Context, tenant.ID, string, secrets.Value) (nodes.Credential, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refreshes++
	c.token = c.sim.AccessToken(fuzzDomain)
	return c.credential(), nil
}

func (c *loopbackCredentials) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refreshes
}

// searchOnLoopback is a simulator on loopback with an active SMS conversation, and an
// executor that searches it.
type searchOnLoopback struct {
	sim   *engagesim.Sim
	creds *loopbackCredentials
	exec  *nodes.Executor
}

func newSearchOnLoopback(t *testing.T) *searchOnLoopback {
	t.Helper()
	sim := engagesim.Start(t, engagesim.Config{})
	sim.SeedConversation(fuzzDomain, engagesim.Conversation{Channel: "sms", CustomerAddress: "+15550001", BizAddress: "+15559999", Status: "active"})
	creds := &loopbackCredentials{sim: sim, token: sim.AccessToken(fuzzDomain)}
	tr := engage.NewTransport()
	t.Cleanup(tr.CloseIdleConnections)
	return &searchOnLoopback{sim: sim, creds: creds, exec: nodes.NewExecutor(nodes.ExecutorOptions{
		Engage: engage.New(engage.Options{Transport: tr}), Credentials: creds,
	})}
}

func (s *searchOnLoopback) run(t *testing.T, version string, timeout time.Duration) outcomes.Result {
	t.Helper()
	v, err := nodes.NewRegistry().Lookup("search-conversation", version)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	return s.exec.Execute(ctx, v, nodes.Request{Tenant: "acme", AuthorizationID: "a1", Input: json.RawMessage(smsSearch)})
}

func TestSearchRepeatsOnlyAConnectionFailureOrA502To504AndOnlyOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		fault      engagesim.Fault
		revoke     bool // the first token is revoked: Engage answers a real 401
		want       outcomes.Outcome
		wantCode   string
		wantStatus int // Engage's HTTP status in the error
		calls      int
		refreshes  int
	}{
		{name: "a reset connection is repeated", fault: engagesim.Fault{Reset: true, Times: 1},
			want: outcomes.ConversationActive, calls: 2},
		{name: "a connection reset twice is repeated once", fault: engagesim.Fault{Reset: true, Times: 2},
			want: outcomes.OnError, wantCode: outcomes.CodeEngageUnavailable, calls: 2},
		{name: "a 503 cut short is repeated", fault: engagesim.Fault{Status: 503, Malformed: true, Times: 1},
			want: outcomes.ConversationActive, calls: 2},
		{name: "a 504 is repeated", fault: engagesim.Fault{Status: 504, Times: 1},
			want: outcomes.ConversationActive, calls: 2},
		{name: "a 429 is not repeated", fault: engagesim.Fault{Status: 429, Times: 1},
			want: outcomes.OnError, wantCode: outcomes.CodeEngageRateLimited, wantStatus: 429, calls: 1},
		{name: "a 500 is not repeated", fault: engagesim.Fault{Status: 500, Times: 1},
			want: outcomes.OnError, wantCode: outcomes.CodeEngageUnavailable, wantStatus: 500, calls: 1},
		{name: "a 501 is not repeated", fault: engagesim.Fault{Status: 501, Times: 1},
			want: outcomes.OnError, wantCode: outcomes.CodeEngageUnavailable, wantStatus: 501, calls: 1},
		{name: "a 400 is not repeated", fault: engagesim.Fault{Status: 400, Times: 1},
			want: outcomes.OnError, wantCode: outcomes.CodeEngageRejected, wantStatus: 400, calls: 1},
		{name: "a 404 is not repeated", fault: engagesim.Fault{Status: 404, Times: 1},
			want: outcomes.NoConversationFound, calls: 1},
		{name: "a malformed 200 is not repeated", fault: engagesim.Fault{Malformed: true, Times: 1},
			want: outcomes.OnError, wantCode: outcomes.CodeEngageBadResponse, wantStatus: 200, calls: 1},
		{name: "a 401 is refreshed and repeated once", revoke: true,
			want: outcomes.ConversationActive, calls: 2, refreshes: 1},
		{name: "a 401 after the refresh is not repeated again", fault: engagesim.Fault{Status: 401, Times: 2},
			want: outcomes.OnAuthorizationFailure, wantCode: outcomes.CodeEngageUnauthorized, wantStatus: 401, calls: 2, refreshes: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSearchOnLoopback(t)
			if tc.revoke {
				s.sim.RevokeAccessToken(s.creds.token)
			}
			if tc.fault != (engagesim.Fault{}) {
				tc.fault.Op = engagesim.OpSearch
				s.sim.InjectFault(tc.fault)
			}
			res := s.run(t, "1.3", 10*time.Second)
			if res.Outcome != tc.want {
				t.Fatalf("outcome %s %+v, want %s", res.Outcome, res.Error, tc.want)
			}
			if tc.wantCode != "" && (res.Error == nil || res.Error.Code != tc.wantCode || res.Error.EngageStatus != tc.wantStatus) {
				t.Fatalf("error %+v, want code %s with Engage's status %d", res.Error, tc.wantCode, tc.wantStatus)
			}
			if n := s.sim.Calls(engagesim.OpSearch); n != tc.calls {
				t.Fatalf("%d searches reached Engage, want %d", n, tc.calls)
			}
			if n := s.creds.count(); n != tc.refreshes {
				t.Fatalf("%d refreshes, want %d", n, tc.refreshes)
			}
		})
	}
}

// The one repeat runs under the execution's deadline, not a new one: when the first call
// answers a 503 with time left and the repeat would answer after the deadline, the
// execution ends at the deadline with onTimeout, having called Engage twice.
func TestSearchsRepeatEndsAtTheExecutionsDeadline(t *testing.T) {
	t.Parallel()
	const deadline, latency = time.Second, 600 * time.Millisecond // one call fits, two do not
	for _, version := range []string{"1.0", "1.1", "1.3"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			s := newSearchOnLoopback(t)
			s.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: http.StatusServiceUnavailable, Latency: latency, Times: 2})
			start := time.Now()
			res := s.run(t, version, deadline)
			took := time.Since(start)
			if res.Outcome != outcomes.OnTimeout || res.Error == nil || res.Error.Code != outcomes.CodeTimeout {
				t.Fatalf("outcome %s %+v, want onTimeout", res.Outcome, res.Error)
			}
			if n := s.sim.Calls(engagesim.OpSearch); n != 2 {
				t.Fatalf("%d searches reached Engage, want 2 (the first 503 and its repeat)", n)
			}
			// Slack for a busy machine; the outcome above already tells a repeat under a
			// deadline of its own (onError, the second 503, at 2×latency).
			if took >= deadline+400*time.Millisecond {
				t.Fatalf("the execution took %s, past its deadline of %s", took, deadline)
			}
		})
	}
}
