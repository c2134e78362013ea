package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/noderuntime/noderuntime/internal/adminsessions"
	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/httpapi"
	"github.com/noderuntime/noderuntime/internal/loginflow"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// Canaries: none of them may appear in any log line, metric or response of these tests.
// Simulator tokens carry the prefixes, so any leaked token is found by prefix.
const (
	azAcmeKey       = "acme-api-key-CANARY-9d1e"
	azGlobexKey     = "globex-api-key-CANARY-44a0"
	azCCSecret      = "cc-secret-CANARY-http-77b2"
	azWebexSecret   = "webex-client-secret-CANARY-http-1c5f"
	azAlicePassword = "alice-password-CANARY-e3f1"
	azNewCCSecret   = "cc-secret-CANARY-http-new-0a9d"
)

var azCanaries = []string{azAcmeKey, azGlobexKey, azCCSecret, azWebexSecret, azAlicePassword, azNewCCSecret, "simat_", "simrt_", "simcode_"}

// authServer is the HTTP edge with the real authorization store on a fresh database
// and a simulator, the way internal/app wires them.
type authServer struct {
	t       *testing.T
	srv     *httptest.Server
	sim     *engagesim.Sim
	store   *authstore.Store
	logs    *syncBuffer
	reg     *prometheus.Registry
	seen    *syncBuffer // every response our server gave to the test's clients
	dbURL   string
	ring    *secrets.KeyRing
	apiKeys tenant.Keys
}

type azOption func(*authstore.Options)

func withoutWebex(o *authstore.Options) { o.Webex = authstore.Webex{} }

// withAnotherKeyRing runs the server on a key ring of its own, as another deployment.
func withAnotherKeyRing(o *authstore.Options) {
	o.Keys, _ = secrets.ParseKeyRing("other:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32)))
}

// newAuthServer needs no TestMain: it migrates an empty database of its own.
func newAuthServer(t *testing.T, opts ...azOption) *authServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dbURL := dbtest.NewEmptyURL(t)
	if _, _, err := database.Migrate(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	pool, err := database.Open(ctx, dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	keys, err := tenant.ParseKeys("acme:" + tenant.HashKey(azAcmeKey) + ",globex:" + tenant.HashKey(azGlobexKey))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := secrets.ParseKeyRing("k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	s := &authServer{t: t, logs: &syncBuffer{}, seen: &syncBuffer{}, reg: prometheus.NewRegistry(), dbURL: dbURL, ring: ring, apiKeys: keys}
	s.sim = engagesim.Start(t, engagesim.Config{
		Users:   []engagesim.User{{Username: "alice", Password: azAlicePassword, Domain: "acme"}},
		Tenants: []engagesim.Tenant{{ID: "tenant-1", Secret: azCCSecret, Domain: "acme"}},
	})
	logger := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	// The server's URL is the redirect URI, so the router is set once it listens.
	var handler http.Handler
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(s.srv.Close)
	redirect := s.srv.URL + "/oauth/callback"
	s.sim.AddClient(engagesim.OAuthClient{ID: "noderuntime", Secret: azWebexSecret, RedirectURIs: []string{redirect}})

	o := authstore.Options{
		Pool: pool, Keys: ring, Logger: logger, Registerer: s.reg,
		AllowedBaseURLs: []string{s.sim.BaseURL()},
		Webex: authstore.Webex{AuthorizeURL: s.sim.AuthorizeURL(), TokenURL: s.sim.TokenURL(), ClientID: "noderuntime",
			ClientSecret: secrets.New(azWebexSecret), Scopes: []string{"engage"}, RedirectURL: redirect},
		RefreshSkew: 200 * time.Millisecond,
	}
	for _, opt := range opts {
		opt(&o)
	}
	s.ring = o.Keys
	s.store, err = authstore.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.store.Close)
	router := httpapi.NewRouter(httpapi.Deps{
		Logger: logger, Metrics: httpapi.NewMetrics(s.reg), APIKeys: keys, Gatherer: s.reg,
		V1: []func(chi.Router){httpapi.AuthorizationRoutes(s.store, logger)},
	})
	httpapi.MountAuthorizationPages(router, httpapi.PagesDeps{
		Store: s.store, Keys: s.ring, APIKeys: keys, Logger: logger, AllowedBaseURLs: o.AllowedBaseURLs,
		WebexEnabled: o.Webex.Enabled(), SignOuts: adminsessions.New(pool),
	})
	handler = router
	t.Cleanup(s.scanForCanaries)
	return s
}

// scanForCanaries looks through every log line, the metrics and every response for a
// secret or a token.
func (s *authServer) scanForCanaries() {
	resp, err := http.Get(s.srv.URL + "/metrics")
	if err != nil {
		s.t.Errorf("metrics: %v", err)
		return
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(metrics, []byte("noderuntime_token_cache_requests_total")) {
		s.t.Error("the authorization metrics are not exported")
	}
	for what, text := range map[string]string{"logs": s.logs.String(), "metrics": string(metrics), "responses": s.seen.String()} {
		for _, c := range azCanaries {
			if strings.Contains(text, c) {
				s.t.Errorf("canary %q leaked into the %s", c, what)
			}
		}
	}
	if s.seen.String() == "" {
		s.t.Error("no responses were recorded")
	}
}

// azRecorder keeps every response of our server, headers and body.
type azRecorder struct {
	s    *authServer
	next http.RoundTripper
}

func (r azRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil || !strings.HasPrefix(req.URL.String(), r.s.srv.URL) {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var head bytes.Buffer
	_ = resp.Header.Write(&head)
	_, _ = r.s.seen.Write(append(append(head.Bytes(), body...), '\n'))
	return resp, nil
}

// client is a recording HTTP client that does not follow redirects; with a cookie jar
// when jar is set.
func (s *authServer) client(jar bool) *http.Client {
	c := &http.Client{
		Transport:     azRecorder{s: s, next: http.DefaultTransport},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	if jar {
		c.Jar, _ = cookiejar.New(nil)
	}
	return c
}

// api calls /v1 with key and decodes the JSON answer.
func (s *authServer) api(method, path, key string, body any) (*http.Response, map[string]any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, s.srv.URL+path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client(false).Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			s.t.Fatalf("%s %s: not JSON: %s", method, path, raw)
		}
	}
	return resp, out
}

func (s *authServer) createCC(name string) string {
	s.t.Helper()
	resp, body := s.api("POST", "/v1/authorizations", azAcmeKey, map[string]string{
		"name": name, "kind": "client-credentials", "baseUrl": s.sim.BaseURL(), "domain": "acme", "tenantId": "tenant-1", "tenantSecret": azCCSecret,
	})
	if resp.StatusCode != http.StatusCreated {
		s.t.Fatalf("create: %d %v", resp.StatusCode, body)
	}
	return body["id"].(string)
}

// pendingLogin creates acme's Webex-login authorization name and signs alice in at the
// provider: its ID, and the callback address the provider sends the browser back to.
func (s *authServer) pendingLogin(name string) (id string, back *url.URL) {
	s.t.Helper()
	resp, created := s.api("POST", "/v1/authorizations", azAcmeKey, map[string]string{"name": name, "kind": "webex-login", "baseUrl": s.sim.BaseURL(), "domain": "acme"})
	if resp.StatusCode != http.StatusCreated {
		s.t.Fatalf("create %s: %d %v", name, resp.StatusCode, created)
	}
	back, err := engagesim.SignIn(s.t.Context(), created["authorizeUrl"].(string), "alice", azAlicePassword)
	if err != nil {
		s.t.Fatal(err)
	}
	return created["id"].(string), back
}

// get fetches a page (following nothing) and returns status, body.
func (s *authServer) get(c *http.Client, u string) (*http.Response, string) {
	s.t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (s *authServer) postForm(c *http.Client, path string, form url.Values) (*http.Response, string) {
	s.t.Helper()
	resp, err := c.PostForm(s.srv.URL+path, form)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the page:\n%s", page)
	}
	return m[1]
}

// sql runs a statement on the test's database.
func (s *authServer) sql(stmt string, args ...any) {
	s.t.Helper()
	conn, err := pgx.Connect(context.Background(), s.dbURL)
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), stmt, args...); err != nil {
		s.t.Fatal(err)
	}
}

func (s *authServer) status(id string) string {
	s.t.Helper()
	_, body := s.api("GET", "/v1/authorizations/"+id, azAcmeKey, nil)
	st, _ := body["status"].(string)
	return st
}

// finishLogin opens the callback the provider sent the browser back to, checks the
// confirmation page names whose authorization the login completes (wantLines), and
// answers it with action (connect or cancel). It returns the answer and its page.
func (s *authServer) finishLogin(c *http.Client, back, action string, wantLines ...string) (*http.Response, string) {
	s.t.Helper()
	resp, page, confirm, err := loginflow.Finish(s.t.Context(), c, back, action)
	if err != nil {
		s.t.Fatalf("%v\n%s", err, confirm)
	}
	for _, want := range wantLines {
		if !strings.Contains(confirm, want) {
			s.t.Fatalf("the confirmation page does not say %q:\n%s", want, confirm)
		}
	}
	return resp, page
}
