package e2e

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/loginflow"
)

// publicRoutes are the routes anyone may call, on purpose: probes, the metrics (on their
// own port in production), the OAuth callback and its confirmation form (the single-use
// state, and the sealed code, are their credentials; TestTheOAuthCallback... covers
// them) and the admin sign-in itself.
var publicRoutes = map[string]bool{
	"GET /healthz":         true,
	"GET /readyz":          true,
	"GET /metrics":         true,
	"GET /oauth/callback":  true,
	"POST /oauth/callback": true,
	"GET /admin/login":     true,
	"POST /admin/login":    true,
}

// routes lists the router's routes as "METHOD /pattern".
func routes(t *testing.T, r chi.Routes) []string {
	t.Helper()
	var out []string
	err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		route = strings.ReplaceAll(strings.TrimSuffix(route, "/*"), "/*/", "/")
		out = append(out, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var routeParam = regexp.MustCompile(`\{[^}]+\}`)

// TestEveryRouteRefusesMissingKeysWrongKeysAndAnotherTenantsIDs walks the real router:
// every /v1 route answers 401 without an API key and with a wrong one; every route with
// an {id} answers another tenant's authorization exactly as a missing one (404) and
// leaves it as it was; every admin page refuses a caller without a session (GET: to the
// sign-in page, POST: 403) and answers 404 for another tenant's ID. A route that is in
// none of these classes fails the test until someone decides what it is.
func TestEveryRouteRefusesMissingKeysWrongKeysAndAnotherTenantsIDs(t *testing.T) {
	s := startService(t, serviceOptions{})
	sim := s.sims[0]
	globexCC := createAuthorization(t, s.client, s.url, globexKey, clientCredentials("globex's", sim.BaseURL()))
	globexLogin, _ := startAuthorization(t, s.client, s.url, globexKey, webexLogin("globex's login", sim.BaseURL()))
	s.createClientCredentials("acme's", sim)
	missing := "5b0e9a4c-3d2f-4b6a-8e1c-7f9d0a2b4c6e"
	admin := s.signIn(acmeKey)

	fill := func(route, id string) string {
		return routeParam.ReplaceAllStringFunc(route, func(p string) string {
			switch p {
			case "{id}":
				return id
			case "{node}":
				return "search-conversation"
			case "{version}":
				return "1.3"
			}
			t.Fatalf("route %s: no value for %s; teach this test what it is", route, p)
			return ""
		})
	}
	list := routes(t, s.app.Routes())
	if len(list) < 15 {
		t.Fatalf("only %d routes walked: %v", len(list), list)
	}
	for _, mr := range list {
		method, route, _ := strings.Cut(mr, " ")
		t.Run(mr, func(t *testing.T) {
			switch {
			case publicRoutes[mr]:
			case strings.HasPrefix(route, "/v1/"):
				var body any
				if method == http.MethodPost {
					body = map[string]any{}
				}
				for _, key := range []string{"", "not-an-api-key"} {
					resp, raw := s.do(method, fill(route, globexCC), key, body, nil)
					if resp.StatusCode != http.StatusUnauthorized || problemCode(raw) != "unauthorized" {
						t.Errorf("key %q: %d %s, want 401 unauthorized", key, resp.StatusCode, raw)
					}
				}
				if strings.Contains(route, "{id}") {
					for _, foreign := range []string{globexCC, globexLogin} {
						resp, raw := s.do(method, fill(route, foreign), acmeKey, body, nil)
						missingResp, missingRaw := s.do(method, fill(route, missing), acmeKey, body, nil)
						if resp.StatusCode != http.StatusNotFound || problemCode(raw) != "not_found" || problemDetail(raw) != problemDetail(missingRaw) || missingResp.StatusCode != http.StatusNotFound {
							t.Errorf("another tenant's ID: %d %s; a missing one: %d %s; want the same 404", resp.StatusCode, raw, missingResp.StatusCode, missingRaw)
						}
					}
				}
			case strings.HasPrefix(route, "/admin/"):
				anonymous := newBrowser(t)
				resp, _ := send(t, anonymous, method, s.url+fill(route, globexCC), "", nil, nil)
				// A page, or a sign-out (nothing to sign out), sends the browser to sign in;
				// any other form is refused.
				toSignIn := method == http.MethodGet || mr == "POST /admin/logout"
				switch {
				case toSignIn && (resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/login"):
					t.Errorf("without a session: %d to %q, want 303 to /admin/login", resp.StatusCode, resp.Header.Get("Location"))
				case !toSignIn && resp.StatusCode != http.StatusForbidden:
					t.Errorf("without a session: %d, want 403", resp.StatusCode)
				}
				if strings.Contains(route, "{id}") {
					if resp, page := admin.submit(method, fill(route, globexCC), nil); resp.StatusCode != http.StatusNotFound {
						t.Errorf("another tenant's ID with a session: %d\n%s", resp.StatusCode, page)
					}
				}
			default:
				t.Errorf("route %s is neither public, under /v1 nor under /admin/: decide who may call it", mr)
			}
		})
	}

	// An execution naming another tenant's authorization: the answer of a missing one.
	foreign, _ := s.execute(search(globexCC, 2000), nil)
	absent, _ := s.execute(search(missing, 2000), nil)
	if foreign.Outcome != "onAuthorizationFailure" || foreign.code() != "authorization_not_found" || foreign.Error.Message != absent.Error.Message {
		t.Errorf("an execution with another tenant's authorization: %s %+v; with a missing one: %+v", foreign.Outcome, foreign.Error, absent.Error)
	}
	// Nothing the refused requests named changed.
	for id, want := range map[string]string{globexCC: "active", globexLogin: "pending"} {
		resp, raw := s.do(http.MethodGet, "/v1/authorizations/"+id, globexKey, nil, nil)
		var got struct{ Status string }
		if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &got) != nil || got.Status != want {
			t.Errorf("globex's %s after the refused requests: %d %s, want status %s", id, resp.StatusCode, raw, want)
		}
	}
	if a, _ := s.execute(search(globexCC, 2000), nil); a.Outcome != "onAuthorizationFailure" {
		t.Errorf("acme can use globex's authorization: %s", a.Outcome)
	}
}

// TestTheOAuthCallbackRejectsReplayedForgedAndExpiredStateAndRedirectsNowhere: a
// callback URL works once; replayed, with a forged state or after the state expired it
// is refused with a page that says so, changes nothing and exchanges no code. No
// callback answer redirects, whatever parameters it carries, and every redirect of the
// login goes to the configured Webex host or back to the service's own pages.
func TestTheOAuthCallbackRejectsReplayedForgedAndExpiredStateAndRedirectsNowhere(t *testing.T) {
	s := startService(t, serviceOptions{})
	sim := s.sims[0]
	webexHost := must(url.Parse(sim.AuthorizeURL())).Host
	checkAuthorizeURL := func(raw string) {
		t.Helper()
		u, err := url.Parse(raw)
		if err != nil || u.Host != webexHost || u.Query().Get("redirect_uri") != s.url+"/oauth/callback" {
			t.Fatalf("authorize URL %q: want host %s and redirect_uri %s/oauth/callback", raw, webexHost, s.url)
		}
	}
	callback := func(raw string) (int, string) {
		t.Helper()
		resp, page := send(t, s.client, http.MethodGet, raw, "", nil, nil)
		if resp.StatusCode/100 == 3 || resp.Header.Get("Location") != "" {
			t.Fatalf("the callback redirected (%d) to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		return resp.StatusCode, string(page)
	}
	exchanges := func() int { return sim.Grants(engagesim.GrantAuthorizationCode) }

	id, authorizeURL := startAuthorization(t, s.client, s.url, acmeKey, webexLogin("replayed", sim.BaseURL()))
	checkAuthorizeURL(authorizeURL)
	back := must(engagesim.SignIn(t.Context(), authorizeURL, userName, userPassword))
	// The callback stores nothing before the person confirms, on a page that names the
	// tenant; then it works once.
	if status, page := callback(back.String()); status != http.StatusOK || !strings.Contains(page, loginflow.ConfirmHeadline) || !strings.Contains(page, "tenant acme") {
		t.Fatalf("the first use: %d\n%s", status, page)
	}
	if _, raw := s.do(http.MethodGet, "/v1/authorizations/"+id, acmeKey, nil, nil); !strings.Contains(string(raw), `"status":"pending"`) {
		t.Fatalf("the callback stored the login before it was confirmed: %s", raw)
	}
	resp, page, _, err := loginflow.Finish(t.Context(), s.client, back.String(), "connect")
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" || !strings.Contains(page, "added") {
		t.Fatalf("confirmed: %v %v\n%s", resp, err, page)
	}
	before := exchanges()
	if status, page := callback(back.String()); status != http.StatusBadRequest || !strings.Contains(page, "already used") {
		t.Fatalf("replayed: %d\n%s", status, page)
	}
	if exchanges() != before {
		t.Fatal("a replayed callback exchanged its code again")
	}

	forged := url.Values{"state": {"forged-state-0123456789abcdef"}, "code": {"forged-code"},
		"redirect_uri": {"http://evil.example/steal"}, "next": {"http://evil.example/"}, "return_to": {"//evil.example"}}
	if status, page := callback(s.url + "/oauth/callback?" + forged.Encode()); status != http.StatusBadRequest || !strings.Contains(page, "unknown") {
		t.Fatalf("forged state: %d\n%s", status, page)
	}
	if status, _ := callback(s.url + "/oauth/callback"); status != http.StatusBadRequest {
		t.Fatalf("no state: %d", status)
	}
	// A state given twice is read as its first, and a forged first one is unknown; a
	// garbled state (not UTF-8, NUL, 600 bytes) or code is refused the same way. None
	// spends the real login's state: it still connects afterwards.
	twiceID, authorizeURL := startAuthorization(t, s.client, s.url, acmeKey, webexLogin("state given twice", sim.BaseURL()))
	back = must(engagesim.SignIn(t.Context(), authorizeURL, userName, userPassword))
	real := back.Query()
	for _, query := range []string{
		url.Values{"state": {"forged-state-0123456789abcdef", real.Get("state")}, "code": {real.Get("code")}}.Encode(),
		"state=%ff%00" + strings.Repeat("s", 600) + "&code=%ff%fe",
		"state=" + url.QueryEscape(real.Get("state")+"\x00") + "&code=" + url.QueryEscape(real.Get("code")),
	} {
		if status, page := callback(s.url + "/oauth/callback?" + query); status != http.StatusBadRequest || !strings.Contains(page, "unknown") {
			t.Fatalf("callback ?%.120s: %d\n%s", query, status, page)
		}
	}
	if resp, page, _, err := loginflow.Finish(t.Context(), s.client, back.String(), "connect"); err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(page, "added") {
		t.Fatalf("the real login after the garbled ones: %v %v\n%s", resp, err, page)
	}
	if _, raw := s.do(http.MethodGet, "/v1/authorizations/"+twiceID, acmeKey, nil, nil); !strings.Contains(string(raw), `"status":"active"`) {
		t.Fatalf("after the real login: %s", raw)
	}
	before = exchanges()

	pending, authorizeURL := startAuthorization(t, s.client, s.url, acmeKey, webexLogin("expired", sim.BaseURL()))
	back = must(engagesim.SignIn(t.Context(), authorizeURL, userName, userPassword))
	if _, err := s.app.Pool().Exec(t.Context(), `update oauth_states set expires_at = now() - interval '1 second' where authorization_id = $1`, pending); err != nil {
		t.Fatal(err)
	}
	q := back.Query()
	q.Set("next", "https://evil.example/")
	back.RawQuery = q.Encode()
	if status, page := callback(back.String()); status != http.StatusBadRequest || !strings.Contains(page, "expired") {
		t.Fatalf("expired state: %d\n%s", status, page)
	}
	if exchanges() != before {
		t.Fatal("a refused callback exchanged a code")
	}
	for auth, want := range map[string]string{id: "active", pending: "pending"} {
		_, raw := s.do(http.MethodGet, "/v1/authorizations/"+auth, acmeKey, nil, nil)
		if !strings.Contains(string(raw), `"status":"`+want+`"`) {
			t.Fatalf("%s after the refused callbacks: %s, want %s", auth, raw, want)
		}
	}

	// Re-authorizing, by the API and the admin pages: the login still goes to the
	// configured host, and comes back only to the configured callback.
	resp, raw := s.do(http.MethodPost, "/v1/authorizations/"+id+"/reauthorize", acmeKey, nil, nil)
	var started struct{ AuthorizeURL string }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &started) != nil {
		t.Fatalf("reauthorize: %d %s", resp.StatusCode, raw)
	}
	checkAuthorizeURL(started.AuthorizeURL)
	admin := s.signIn(acmeKey)
	resp, added := admin.submit(http.MethodPost, "/admin/authorizations", url.Values{"name": {"from the admin page"}, "kind": {"webex-login"},
		"baseUrl": {sim.BaseURL()}, "domain": {engageDomain}})
	m := continueLink.FindSubmatch(added)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("admin add: %d\n%s", resp.StatusCode, added)
	}
	checkAuthorizeURL(html.UnescapeString(string(m[1])))
}

// continueLink is the link of the page the admin add answers for a Webex login.
var continueLink = regexp.MustCompile(`id="continue" href="([^"]+)"`)

// TestAnEngageBaseURLOffTheAllowlistIsNeverCalled runs a listener at a base URL that is
// not on ENGAGE_ALLOWED_BASE_URLS and tries every way to make the service call it:
// creating an authorization there (API and admin page, both kinds), a row whose base URL
// was changed in the database past the API (with an expired token, so a refresh would
// send the tenant secret there; and a Webex login with a valid token), a row inserted
// by SQL with a valid sealed token, executions and re-authorizations of those rows. The
// listener receives nothing; executions end in onAuthorizationFailure.
func TestAnEngageBaseURLOffTheAllowlistIsNeverCalled(t *testing.T) {
	var received atomic.Int64
	listener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received.Add(1)
		w.WriteHeader(http.StatusTeapot)
	}))
	defer listener.Close()
	elsewhere := listener.URL + "/api/v1"

	s := startService(t, serviceOptions{})
	sim := s.sims[0]
	for _, body := range []map[string]any{clientCredentials("elsewhere cc", elsewhere), webexLogin("elsewhere login", elsewhere)} {
		resp, raw := s.do(http.MethodPost, "/v1/authorizations", acmeKey, body, nil)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(raw), "allowlist") {
			t.Errorf("create %s: %d %s, want 422", body["name"], resp.StatusCode, raw)
		}
	}
	admin := s.signIn(acmeKey)
	if resp, page := admin.submit(http.MethodPost, "/admin/authorizations", url.Values{"name": {"admin elsewhere"}, "kind": {"client-credentials"},
		"baseUrl": {elsewhere}, "domain": {engageDomain}, "tenantId": {engageTenantID}, "tenantSecret": {tenantSecret}}); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("admin add: %d\n%s", resp.StatusCode, page)
	}

	pool := s.app.Pool()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(t.Context(), sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	expired := s.createClientCredentials("moved, token expired", sim)
	exec(`update authorizations set base_url = $2, token_expiry = now() - interval '1 hour' where id = $1`, expired, elsewhere)
	login := s.createLogin("moved login")
	exec(`update authorizations set base_url = $2 where id = $1`, login, elsewhere)
	inserted := insertSealedAuthorization(t, s, elsewhere)

	conv := seedConversation(sim)
	for _, id := range []string{expired, login, inserted} {
		for _, e := range []execution{search(id, 2000), appendText(id, conv, "must not leave", 2000)} {
			if a, _ := s.execute(e, nil); a.Outcome != "onAuthorizationFailure" || !strings.Contains(a.Error.Message, "allowlist") {
				t.Errorf("%s with a base URL off the allowlist: %s %+v", e["node"], a.Outcome, a.Error)
			}
		}
		// A Webex login is re-authorized at Webex (the configured host); client
		// credentials would be checked at the base URL, so they are refused.
		resp, raw := s.do(http.MethodPost, "/v1/authorizations/"+id+"/reauthorize", acmeKey, nil, nil)
		if id != login && (resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(raw), "allowlist")) {
			t.Errorf("re-authorizing %s: %d %s, want 422", id, resp.StatusCode, raw)
		}
	}
	if n := received.Load(); n != 0 {
		t.Fatalf("the listener off the allowlist received %d requests", n)
	}
}

// insertSealedAuthorization writes an active client-credentials row by SQL, its secrets
// sealed as the store seals them (AES-256-GCM bound to "authorizations/<id>/<column>",
// migrations/001_init.sql), with a token good for an hour.
func insertSealedAuthorization(t *testing.T, s *service, baseURL string) string {
	t.Helper()
	const id = "0d7f3c2a-9b1e-4c5d-8a6f-2e4b7c9d1f30"
	ring := keyRing(t)
	seal := func(column, v string) []byte {
		return must(ring.Encrypt([]byte(v), []byte("authorizations/"+id+"/"+column)))
	}
	_, err := s.app.Pool().Exec(t.Context(), `insert into authorizations (id, tenant, name, kind, status, base_url, domain,
		engage_tenant_id, tenant_secret, access_token, token_expiry, key_id)
		values ($1, 'acme', 'inserted by SQL', 'client-credentials', 'active', $2, $3, $4, $5, $6, now() + interval '1 hour', $7)`,
		id, baseURL, engageDomain, engageTenantID, seal("tenant_secret", tenantSecret), seal("access_token", "simat_inserted-by-sql"), ring.PrimaryID())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// browser is a client with cookies, for the admin pages.
type browser struct {
	t    *testing.T
	c    *http.Client
	base string
	csrf string
}

func newBrowser(t *testing.T) *http.Client {
	c := newClient(t)
	c.Jar = must(cookiejar.New(nil))
	return c
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs a browser in on the admin pages with an API key.
func (s *service) signIn(key string) *browser {
	t := s.t.(*testing.T)
	t.Helper()
	b := &browser{t: t, c: newBrowser(t), base: s.url}
	_, page := send(t, b.c, http.MethodGet, s.url+"/admin/login", "", nil, nil)
	b.csrf = csrfOf(t, page)
	resp, _ := b.submit(http.MethodPost, "/admin/login", url.Values{"apiKey": {key}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/" {
		t.Fatalf("sign in: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page = send(t, b.c, http.MethodGet, s.url+"/admin/", "", nil, nil)
	b.csrf = csrfOf(t, page)
	return b
}

func csrfOf(t *testing.T, page []byte) string {
	t.Helper()
	m := csrfField.FindSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in\n%s", page)
	}
	return string(m[1])
}

// submit sends a form (POST) or a GET, with the session's CSRF token.
func (b *browser) submit(method, path string, form url.Values) (*http.Response, []byte) {
	b.t.Helper()
	if method == http.MethodGet {
		return send(b.t, b.c, method, b.base+path, "", nil, nil)
	}
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", b.csrf)
	req := must(http.NewRequest(method, b.base+path, strings.NewReader(form.Encode())))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var page strings.Builder
	_, _ = io.Copy(&page, resp.Body)
	return resp, []byte(page.String())
}

func problemCode(raw []byte) string {
	var p struct{ Code string }
	_ = json.Unmarshal(raw, &p)
	return p.Code
}

func problemDetail(raw []byte) string {
	var p struct{ Detail string }
	_ = json.Unmarshal(raw, &p)
	return p.Detail
}
