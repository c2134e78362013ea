package loginflow_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/loginflow"
)

// The callback's URL holds the login's code and state: a callback that cannot be reached
// must not print them with its error (net/http's *url.Error names the whole URL), which
// `noderuntime dev` writes to stderr.
func TestAnUnreachableCallbackDoesNotPrintTheLoginCode(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens there any more
	const code, state = "CANARY-login-code-5e1b", "CANARY-state-77aa"
	_, _, _, err := loginflow.Finish(t.Context(), http.DefaultClient, srv.URL+"/oauth/callback?code="+code+"&state="+state, "connect")
	if err == nil {
		t.Fatal("a closed server answered")
	}
	if strings.Contains(err.Error(), code) || strings.Contains(err.Error(), state) {
		t.Fatalf("the error prints the login: %v", err)
	}
	if !strings.Contains(err.Error(), "/oauth/callback") {
		t.Fatalf("the error does not say which address failed: %v", err)
	}
}
