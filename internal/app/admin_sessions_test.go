package app_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/database/dbtest"
)

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// An admin session is checked against the signed-out sessions in Postgres; while
// Postgres is out of reach a signed-in page answers 503 and asks to try again, rather
// than a 500 or a sign-in page that would replace the session. Once Postgres is back,
// the same session goes on.
func TestAdminPagesWithoutPostgresAskToTryAgainAndKeepTheSession(t *testing.T) {
	sw := dbtest.NewSwitch(t, dbtest.NewURL(t))
	_, srv := serveApp(t, testConfig(t, sw.URL), quietLogger())
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	page := func(method, path string, form url.Values) (int, string) {
		t.Helper()
		var resp *http.Response
		var err error
		if method == "POST" {
			resp, err = c.PostForm(srv.URL+path, form)
		} else {
			resp, err = c.Get(srv.URL + path)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	_, login := page("GET", "/admin/login", nil)
	m := csrfField.FindStringSubmatch(login)
	if m == nil {
		t.Fatalf("no CSRF token on the sign-in page:\n%s", login)
	}
	if code, _ := page("POST", "/admin/login", url.Values{"csrf": {m[1]}, "apiKey": {"key"}}); code != http.StatusSeeOther {
		t.Fatalf("sign in: %d", code)
	}
	if code, body := page("GET", "/admin/", nil); code != http.StatusOK || !strings.Contains(body, "acme") {
		t.Fatalf("signed in: %d", code)
	}
	sw.Set(false)
	for _, path := range []string{"/admin/", "/admin/login"} {
		if code, body := page("GET", path, nil); code != http.StatusServiceUnavailable || !strings.Contains(body, "Try again in a moment") {
			t.Fatalf("%s without Postgres: %d\n%s", path, code, body)
		}
	}
	sw.Set(true)
	if code, body := page("GET", "/admin/", nil); code != http.StatusOK || !strings.Contains(body, "acme") {
		t.Fatalf("Postgres back: %d, want the same session's list", code)
	}
}
