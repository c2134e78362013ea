package nodes_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/nodes"
	"github.com/noderuntime/noderuntime/internal/outcomes"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
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
			// The store's AuthorizationError says why the authorization cannot be used; the
			// node passes that message on as it is.
			if ae, ok := errors.AsType[*outcomes.AuthorizationError](tc.err); ok && res.Error.Message != ae.Message {
				t.Fatalf("message %q, want the authorization error's %q", res.Error.Message, ae.Message)
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

// panickingCredentials panics when asked for a token: a bug in the credential store.
type panickingCredentials struct{}

func (panickingCredentials) Token(context.Context, tenant.ID, string) (nodes.Credential, error) {
	panic("credential store bug")
}

func (panickingCredentials) Refresh(context.Context, tenant.ID, string, secrets.Value) (nodes.Credential, error) {
	panic("credential store bug")
}

// A panic during an execution is the runtime failing (ENGAGE.md §2): the node answers
// onError internal with every output variable of its version, the panic goes to the
// log, and the process carries on.
func TestAPanicDuringAnExecutionIsOnErrorAndIsLogged(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ node, version, input string }{
		{"close-conversation", "1.0", `{"conversationId":"c-1"}`},
		{"search-conversation", "1.3", `{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001"}`},
	} {
		t.Run(tc.node, func(t *testing.T) {
			t.Parallel()
			var log bytes.Buffer
			x := nodes.NewExecutor(nodes.ExecutorOptions{Engage: engage.New(engage.Options{}), Credentials: panickingCredentials{},
				Logger: slog.New(slog.NewJSONHandler(&log, nil))})
			v, err := nodes.NewRegistry().Lookup(tc.node, tc.version)
			if err != nil {
				t.Fatal(err)
			}
			res := x.Execute(t.Context(), v, nodes.Request{Tenant: "acme", AuthorizationID: "a1", Input: json.RawMessage(tc.input)})
			if res.Outcome != outcomes.OnError || res.Error == nil || res.Error.Code != outcomes.CodeInternal {
				t.Fatalf("outcome %s %+v, want onError internal", res.Outcome, res.Error)
			}
			if strings.Contains(res.Error.Message, "credential store bug") {
				t.Errorf("message %q shows the panic to the flow", res.Error.Message)
			}
			if got := slices.Sorted(maps.Keys(res.Output)); !slices.Equal(got, slices.Sorted(slices.Values(v.Outputs()))) {
				t.Errorf("output variables %v, want %v", got, v.Outputs())
			}
			if !strings.Contains(log.String(), "node execution panicked") || !strings.Contains(log.String(), "credential store bug") {
				t.Errorf("the panic was not logged: %s", log.String())
			}
		})
	}
}

// Only a failure of the runtime's own (internal) becomes `canceled` when the caller has
// left: an execution whose input or authorization decided its outcome keeps that
// outcome and its code, and is counted as it, whether or not anyone reads the answer.
func TestACallerLeavingTurnsOnlyAnInternalFailureIntoCanceled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		creds   nodes.Credentials
		input   string
		outcome outcomes.Outcome
		code    string
	}{
		{"invalid input", scriptedCredentials{domain: fuzzDomain, token: "t"}, `{"conversationId":""}`,
			outcomes.OnInvalidData, outcomes.CodeInvalidInput},
		{"an authorization needing re-authorization",
			scriptedCredentials{tokenErr: &outcomes.AuthorizationError{Code: outcomes.CodeNeedsReauthorization, Message: "re-authorize it"}},
			`{"conversationId":"c-1"}`, outcomes.OnAuthorizationFailure, outcomes.CodeNeedsReauthorization},
		{"the credential store failing", scriptedCredentials{tokenErr: errors.New("dial tcp 10.0.0.5:5432: connection refused")},
			`{"conversationId":"c-1"}`, outcomes.OnError, outcomes.CodeCanceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := nodes.NewRegistry()
			preg := prometheus.NewRegistry()
			x := nodes.NewExecutor(nodes.ExecutorOptions{Engage: engage.New(engage.Options{}), Credentials: tc.creds,
				Metrics: nodes.NewMetrics(preg, reg, nil)})
			v, err := reg.Lookup("close-conversation", "1.0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, leave := context.WithCancel(t.Context())
			leave() // the caller has left
			res := x.Execute(ctx, v, nodes.Request{Tenant: "acme", AuthorizationID: "a1", Input: json.RawMessage(tc.input)})
			if res.Outcome != tc.outcome || res.Error == nil || res.Error.Code != tc.code {
				t.Fatalf("outcome %s %+v, want %s %s", res.Outcome, res.Error, tc.outcome, tc.code)
			}
			counted := executionsCounted(t, preg, "close-conversation", "1.0", tc.outcome)
			if want := map[bool]float64{true: 0, false: 1}[tc.code == outcomes.CodeCanceled]; counted != want {
				t.Errorf("noderuntime_executions_total{outcome=%q} %v, want %v", tc.outcome, counted, want)
			}
		})
	}
}

// executionsCounted is noderuntime_executions_total of one node version and outcome.
func executionsCounted(t *testing.T, g prometheus.Gatherer, node, version string, o outcomes.Outcome) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "noderuntime_executions_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["node"] == node && labels["version"] == version && labels["outcome"] == string(o) {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no noderuntime_executions_total{node=%q,version=%q,outcome=%q}", node, version, o)
	return 0
}
