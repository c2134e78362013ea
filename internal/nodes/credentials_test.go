package nodes_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/nodes"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// What the credential store answers decides the outcome before Engage is called
// (ENGAGE.md §2, docs/nodes.md): an authorization that cannot be used is
// onAuthorizationFailure with its code, the execution's deadline onTimeout, and the
// token endpoint failing (its own timeout included) onError token_unavailable.
func TestACredentialStoreFailureLeadsToItsOutcomeAndCode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		err      error
		deadline bool // the execution's deadline has passed when the store answers
		outcome  outcomes.Outcome
		code     string
	}{
		{"an authorization needing re-authorization", &outcomes.AuthorizationError{Code: outcomes.CodeNeedsReauthorization, Message: "re-authorize it"},
			false, outcomes.OnAuthorizationFailure, outcomes.CodeNeedsReauthorization},
		{"an authorization error without a code", fmt.Errorf("lookup: %w", &outcomes.AuthorizationError{Message: "no such authorization"}),
			false, outcomes.OnAuthorizationFailure, outcomes.CodeAuthorizationNotFound},
		{"the token endpoint failing", fmt.Errorf("refresh: %w: HTTP 503", outcomes.ErrTokenUnavailable),
			false, outcomes.OnError, outcomes.CodeTokenUnavailable},
		{"the token endpoint's own timeout with time left", fmt.Errorf("refresh: %w: %w", outcomes.ErrTokenUnavailable, context.DeadlineExceeded),
			false, outcomes.OnError, outcomes.CodeTokenUnavailable},
		{"the execution's deadline passing", fmt.Errorf("refresh: %w", context.DeadlineExceeded),
			true, outcomes.OnTimeout, outcomes.CodeTimeout},
		{"the execution's deadline passing while the token endpoint fails", fmt.Errorf("refresh: %w: %w", outcomes.ErrTokenUnavailable, context.DeadlineExceeded),
			true, outcomes.OnTimeout, outcomes.CodeTimeout},
		{"the execution's deadline passing while the store fails", errors.New("canceling statement due to user request"),
			true, outcomes.OnTimeout, outcomes.CodeTimeout},
		{"the store unreachable", errors.New("dial tcp 10.0.0.5:5432: connection refused"),
			false, outcomes.OnError, outcomes.CodeInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim := engagesim.New(engagesim.Config{})
			t.Cleanup(sim.Close)
			mem := &engageInMemory{sim: sim}
			x := nodes.NewExecutor(nodes.ExecutorOptions{Engage: engage.New(engage.Options{Transport: mem}),
				Credentials: scriptedCredentials{domain: fuzzDomain, tokenErr: tc.err}})
			v, err := nodes.NewRegistry().Lookup("close-conversation", "1.0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if tc.deadline {
				var c2 context.CancelFunc
				ctx, c2 = context.WithDeadline(ctx, time.Now().Add(-time.Second))
				defer c2()
			}
			res := x.Execute(ctx, v, nodes.Request{Tenant: "acme", AuthorizationID: "a1", Input: json.RawMessage(`{"conversationId":"c-1"}`)})
			if res.Outcome != tc.outcome || res.Error == nil || res.Error.Code != tc.code {
				t.Fatalf("outcome %s %+v, want %s %s", res.Outcome, res.Error, tc.outcome, tc.code)
			}
			if !res.Unapplied {
				t.Fatal("a failure before any call is not marked unapplied")
			}
			if calls := mem.take(); len(calls) != 0 {
				t.Fatalf("%d Engage calls, want none", len(calls))
			}
		})
	}
}
