package loginflow_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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

// confirmPage is a confirmation page as the callback writes it: the headline, and the
// login's state and code as hidden fields, HTML-escaped.
func confirmPage(state, code string) string {
	return "<h1>" + loginflow.ConfirmHeadline + "</h1><form method=\"post\">" +
		`<input type="hidden" name="state" value="` + html.EscapeString(state) + `">` +
		`<input type="hidden" name="code" value="` + html.EscapeString(code) + `">` +
		`<button name="action" value="connect">Connect</button></form>`
}

// The answer goes to the callback's own address with the login's state and code, as
// written before the page escaped them, in the form body only: the callback's query
// (which holds them too) is not repeated in the URL of the POST, which access logs see.
func TestFinishPostsTheUnescapedStateAndCodeInTheBodyOnly(t *testing.T) {
	const state, code = `st&te"<1>`, `c0de&amp;'2`
	posted := make(chan *http.Request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, confirmPage(state, code))
			return
		}
		if err := r.ParseForm(); err != nil {
			t.Errorf("parse form: %v", err)
		}
		posted <- r.Clone(context.Background())
		_, _ = io.WriteString(w, "added")
	}))
	defer srv.Close()
	resp, page, _, err := loginflow.Finish(t.Context(), srv.Client(), srv.URL+"/oauth/callback?code=q-code&state=q-state", "connect")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || page != "added" {
		t.Fatalf("got %d %q, want the POST's answer", resp.StatusCode, page)
	}
	p := <-posted
	if p.URL.Path != "/oauth/callback" || p.URL.RawQuery != "" {
		t.Errorf("posted to %s, want /oauth/callback without a query", p.URL)
	}
	for k, want := range map[string]string{"state": state, "code": code, "action": "connect"} {
		if got := p.PostForm.Get(k); got != want {
			t.Errorf("form %s = %q, want %q", k, got, want)
		}
	}
}

// A callback that does not show the confirmation page (another page, or an error status
// even with the headline in it) is not answered: Finish fails and posts nothing.
func TestFinishDoesNotAnswerACallbackThatDoesNotAskToConfirm(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"another page": func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `<h1>Something went wrong</h1><input type="hidden" name="state" value="s">`)
		},
		"an error status": func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, confirmPage("s", "c"))
		},
	} {
		t.Run(name, func(t *testing.T) {
			var posts atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet {
					posts.Add(1)
				}
				h(w, r)
			}))
			defer srv.Close()
			resp, _, _, err := loginflow.Finish(t.Context(), srv.Client(), srv.URL+"/oauth/callback?code=c&state=s", "connect")
			if err == nil {
				t.Fatalf("answered %d; want an error", resp.StatusCode)
			}
			if n := posts.Load(); n != 0 {
				t.Fatalf("%d answers posted", n)
			}
		})
	}
}

// A callback that does not parse (a control character in it) fails without printing the
// login either: url.Parse's error quotes the whole URL, its query included.
func TestAnUnparsableCallbackDoesNotPrintTheLoginCode(t *testing.T) {
	const code, state = "CANARY-login-code-9d02", "CANARY-state-41fe"
	_, _, _, err := loginflow.Finish(t.Context(), http.DefaultClient, "http://127.0.0.1:1/oauth/callback?code="+code+"&state="+state+"\n", "connect")
	if err == nil {
		t.Fatal("an unparsable callback was opened")
	}
	if strings.Contains(err.Error(), code) || strings.Contains(err.Error(), state) {
		t.Fatalf("the error prints the login: %v", err)
	}
}
