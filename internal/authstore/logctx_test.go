package authstore_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/engagesim"
)

type requestKey struct{}

// ctxHandler names the request of the context a line is logged with, as the HTTP
// layer's handler does (httpapi.LogRequestIDs).
type ctxHandler struct {
	slog.Handler
}

func (h ctxHandler) Handle(ctx context.Context, r slog.Record) error {
	if id, ok := ctx.Value(requestKey{}).(string); ok {
		r.AddAttrs(slog.String("requestId", id))
	}
	return h.Handler.Handle(ctx, r)
}

// Every line the store logs while serving a call is logged with the call's context, so
// the request's ID finds it: also the refusal of a base URL off the allowlist.
func TestTheAllowlistRefusalIsLoggedWithTheCallersContext(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	auth := e.createCC(e.store(), acme, "made while allowed")
	var (
		mu  sync.Mutex
		buf bytes.Buffer
	)
	h := ctxHandler{slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil)}
	shrunk := e.store(func(o *authstore.Options) {
		o.AllowedBaseURLs = []string{"https://api-us-site-1.imiengage.io/api/v1"}
		o.Logger = slog.New(h)
	})
	ctx := context.WithValue(ctxT(t), requestKey{}, "req-allowlist")
	_, _ = shrunk.Token(ctx, acme, auth.ID)
	mu.Lock()
	defer mu.Unlock()
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.Contains(line, "not on the allowlist") {
			if !strings.Contains(line, `"requestId":"req-allowlist"`) {
				t.Fatalf("logged without the caller's context: %s", line)
			}
			return
		}
	}
	t.Fatalf("no refusal logged:\n%s", buf.String())
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
