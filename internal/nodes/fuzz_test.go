package nodes_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/nodes"
	"github.com/noderuntime/noderuntime/internal/outcomes"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

const fuzzDomain = "acme-domain"

// engageInMemory serves the engage client from the simulator's handler, without a
// network, and records what each call sent and got.
type engageInMemory struct {
	sim   *engagesim.Sim
	mu    sync.Mutex
	calls []engageCall
}

type engageCall struct {
	method, path string
	body         []byte
	status       int
	answer       []byte
}

func (e *engageInMemory) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	rec := httptest.NewRecorder()
	e.sim.Handler().ServeHTTP(rec, r)
	e.mu.Lock()
	e.calls = append(e.calls, engageCall{method: r.Method, path: r.URL.Path, body: body, status: rec.Code, answer: rec.Body.Bytes()})
	e.mu.Unlock()
	return rec.Result(), nil
}

func (e *engageInMemory) take() []engageCall {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.calls
	e.calls = nil
	return out
}

// fixedCredentials hands out one valid token of the simulator for every authorization.
type fixedCredentials struct{ token secrets.Value }

func (c fixedCredentials) Token(context.Context, tenant.ID, string) (nodes.Credential, error) {
	return nodes.Credential{AuthorizationID: "a1", BaseURL: "http://engage.test/api/v1", Domain: fuzzDomain, AccessToken: c.token, ExpiresAt: time.Now().Add(time.Hour)}, nil
}

func (c fixedCredentials) Refresh(ctx context.Context, t tenant.ID, id string, _ secrets.Value) (nodes.Credential, error) {
	return c.Token(ctx, t, id)
}

// FuzzNodeInput runs every node version's input decoder, and what follows it, on one
// input: the execution against an in-memory simulator. Whatever the input, every
// version answers an outcome it declares, with exactly its output variables, never an
// internal error (a panic is one); onInvalidData never calls Engage; and what does reach
// Engage is valid JSON whose shape Engage accepts (the simulator decodes it strictly).
// Seeds: testdata/fuzz/FuzzNodeInput.
func FuzzNodeInput(f *testing.F) {
	f.Add([]byte(`{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001"}`))
	sim := engagesim.New(engagesim.Config{})
	for _, status := range []string{"active", "closed"} {
		sim.SeedConversation(fuzzDomain, engagesim.Conversation{ID: "conv-" + status, Channel: "sms", CustomerAddress: "+15550001",
			BizAddress: "+15559999", Status: status, Participants: []string{"agent-7"}})
	}
	engageSim := &engageInMemory{sim: sim}
	exec := nodes.NewExecutor(nodes.ExecutorOptions{
		Engage:      engage.New(engage.Options{Transport: engageSim}),
		Credentials: fixedCredentials{token: secrets.New(sim.AccessToken(fuzzDomain))},
	})
	versions := nodes.NewRegistry().Versions()
	f.Fuzz(func(t *testing.T, input []byte) {
		if !utf8.Valid(input) {
			return // the HTTP edge refuses a body that is not UTF-8 (httpapi.DecodeJSON)
		}
		for _, v := range versions {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			res := exec.Execute(ctx, v, nodes.Request{Tenant: "acme", AuthorizationID: "a1", Input: input})
			cancel()
			calls := engageSim.take()
			if !v.Declares(res.Outcome) {
				t.Fatalf("%s: outcome %q is not one it declares", v, res.Outcome)
			}
			if res.Error != nil && res.Error.Code == outcomes.CodeInternal {
				t.Fatalf("%s: internal error: %s", v, res.Error.Message)
			}
			if got := slices.Sorted(maps.Keys(res.Output)); !slices.Equal(got, slices.Sorted(slices.Values(v.Outputs()))) {
				t.Fatalf("%s: outputs %v, want %v", v, got, v.Outputs())
			}
			if res.Outcome == outcomes.OnInvalidData {
				if len(calls) != 0 {
					t.Fatalf("%s: onInvalidData after calling Engage: %s %s", v, calls[0].method, calls[0].path)
				}
				if res.Error == nil || res.Error.Code != outcomes.CodeInvalidInput || !utf8.ValidString(res.Error.Message) {
					t.Fatalf("%s: onInvalidData with error %+v", v, res.Error)
				}
				continue
			}
			if len(calls) != 1 {
				t.Fatalf("%s: %s after %d Engage calls, want 1", v, res.Outcome, len(calls))
			}
			c := calls[0]
			if len(c.body) > 0 && (!json.Valid(c.body) || !utf8.Valid(c.body)) {
				t.Fatalf("%s: sent Engage a body that is not valid JSON: %q", v, c.body)
			}
			// A 400 may be Engage's business rule (a message of another channel than the
			// conversation's); one about the body's shape is a wire mistake of ours.
			if c.status == http.StatusBadRequest && bytes.Contains(c.answer, []byte("invalid JSON body")) {
				t.Fatalf("%s: Engage refused the body the decoder let through: %s %s %s\n%s", v, c.method, c.path, c.body, c.answer)
			}
		}
	})
}
