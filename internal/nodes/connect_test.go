package nodes_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/nodes"
	"github.com/noderuntime/noderuntime/internal/outcomes"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// silentEngage accepts TCP connections and never says a word, so a TLS handshake with it
// never completes. It counts the connections.
func silentEngage(t *testing.T) (baseURL string, conns *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = &atomic.Int32{}
	held := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			held <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-held:
				c.Close()
			default:
				return
			}
		}
	})
	return "https://" + ln.Addr().String() + "/api/v1", conns
}

// credentialsFor hands out a token for an Engage at baseURL.
type credentialsFor struct{ baseURL string }

func (c credentialsFor) Token(context.Context, tenant.ID, string) (nodes.Credential, error) {
	return nodes.Credential{AuthorizationID: "a1", BaseURL: c.baseURL, Domain: fuzzDomain, AccessToken: secrets.New("tok"), ExpiresAt: time.Now().Add(time.Hour)}, nil
}

func (c credentialsFor) Refresh(ctx context.Context, t tenant.ID, id string, _ secrets.Value) (nodes.Credential, error) {
	return c.Token(ctx, t, id)
}

// A connection that cannot be set up in the transport's own time (here its TLS
// handshake timeout) is a connection failure while the execution still has time, not
// onTimeout, which means the execution's deadline passed (ENGAGE.md §2): Search retries
// it once, a node that may change something does not and takes its failure edge.
func TestAConnectTimeoutWithTimeLeftIsAConnectionFailure(t *testing.T) {
	t.Parallel()
	base, conns := silentEngage(t)
	tr := engage.NewTransport()
	tr.TLSHandshakeTimeout = 50 * time.Millisecond
	t.Cleanup(tr.CloseIdleConnections)
	// Three failures in a row do not open the breaker (it wants five), so each case
	// sees Engage as it is.
	exec := nodes.NewExecutor(nodes.ExecutorOptions{
		Engage:      engage.New(engage.Options{Transport: tr}),
		Credentials: credentialsFor{base},
	})
	reg := nodes.NewRegistry()
	for _, c := range []struct {
		node, version, input string
		outcome              outcomes.Outcome
		conns                int32
	}{
		{"search-conversation", "1.3", `{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001"}`, "onError", 2},
		{"close-conversation", "1.0", `{"conversationId":"c1"}`, "onFailure", 1},
	} {
		v, err := reg.Lookup(c.node, c.version)
		if err != nil {
			t.Fatal(err)
		}
		before := conns.Load()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		res := exec.Execute(ctx, v, nodes.Request{Tenant: "acme", AuthorizationID: "a1", Input: []byte(c.input)})
		cancel()
		if res.Outcome != c.outcome || res.Error == nil || res.Error.Code != outcomes.CodeEngageUnavailable {
			t.Errorf("%s %s: outcome %q, error %+v; want %s with %s", c.node, c.version, res.Outcome, res.Error, c.outcome, outcomes.CodeEngageUnavailable)
		}
		if n := conns.Load() - before; n != c.conns {
			t.Errorf("%s %s: %d connections, want %d", c.node, c.version, n, c.conns)
		}
	}

	// The execution's own deadline passing while connecting is onTimeout.
	v, err := reg.Lookup("close-conversation", "1.0")
	if err != nil {
		t.Fatal(err)
	}
	slow := engage.NewTransport()
	slow.TLSHandshakeTimeout = time.Minute
	t.Cleanup(slow.CloseIdleConnections)
	exec = nodes.NewExecutor(nodes.ExecutorOptions{
		Engage:      engage.New(engage.Options{Transport: slow}),
		Credentials: credentialsFor{base},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	res := exec.Execute(ctx, v, nodes.Request{Tenant: "acme", AuthorizationID: "a1", Input: []byte(`{"conversationId":"c1"}`)})
	if res.Outcome != outcomes.OnTimeout {
		t.Errorf("deadline while connecting: outcome %q, error %+v; want onTimeout", res.Outcome, res.Error)
	}
}
