package app_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/database/dbtest"
)

// NODERUNTIME_PUBLIC_URL says whether the service is reached over https: then the admin
// session cookie is Secure (a __Host- cookie), over http it is not, or a browser on
// http://localhost would never send it back.
func TestTheAdminSessionCookieIsSecureExactlyWhenThePublicURLIsHTTPS(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, publicURL string
		secure          bool
	}{
		{"over https", "https://noderuntime.example/", true},
		{"over http", "http://localhost:8080", false},
		{"without a public URL", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, dbtest.NewURL(t))
			cfg.PublicURL = tc.publicURL
			_, srv := serveApp(t, cfg, quietLogger())
			c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := c.Get(srv.URL + "/admin/login")
			if err != nil {
				t.Fatal(err)
			}
			var page strings.Builder
			_, _ = io.Copy(&page, resp.Body)
			resp.Body.Close()
			m := csrfField.FindStringSubmatch(page.String())
			if m == nil {
				t.Fatalf("no CSRF token on the sign-in page:\n%s", page.String())
			}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/admin/login", strings.NewReader(url.Values{"csrf": {m[1]}, "apiKey": {"key"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for _, ck := range resp.Cookies() {
				req.AddCookie(ck)
			}
			resp, err = c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("sign in: %d", resp.StatusCode)
			}
			var session *http.Cookie
			for _, ck := range resp.Cookies() {
				if ck.MaxAge > 0 {
					session = ck
				}
			}
			if session == nil {
				t.Fatalf("signing in set no session cookie: %v", resp.Header["Set-Cookie"])
			}
			if session.Secure != tc.secure || strings.HasPrefix(session.Name, "__Host-") != tc.secure {
				t.Fatalf("session cookie %q Secure=%v, want Secure=%v", session.Name, session.Secure, tc.secure)
			}
		})
	}
}
