package authstore_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/outcomes"
	"github.com/noderuntime/noderuntime/internal/secrets"
)

// A provider that does not rotate answers a refresh without a refresh_token; the one
// stored stays valid and must be kept, or the next refresh would have nothing to spend.
func TestARefreshAnsweredWithoutARefreshTokenKeepsTheStoredOne(t *testing.T) {
	e := newEnv(t, engagesim.Config{NoRefreshTokenRotation: true})
	s := e.store()
	a := e.createLogin(s, acme, "not rotating")
	stored := e.storedRefreshToken(a.ID)
	e.sim.ResetCounters()

	var previous string
	// The second refresh, later, runs on a fresh instance: the first one's cache would
	// answer without reading the expired row.
	for i, st := range []*authstore.Store{s, e.store()} {
		e.expire(a.ID)
		c, err := st.Token(ctxT(t), acme, a.ID)
		if err != nil {
			t.Fatalf("refresh %d: %v", i+1, err)
		}
		if c.AccessToken.Reveal() == previous {
			t.Fatalf("refresh %d handed out the token it replaced", i+1)
		}
		previous = c.AccessToken.Reveal()
		if err := e.works(c); err != nil {
			t.Fatalf("the token of refresh %d does not work: %v", i+1, err)
		}
		var dropped bool
		if err := e.pool.QueryRow(context.Background(), "select refresh_token is null from authorizations where id = $1", a.ID).Scan(&dropped); err != nil || dropped {
			t.Fatalf("refresh %d dropped the stored refresh token (%v)", i+1, err)
		}
		if got := e.storedRefreshToken(a.ID); got != stored {
			t.Fatalf("refresh %d replaced the stored refresh token, though the provider sent none", i+1)
		}
	}
	if n := e.sim.Grants(engagesim.GrantRefreshToken); n != 2 {
		t.Fatalf("%d refresh grants, want 2", n)
	}
	if n := e.sim.InvalidGrants(); n != 0 || e.status(a.ID) != "active" {
		t.Fatalf("%d invalid_grant answers, status %s: want 0, active", n, e.status(a.ID))
	}
}

// While another replica holds the row's refresh lock, a caller waits at most the lock
// timeout and gets a plain error (onError, not onAuthorizationFailure); once the lock
// is released the refresh goes through.
func TestARefreshLockHeldElsewhereFailsAfterTheLockTimeoutAndThenRecovers(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store(func(o *authstore.Options) { o.LockTimeout = 200 * time.Millisecond })
	a := e.createCC(s, acme, "locked")
	e.expire(a.ID)
	e.sim.ResetCounters()

	tx := e.lockRow(a.ID)
	start := time.Now()
	_, err := s.Token(ctxT(t), acme, a.ID)
	took := time.Since(start)
	if err == nil {
		t.Fatal("a token came through while another transaction held the refresh lock")
	}
	if _, ok := errors.AsType[*outcomes.AuthorizationError](err); ok {
		t.Fatalf("a held lock is not an authorization failure: %v", err)
	}
	if took > 5*time.Second {
		t.Fatalf("Token waited %s for the lock, with a 200ms lock timeout", took)
	}
	if n := e.sim.Calls(engagesim.OpToken); n != 0 {
		t.Fatalf("%d token calls without the lock, want 0", n)
	}
	t.Logf("gave up on the lock after %s: %v", took, err)

	if err := tx.Rollback(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	c, err := s.Token(ctxT(t), acme, a.ID)
	if err != nil || e.works(c) != nil {
		t.Fatalf("after the lock was released: %v", err)
	}
	if e.status(a.ID) != "active" {
		t.Fatalf("status %s", e.status(a.ID))
	}
}

func TestNeedsReauthorizationOnOneInstanceReachesAnotherInstancesCacheWithinASecond(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	a, b, auth, _ := loginCachedOnTwoInstances(t, e, "replayed")
	// Someone else spends the refresh token first, so A's refresh is a replay:
	// invalid_grant. Making the row look expired bypasses NOTIFY: B keeps its entry.
	e.spendRefreshToken(auth.ID)
	e.expire(auth.ID)
	if _, err := b.Token(ctxT(t), acme, auth.ID); err != nil {
		t.Fatalf("B no longer serves its cached token before A's refresh: %v", err)
	}

	_, err := a.Token(ctxT(t), acme, auth.ID)
	wantAuthError(t, err, outcomes.CodeNeedsReauthorization)
	took := waitFor(t, time.Second, "instance B answers needs_reauthorization", func() bool {
		_, err := b.Token(ctxT(t), acme, auth.ID)
		ae, ok := errors.AsType[*outcomes.AuthorizationError](err)
		return ok && ae.Code == outcomes.CodeNeedsReauthorization
	})
	t.Logf("instance B answered needs_reauthorization %s after A's refresh failed", took)
}

func TestACompletedWebexReloginOnOneInstanceReachesAnotherInstancesCacheWithinASecond(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	a, b, auth, old := loginCachedOnTwoInstances(t, e, "relogin")

	st, err := a.Reauthorize(ctxT(t), acme, authstore.ActorAPI, auth.ID, authstore.ReauthorizeRequest{})
	if err != nil || st.AuthorizeURL == "" {
		t.Fatalf("reauthorize: %+v %v", st, err)
	}
	if c, err := b.Token(ctxT(t), acme, auth.ID); err != nil || c.AccessToken.Reveal() != old.AccessToken.Reveal() {
		t.Fatalf("B changed tokens before the new login completed: %v", err)
	}
	done, err := a.CompleteLogin(ctxT(t), e.login(st.AuthorizeURL, "login"))
	if err != nil || !done.Reauthorized {
		t.Fatalf("second login: %+v %v", done, err)
	}
	took := waitFor(t, time.Second, "instance B uses the new login's token", func() bool {
		c, err := b.Token(ctxT(t), acme, auth.ID)
		return err == nil && c.AccessToken.Reveal() != old.AccessToken.Reveal()
	})
	fromB, err := b.Token(ctxT(t), acme, auth.ID)
	if err != nil {
		t.Fatal(err)
	}
	fromA, err := a.Token(ctxT(t), acme, auth.ID)
	if err != nil || fromA.AccessToken.Reveal() != fromB.AccessToken.Reveal() {
		t.Fatalf("A and B disagree on the token after the re-login: %v", err)
	}
	if err := e.works(fromB); err != nil {
		t.Fatalf("B's token after the re-login: %v", err)
	}
	t.Logf("instance B served the new token %s after the login completed", took)
}

// A change that reaches Postgres without a NOTIFY (here a delete in SQL) is seen once
// the cache entry reaches CacheMaxAge, though the token itself is good for an hour.
func TestCacheEntriesExpireAfterTheCacheMaxAge(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store(func(o *authstore.Options) { o.CacheMaxAge = time.Second })
	a := e.createCC(s, acme, "aging")
	waitListening(t, s)
	if _, err := s.Token(ctxT(t), acme, a.ID); err != nil {
		t.Fatal(err)
	}
	cachedAt := time.Now()
	if _, err := e.pool.Exec(context.Background(), "delete from authorizations where id = $1", a.ID); err != nil {
		t.Fatal(err)
	}
	misses := counter(t, e.regs[0], "noderuntime_token_cache_requests_total", "miss")
	if _, err := s.Token(ctxT(t), acme, a.ID); err != nil {
		t.Fatalf("the entry was not served from the cache right after it was stored: %v", err)
	}
	if got := counter(t, e.regs[0], "noderuntime_token_cache_requests_total", "miss"); got != misses {
		t.Fatal("the call right after storing the entry missed the cache")
	}
	waitFor(t, 5*time.Second, "the store notices the deletion", func() bool {
		_, err := s.Token(ctxT(t), acme, a.ID)
		return err != nil
	})
	_, err := s.Token(ctxT(t), acme, a.ID)
	wantAuthError(t, err, outcomes.CodeAuthorizationNotFound)
	if got := counter(t, e.regs[0], "noderuntime_token_cache_requests_total", "miss"); got <= misses {
		t.Fatal("no cache miss, yet the deletion was noticed")
	}
	t.Logf("the deletion was noticed %s after the entry was stored", time.Since(cachedAt))
}

func TestReauthorizationIsAudited(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	actions := func(events []authstore.AuditEvent) []string {
		var out []string
		for _, ev := range events {
			out = append(out, ev.Action)
		}
		return out
	}

	login := e.createLogin(s, acme, "login")
	st, err := s.Reauthorize(ctxT(t), acme, authstore.ActorAdmin, login.ID, authstore.ReauthorizeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	events, err := s.Audit(ctxT(t), acme, login.ID)
	if err != nil || len(events) != 3 {
		t.Fatalf("audit after Reauthorize: %v %v, want created, authorized, reauthorize_started", actions(events), err)
	}
	if ev := events[2]; ev.Action != "reauthorize_started" || ev.Actor != "admin" {
		t.Fatalf("audit event of Reauthorize: %+v", ev)
	}
	if _, err := s.CompleteLogin(ctxT(t), e.login(st.AuthorizeURL, "login")); err != nil {
		t.Fatal(err)
	}
	events, err = s.Audit(ctxT(t), acme, login.ID)
	if err != nil || len(events) != 4 {
		t.Fatalf("audit after the re-login: %v %v", actions(events), err)
	}
	// A Webex login's completion records the status it left; a re-login is marked as a
	// re-authorization, as a client-credentials one is (below), and a first login is not.
	if ev := events[1]; ev.Action != "authorized" || ev.Actor != "login" || ev.Detail["previousStatus"] != "pending" || ev.Detail["reauthorized"] != nil {
		t.Fatalf("audit event of the first login: %+v", ev)
	}
	if ev := events[3]; ev.Action != "authorized" || ev.Actor != "login" || ev.Detail["previousStatus"] != "active" || ev.Detail["reauthorized"] != true {
		t.Fatalf("audit event of the re-login: %+v", ev)
	}

	// Client credentials re-authorize at once: no reauthorize_started, one authorized
	// event marked as a re-authorization.
	cc := e.createCC(s, acme, "cc")
	if _, err := s.Reauthorize(ctxT(t), acme, authstore.ActorAPI, cc.ID, authstore.ReauthorizeRequest{}); err != nil {
		t.Fatal(err)
	}
	events, err = s.Audit(ctxT(t), acme, cc.ID)
	if err != nil || len(events) != 3 {
		t.Fatalf("audit of the client credentials: %v %v, want created, authorized, authorized", actions(events), err)
	}
	if ev := events[2]; ev.Action != "authorized" || ev.Actor != "api" || ev.Detail["reauthorized"] != true {
		t.Fatalf("audit event of the client credentials' re-authorization: %+v", ev)
	}
	if ev := events[1]; ev.Detail["reauthorized"] != nil {
		t.Fatalf("the first authorization reads as a re-authorization: %+v", ev)
	}
}

// A token endpoint that echoes what it was sent (its Authorization header, the client
// credentials in it) in its error_description must not get the tenant secret into the
// refusal the API caller and the admin page show, in any of its encodings.
func TestAnEchoingTokenEndpointDoesNotLeakTheTenantSecret(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	const secret = "s3cr+t/&=CANARY-9d1"
	s, base := e.providerStore(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(auth, "Basic "))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": auth + " " + string(raw)})
	})
	_, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
		Name: "echo", Kind: authstore.KindClientCredentials, BaseURL: base, Domain: "acme",
		TenantID: "tenant-1", TenantSecret: secrets.New(secret),
	})
	ae := wantCode(t, err, authstore.ErrProviderRejected)
	basic := base64.StdEncoding.EncodeToString([]byte("tenant-1:" + url.QueryEscape(secret)))
	for _, text := range []string{err.Error(), ae.Message, ae.ProviderDescription} {
		for _, leak := range []string{secret, url.QueryEscape(secret), basic} {
			if strings.Contains(text, leak) {
				t.Errorf("%q holds %q", text, leak)
			}
		}
	}
	if !strings.Contains(ae.ProviderDescription, "[redacted]") {
		t.Errorf("description %q: the echo was not there to redact", ae.ProviderDescription)
	}
}

// An endpoint that quotes or dumps what it got writes the secret encoded otherwise than
// the form body had it: percent-encoded by another encoder (as a path, with lower-case
// hex), in base64, alone or inside a longer dump, or JSON-escaped in a JSON text quoted
// in its description. Each is the secret to whoever reads
// the refusal the API caller and the admin page show.
func TestATokenEndpointEchoingTheTenantSecretEncodedOtherwiseDoesNotLeakIt(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	const secret = "s3cr+t/&=CANARY-9d1 x"
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	leaks := []string{
		url.PathEscape(secret),
		strings.NewReplacer("%2B", "%2b", "%2F", "%2f", "%26", "%26", "%3D", "%3d").Replace(url.QueryEscape(secret)),
		b64(secret),
		b64("POST /oauth/token\r\nclient_secret: " + secret + "\r\n"),
		// The upstream's JSON quoted in the description: its escapes as it wrote them.
		`{"client_secret":"` + strings.ReplaceAll(secret, "/", `\/`) + `"}`,
		`{"client_secret":"\u0073` + secret[1:] + `"}`,
	}
	s, base := e.providerStore(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": "got " + strings.Join(leaks, " ")})
	})
	_, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
		Name: "echo", Kind: authstore.KindClientCredentials, BaseURL: base, Domain: "acme",
		TenantID: "tenant-1", TenantSecret: secrets.New(secret),
	})
	ae := wantCode(t, err, authstore.ErrProviderRejected)
	for _, text := range []string{err.Error(), ae.Message, ae.ProviderDescription} {
		for i, leak := range leaks {
			if strings.Contains(text, leak) {
				t.Errorf("%q holds encoded form %d of the tenant secret", text, i)
			}
		}
	}
	if !strings.HasPrefix(ae.ProviderDescription, "got [redacted]") {
		t.Errorf("description %q: the echo was not there to redact", ae.ProviderDescription)
	}
}

// An endpoint that echoes the secret as its OAuth error code, not its description: a
// secret of letters, digits, '_', '.' and '-' looks like a code, and a code is shown to
// the API caller and the admin page and logged with every failed refresh.
func TestATokenEndpointEchoingTheSecretAsItsErrorCodeDoesNotLeakIt(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	const secret = "CANARY_tenant-secret.7f3a"
	s, base := e.providerStore(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		_, pass, _ := r.BasicAuth()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": pass})
	})
	_, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
		Name: "echo", Kind: authstore.KindClientCredentials, BaseURL: base, Domain: "acme",
		TenantID: "tenant-1", TenantSecret: secrets.New(secret),
	})
	ae := wantCode(t, err, authstore.ErrProviderRejected)
	for _, text := range []string{err.Error(), ae.Message, ae.ProviderError, ae.ProviderDescription} {
		if strings.Contains(text, secret) {
			t.Errorf("%q holds the tenant secret", text)
		}
	}
}

// The login's code is what a token endpoint that echoes its request would send back
// too, as its error code or in its description: neither may carry it into the error the
// callback page shows or the line the failed exchange logs.
func TestATokenEndpointEchoingTheLoginCodeDoesNotLeakIt(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	const code = "CANARY_login-code.5e1b"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": r.PostForm.Get("code"), "error_description": "bad code " + r.PostForm.Get("code")})
	}))
	t.Cleanup(srv.Close)
	s := e.store(func(o *authstore.Options) { o.Webex.TokenURL = srv.URL })
	started, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
		Name: "echo", Kind: authstore.KindWebexLogin, BaseURL: e.sim.BaseURL(), Domain: "acme",
	})
	if err != nil {
		t.Fatal(err)
	}
	state := mustParse(t, started.AuthorizeURL).Query().Get("state")
	_, err = s.CompleteLogin(ctxT(t), url.Values{"state": {state}, "code": {code}})
	ae := wantCode(t, err, authstore.ErrExchangeFailed)
	for _, text := range []string{err.Error(), ae.Message, ae.ProviderError, ae.ProviderDescription, e.logs.String()} {
		if strings.Contains(text, code) {
			t.Errorf("%q holds the login code", text)
		}
	}
}

// A short secret is found inside ordinary words: redacted there, "wrong secret" would
// read "wrong [redacted]ecret" and spell the secret out. Such a text is dropped whole.
func TestAShortSecretInTheProvidersAnswerDropsTheWholeText(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	const secret = "s"
	s, base := e.providerStore(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": "wrong secret"})
	})
	_, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
		Name: "short", Kind: authstore.KindClientCredentials, BaseURL: base, Domain: "acme",
		TenantID: "tenant-1", TenantSecret: secrets.New(secret),
	})
	ae := wantCode(t, err, authstore.ErrProviderRejected)
	if ae.ProviderDescription != "[redacted]" || strings.Contains(err.Error(), "ecret") {
		t.Fatalf("description %q, error %q: want the description dropped whole", ae.ProviderDescription, err)
	}
	if ae.ProviderError != "invalid_client" {
		t.Fatalf("provider error %q, want invalid_client (it does not hold the secret)", ae.ProviderError)
	}
}

// loginCachedOnTwoInstances makes a Webex login on instance A and starts instance B,
// whose cache then holds its token. B starts after the login's NOTIFY, which would
// otherwise race the caching.
func loginCachedOnTwoInstances(t *testing.T, e *env, name string) (a, b *authstore.Store, auth authstore.Authorization, cached authstore.Credential) {
	t.Helper()
	a = e.replica()
	auth = e.createLogin(a, acme, name)
	b = e.replica()
	waitListening(t, a, b)
	return a, b, auth, warm(t, e, b, 1, auth.ID)
}

// A final refusal leaves no token at rest: the refresh token is dead, and the access
// token, which may still work at Engage until it expires, is never handed out again.
func TestAnAuthorizationThatNeedsReauthorizationKeepsNoTokenAtRest(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	a := e.createLogin(s, acme, "replayed")
	e.spendRefreshToken(a.ID)
	e.expire(a.ID)
	_, err := s.Token(ctxT(t), acme, a.ID)
	wantAuthError(t, err, outcomes.CodeNeedsReauthorization)
	var access, refresh []byte
	if err := e.pool.QueryRow(ctxT(t), "select access_token, refresh_token from authorizations where id = $1", a.ID).Scan(&access, &refresh); err != nil {
		t.Fatal(err)
	}
	if access != nil || refresh != nil {
		t.Fatalf("needs_reauthorization still stores an access token (%t) or a refresh token (%t)", access != nil, refresh != nil)
	}
}

// A failed refresh leaves the token endpoint alone for FailureBackoff, on every replica:
// the row says so until that long after the failure.
func TestAFailedRefreshBacksOffForTheFailureBackoff(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	const backoff = 3 * time.Second
	s := e.store(func(o *authstore.Options) { o.FailureBackoff = backoff })
	a := e.createCC(s, acme, "flaky")
	e.expire(a.ID)
	e.sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Status: http.StatusServiceUnavailable})

	before := time.Now()
	if _, err := s.Token(ctxT(t), acme, a.ID); !errors.Is(err, outcomes.ErrTokenUnavailable) {
		t.Fatalf("got %v, want the token endpoint's failure", err)
	}
	after := time.Now()
	var until time.Time
	if err := e.pool.QueryRow(ctxT(t), "select refresh_backoff_until from authorizations where id = $1", a.ID).Scan(&until); err != nil {
		t.Fatal(err)
	}
	if until.Before(before.Add(backoff)) || until.After(after.Add(backoff)) {
		t.Fatalf("backing off until %s after the failure, want %s", until.Sub(before).Round(time.Millisecond), backoff)
	}
}

// The refresh lock is waited for LockTimeout, and by default for the refresh timeout plus
// two seconds: longer than the refresh of the replica that holds it may take
// (docs/authorizations.md).
func TestARefreshWaitsForAHeldLockTheLockTimeout(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     func(*authstore.Options)
		min, max time.Duration
	}{
		{"LockTimeout", func(o *authstore.Options) { o.LockTimeout = time.Second }, time.Second, 4 * time.Second},
		{"default", func(o *authstore.Options) { o.RefreshTimeout = 300 * time.Millisecond }, 2300 * time.Millisecond, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, engagesim.Config{})
			s := e.store(tc.opts)
			a := e.createCC(s, acme, "locked")
			e.expire(a.ID)
			e.lockRow(a.ID)
			start := time.Now()
			if _, err := s.Token(ctxT(t), acme, a.ID); err == nil {
				t.Fatal("a token came through while another transaction held the refresh lock")
			}
			if took := time.Since(start); took < tc.min || took > tc.max {
				t.Fatalf("Token gave up on the lock after %s, want %s (at most %s)", took.Round(time.Millisecond), tc.min, tc.max)
			}
		})
	}
}

// A tenant secret pasted into a field the service stores in clear and shows back (the
// name, the domain, the tenant ID: a password manager that filled two fields) would be
// listed, audited and shown to anyone who reads the authorizations: the request is
// refused before anything is stored or sent, and the refusal names the field without
// repeating it.
func TestATenantSecretAlsoGivenInAFieldThatIsShownBackIsRefusedWithoutRepeatingIt(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	const secret = "CANARY.pasted-secret.4e1b"
	var calls atomic.Int32
	s, base := e.providerStore(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"at-1","token_type":"bearer","expires_in":3600}`))
	})
	good := authstore.CreateRequest{Name: "shown", Kind: authstore.KindClientCredentials, BaseURL: base, Domain: "acme",
		TenantID: "tenant-1", TenantSecret: secrets.New(secret)}
	for field, req := range map[string]authstore.CreateRequest{
		"name":     {Name: "prod " + secret, Kind: good.Kind, BaseURL: base, Domain: "acme", TenantID: "tenant-1", TenantSecret: good.TenantSecret},
		"domain":   {Name: "d", Kind: good.Kind, BaseURL: base, Domain: secret, TenantID: "tenant-1", TenantSecret: good.TenantSecret},
		"tenantId": {Name: "t", Kind: good.Kind, BaseURL: base, Domain: "acme", TenantID: " " + secret + " ", TenantSecret: good.TenantSecret},
	} {
		_, err := s.Create(ctxT(t), acme, authstore.ActorAPI, req)
		ae := wantCode(t, err, authstore.ErrInvalid)
		if strings.Contains(err.Error(), secret) || !strings.Contains(ae.Message, "given in "+field) {
			t.Errorf("%s: %q", field, err)
		}
	}
	var rows, events int
	if err := e.pool.QueryRow(ctxT(t), "select (select count(*) from authorizations), (select count(*) from audit_events)").Scan(&rows, &events); err != nil {
		t.Fatal(err)
	}
	if rows != 0 || events != 0 || calls.Load() != 0 {
		t.Fatalf("refused requests stored %d rows and %d audit events, and called the token endpoint %d times", rows, events, calls.Load())
	}

	// Re-authorizing with the new secret also typed as the tenant ID is refused alike.
	started, err := s.Create(ctxT(t), acme, authstore.ActorAPI, good)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Reauthorize(ctxT(t), acme, authstore.ActorAPI, started.ID, authstore.ReauthorizeRequest{TenantID: secret, TenantSecret: secrets.New(secret)})
	if wantCode(t, err, authstore.ErrInvalid); strings.Contains(err.Error(), secret) {
		t.Errorf("%q", err)
	}
	// And with the stored secret typed as the tenant ID, the secret left out to keep it.
	_, err = s.Reauthorize(ctxT(t), acme, authstore.ActorAPI, started.ID, authstore.ReauthorizeRequest{TenantID: secret})
	if ae := wantCode(t, err, authstore.ErrInvalid); strings.Contains(err.Error(), secret) || ae.SecretIn != "tenantId" {
		t.Errorf("%q, secret in %q", err, ae.SecretIn)
	}
	if calls.Load() != 1 {
		t.Fatalf("the token endpoint was called %d times, want once (the create)", calls.Load())
	}
	if got, err := s.Get(ctxT(t), acme, started.ID); err != nil || got.TenantID != "tenant-1" {
		t.Fatalf("after the refusal: %+v, %v", got, err)
	}
	// A short secret is found inside ordinary words: only a field that is it counts.
	short := good
	short.Name, short.TenantSecret = "abc-prod", secrets.New("abc")
	if _, err := s.Create(ctxT(t), acme, authstore.ActorAPI, short); err != nil {
		t.Fatalf("a name holding a short secret as part of a word: %v", err)
	}
}

// A token endpoint that answers a redirect (307 and 308 keep the method and the body:
// the refresh token, the login code, the client's credentials) sends nothing to the host
// it names: the answer is a failed call, the refresh backs off, and the login keeps its
// refresh token for when the endpoint answers again.
func TestATokenEndpointThatRedirectsNeverHasTheCredentialsSentElsewhere(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(other.Close)
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		redirect := func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/oauth/token", status)
		}
		// Client credentials: the token endpoint at an allowlisted base URL.
		s, base := e.providerStore(redirect)
		_, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
			Name: fmt.Sprint("cc ", status), Kind: authstore.KindClientCredentials, BaseURL: base, Domain: "acme",
			TenantID: "tenant-1", TenantSecret: secrets.New(ccSecret),
		})
		if err == nil || strings.Contains(err.Error(), ccSecret) {
			t.Fatalf("%d: create answered %v", status, err)
		}
		// A Webex login refreshing at a token endpoint that redirects.
		login := e.createLogin(e.store(), acme, fmt.Sprint("login ", status))
		spent := e.storedRefreshToken(login.ID)
		redirector := httptest.NewServer(http.HandlerFunc(redirect))
		t.Cleanup(redirector.Close)
		r := e.store(func(o *authstore.Options) { o.Webex.TokenURL = redirector.URL + "/oauth/token" })
		e.expire(login.ID)
		if _, err := r.Token(ctxT(t), acme, login.ID); err == nil {
			t.Fatalf("%d: a refresh answered by a redirect handed out a token", status)
		}
		if e.status(login.ID) != "active" || e.storedRefreshToken(login.ID) != spent {
			t.Fatalf("%d: the login lost its refresh token over a redirect", status)
		}
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the host a redirect named got %d requests", n)
	}
}
