package authstore_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/outcomes"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// Canary secrets: no log line, metric or error may ever contain them. Tokens the
// simulator issues start with these prefixes, so a leaked token is found by prefix.
const (
	ccSecret     = "cc-secret-CANARY-7f3a9"
	newCCSecret  = "cc-secret-CANARY-rotated-51ce"
	clientSecret = "webex-client-secret-CANARY-2b8d"
	userPassword = "user-password-CANARY-c0de"
	redirectURI  = "http://noderuntime.test/oauth/callback"

	acme   = tenant.ID("acme")
	globex = tenant.ID("globex")
)

var canaries = []string{ccSecret, newCCSecret, clientSecret, userPassword, "simat_", "simrt_", "simcode_"}

type env struct {
	t    *testing.T
	sim  *engagesim.Sim
	url  string
	pool *pgxpool.Pool
	ring *secrets.KeyRing
	logs *syncBuffer
	regs []*prometheus.Registry
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func ringOf(t testing.TB, spec string) *secrets.KeyRing {
	t.Helper()
	r, err := secrets.ParseKeyRing(spec)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func keySpec(id string, b byte) string {
	return id + ":" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32))
}

// newEnv starts a simulator and a fresh database. When the test ends it scans every log
// line and metric the test's stores produced for the canaries.
func newEnv(t *testing.T, cfg engagesim.Config) *env {
	t.Helper()
	cfg.Users = append(cfg.Users, engagesim.User{Username: "alice", Password: userPassword, Domain: "acme"})
	cfg.Clients = append(cfg.Clients, engagesim.OAuthClient{ID: "noderuntime", Secret: clientSecret, RedirectURIs: []string{redirectURI}})
	cfg.Tenants = append(cfg.Tenants, engagesim.Tenant{ID: "tenant-1", Secret: ccSecret, Domain: "acme"})
	e := &env{t: t, sim: engagesim.Start(t, cfg), url: dbtest.NewURL(t), ring: ringOf(t, keySpec("k1", 1)), logs: &syncBuffer{}}
	e.pool = e.newPool()
	t.Cleanup(func() { e.scanForCanaries() })
	return e
}

func (e *env) newPool() *pgxpool.Pool {
	e.t.Helper()
	pool, err := pgxpool.New(context.Background(), e.url)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(pool.Close)
	return pool
}

// lockRow takes the authorization's row lock in a transaction of its own connection, as
// a replica refreshing it does, and holds it until the test commits or rolls back the
// transaction, or ends.
func (e *env) lockRow(id string) pgx.Tx {
	e.t.Helper()
	tx, err := e.newPool().Begin(ctxT(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(ctxT(e.t), "select 1 from authorizations where id = $1 for update", id); err != nil {
		e.t.Fatal(err)
	}
	return tx
}

func (e *env) options() authstore.Options {
	reg := prometheus.NewRegistry()
	e.regs = append(e.regs, reg)
	return authstore.Options{
		Pool:            e.pool,
		Keys:            e.ring,
		Logger:          slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer:      reg,
		AllowedBaseURLs: []string{e.sim.BaseURL()},
		Webex: authstore.Webex{
			AuthorizeURL: e.sim.AuthorizeURL(), TokenURL: e.sim.TokenURL(), ClientID: "noderuntime",
			ClientSecret: secrets.New(clientSecret), Scopes: []string{"engage"}, RedirectURL: redirectURI,
		},
		RefreshSkew:    200 * time.Millisecond,
		FailureBackoff: 300 * time.Millisecond,
	}
}

// store returns a Store on the env's pool (or its own pool, for a second "replica").
func (e *env) store(mods ...func(*authstore.Options)) *authstore.Store {
	e.t.Helper()
	o := e.options()
	for _, m := range mods {
		m(&o)
	}
	s, err := authstore.New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(s.Close)
	return s
}

// replica is a Store with a pool of its own, as another runtime instance would have.
func (e *env) replica(mods ...func(*authstore.Options)) *authstore.Store {
	pool := e.newPool()
	return e.store(append([]func(*authstore.Options){func(o *authstore.Options) { o.Pool = pool }}, mods...)...)
}

func (e *env) scanForCanaries() {
	var texts []string
	texts = append(texts, e.logs.String())
	for _, reg := range e.regs {
		mfs, err := reg.Gather()
		if err != nil {
			e.t.Errorf("gather: %v", err)
		}
		for _, mf := range mfs {
			texts = append(texts, mf.String())
		}
	}
	for _, text := range texts {
		for _, c := range canaries {
			if strings.Contains(text, c) {
				e.t.Errorf("canary %q leaked into logs or metrics", c)
			}
		}
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (e *env) createCC(s *authstore.Store, t tenant.ID, name string) authstore.Authorization {
	e.t.Helper()
	got, err := s.Create(ctxT(e.t), t, authstore.ActorAPI, authstore.CreateRequest{
		Name: name, Kind: authstore.KindClientCredentials, BaseURL: e.sim.BaseURL(), Domain: "acme",
		TenantID: "tenant-1", TenantSecret: secrets.New(ccSecret),
	})
	if err != nil {
		e.t.Fatalf("create client credentials: %v", err)
	}
	return got.Authorization
}

// createLogin adds a Webex-login authorization and completes its login as alice.
func (e *env) createLogin(s *authstore.Store, t tenant.ID, name string) authstore.Authorization {
	e.t.Helper()
	started, err := s.Create(ctxT(e.t), t, authstore.ActorAPI, authstore.CreateRequest{
		Name: name, Kind: authstore.KindWebexLogin, BaseURL: e.sim.BaseURL(), Domain: "acme",
	})
	if err != nil {
		e.t.Fatalf("create webex login: %v", err)
	}
	a, err := s.CompleteLogin(ctxT(e.t), e.login(started.AuthorizeURL, "login"))
	if err != nil {
		e.t.Fatalf("complete login: %v", err)
	}
	if a.Reauthorized {
		e.t.Fatal("a first login reads as a re-authorization")
	}
	return a.Authorization
}

// login signs in on the simulator's login form (or cancels) and returns the query the
// provider redirected back with.
func (e *env) login(authorizeURL, action string) url.Values {
	e.t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(authorizeURL)
	if err != nil {
		e.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Sign in") {
		e.t.Fatalf("login page: %d %s", resp.StatusCode, body)
	}
	form := url.Values{"username": {"alice"}, "password": {userPassword}, "action": {action}}
	for k, v := range mustParse(e.t, authorizeURL).Query() {
		form[k] = v
	}
	resp, err = client.PostForm(e.sim.AuthorizeURL(), form)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("login: %d, want a redirect", resp.StatusCode)
	}
	loc := mustParse(e.t, resp.Header.Get("Location"))
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != redirectURI {
		e.t.Fatalf("redirected to %s, want %s", got, redirectURI)
	}
	return loc.Query()
}

func mustParse(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// expire makes the stored access token of id look expired (for every store that reads
// it from Postgres next).
func (e *env) expire(id string) {
	e.t.Helper()
	if _, err := e.pool.Exec(context.Background(), "update authorizations set token_expiry = now() - interval '1 second' where id = $1", id); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) status(id string) string {
	e.t.Helper()
	var st string
	if err := e.pool.QueryRow(context.Background(), "select status from authorizations where id = $1", id).Scan(&st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

// wantRotatedPairStored fails t unless c's token works and the row no longer holds spent,
// the refresh token the provider rotated away when it handed c out.
func (e *env) wantRotatedPairStored(t *testing.T, c authstore.Credential, id, spent string) {
	t.Helper()
	if err := e.works(c); err != nil {
		t.Fatalf("the token handed out: %v", err)
	}
	if e.storedRefreshToken(id) == spent {
		t.Fatal("the row still holds the refresh token the provider rotated away")
	}
}

// wantFirstLoginStoredOnce fails t unless done is a first login, active, whose token
// works, audited as authorized exactly once (a write tried again is not a second login).
func (e *env) wantFirstLoginStoredOnce(t *testing.T, s *authstore.Store, done authstore.Completed) {
	t.Helper()
	if done.Reauthorized || done.Status != authstore.StatusActive {
		t.Fatalf("completed %+v, want a first login, active", done)
	}
	c, err := s.Token(ctxT(t), acme, done.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.works(c); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := e.pool.QueryRow(ctxT(t), "select count(*) from audit_events where authorization_id = $1 and action = 'authorized'", done.ID).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d authorized events (%v), want 1", n, err)
	}
}

// isRefreshGrant reports whether r, a request to a token endpoint, asks for a refresh;
// r's body is left to be read again.
func isRefreshGrant(r *http.Request) bool {
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	return bytes.Contains(body, []byte("grant_type=refresh_token"))
}

// works proves a token by calling Engage with it.
func (e *env) works(c authstore.Credential) error {
	_, err := engage.New(engage.Options{}).Search(context.Background(), engage.Target{BaseURL: c.BaseURL, Domain: c.Domain},
		c.AccessToken.Reveal(), engage.SearchRequest{Channel: "sms", CustomerAddress: "+15550100", BizAddress: "12345"})
	return err
}

func wantAuthError(t *testing.T, err error, code string) {
	t.Helper()
	ae, ok := errors.AsType[*outcomes.AuthorizationError](err)
	if !ok {
		t.Fatalf("got %v (%T), want *outcomes.AuthorizationError %s", err, err, code)
	}
	if ae.Code != code {
		t.Fatalf("code %s (%s), want %s", ae.Code, ae.Message, code)
	}
}

func wantCode(t *testing.T, err error, code authstore.ErrorCode) *authstore.Error {
	t.Helper()
	e, ok := errors.AsType[*authstore.Error](err)
	if !ok || e.Code != code {
		t.Fatalf("got %v, want authstore error %s", err, code)
	}
	return e
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func waitListening(t *testing.T, stores ...*authstore.Store) {
	t.Helper()
	for _, s := range stores {
		waitFor(t, 10*time.Second, "listener connected", s.Listening)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					if m.GetCounter() != nil {
						return m.GetCounter().GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

// providerStore starts h as an Engage host of its own (its token endpoint is
// {base}/oauth/token), adds its base URL to the allowlist, and returns a store that may
// use it: for answers the simulator does not give.
func (e *env) providerStore(h http.HandlerFunc) (*authstore.Store, string) {
	e.t.Helper()
	srv := httptest.NewServer(h)
	e.t.Cleanup(srv.Close)
	base := srv.URL + "/api/v1"
	return e.store(func(o *authstore.Options) { o.AllowedBaseURLs = append(o.AllowedBaseURLs, base) }), base
}

// tracedPool is a pool on the test's database whose queries go through tracer.
func (e *env) tracedPool(tracer pgx.QueryTracer) *pgxpool.Pool {
	e.t.Helper()
	cfg, err := pgxpool.ParseConfig(e.url)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(pool.Close)
	return pool
}

// reach waits for ch to close, or fails the test.
func reach(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not within 10s", what)
	}
}
