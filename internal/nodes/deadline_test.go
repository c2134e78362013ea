package nodes_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/nodes"
)

// lateGateway answers every call with a 502 in Engage's envelope, but only once the
// caller's deadline has passed.
type lateGateway struct{ calls atomic.Int32 }

func (g *lateGateway) RoundTrip(r *http.Request) (*http.Response, error) {
	g.calls.Add(1)
	<-r.Context().Done()
	rec := httptest.NewRecorder()
	rec.WriteHeader(http.StatusBadGateway)
	_, _ = rec.WriteString(`{"status":502,"code":5002,"description":"bad gateway"}`)
	return rec.Result(), nil
}

// Search's one repeat happens inside the deadline (ENGAGE.md §2): a 502 that comes back
// after the deadline passed is not repeated, whatever the node or version.
func TestSearchIsNotRepeatedOnceTheDeadlineHasPassed(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"1.0", "1.1", "1.3"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			g := &lateGateway{}
			x := nodes.NewExecutor(nodes.ExecutorOptions{Engage: engage.New(engage.Options{Transport: g}),
				Credentials: scriptedCredentials{domain: fuzzDomain, token: "tok"}})
			v, err := nodes.NewRegistry().Lookup("search-conversation", version)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			res := x.Execute(ctx, v, nodes.Request{Tenant: "acme", AuthorizationID: "a1",
				Input: json.RawMessage(`{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001"}`)})
			if res.Error == nil {
				t.Fatalf("outcome %s without an error", res.Outcome)
			}
			if n := g.calls.Load(); n != 1 {
				t.Fatalf("%d calls, want 1: the search was repeated after the deadline", n)
			}
		})
	}
}
