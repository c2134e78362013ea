package authstore_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/outcomes"
	"github.com/noderuntime/noderuntime/internal/secrets"
)

// storedRefreshToken reads a row's refresh token the way an attacker with the key ring
// would, to replay it.
func (e *env) storedRefreshToken(id string) string {
	e.t.Helper()
	var ct []byte
	if err := e.pool.QueryRow(context.Background(), "select refresh_token from authorizations where id = $1", id).Scan(&ct); err != nil {
		e.t.Fatal(err)
	}
	plain, err := e.ring.Decrypt(ct, []byte("authorizations/"+id+"/refresh_token"))
	if err != nil {
		e.t.Fatal(err)
	}
	return string(plain)
}

// spendRefreshToken uses id's stored refresh token the way a thief with the key ring
// would, so that the store's next use of it is a replay.
func (e *env) spendRefreshToken(id string) {
	e.t.Helper()
	resp, err := http.PostForm(e.sim.TokenURL(), url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {e.storedRefreshToken(id)},
		"client_id": {"noderuntime"}, "client_secret": {clientSecret},
	})
	if err != nil || resp.StatusCode != 200 {
		e.t.Fatalf("thief's refresh: %v %v", resp, err)
	}
	resp.Body.Close()
}

func concurrently(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			f(i)
		}()
	}
	close(start)
	wg.Wait()
}

func Test200ConcurrentCallsOnAnExpiredTokenRefreshItOnce(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	a := e.createLogin(s, acme, "busy")
	e.expire(a.ID)
	e.sim.ResetCounters()

	tokens := make([]string, 200)
	errs := make([]error, 200)
	concurrently(200, func(i int) {
		c, err := s.Token(ctxT(t), acme, a.ID)
		tokens[i], errs[i] = c.AccessToken.Reveal(), err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if tokens[i] != tokens[0] {
			t.Fatal("callers got different tokens")
		}
	}
	if n := e.sim.Grants(engagesim.GrantRefreshToken); n != 1 {
		t.Fatalf("%d refresh grants, want exactly 1", n)
	}
	if e.sim.InvalidGrants() != 0 {
		t.Fatal("invalid_grant answered")
	}
	if got := counter(t, e.regs[0], "noderuntime_token_refreshes_total", "success"); got != 1 {
		t.Fatalf("refreshes{success} = %v", got)
	}
}

func TestThreeInstancesOnOneDatabaseStillRefreshOnce(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	creator := e.store()
	a := e.createLogin(creator, acme, "shared")
	instances := []*authstore.Store{e.replica(), e.replica(), e.replica()}
	// Listening, so the count below is of this test's loads: a listener that connects
	// meanwhile starts a session, and the calls after it share a load of their own.
	waitListening(t, instances...)
	e.expire(a.ID)
	e.sim.ResetCounters()
	// A slow token endpoint, so every instance reads the expired token and queues for
	// the row lock while the first refresh is in flight.
	e.sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Latency: 300 * time.Millisecond})

	tokens := make([]string, 210)
	errs := make([]error, 210)
	concurrently(210, func(i int) {
		c, err := instances[i%3].Token(ctxT(t), acme, a.ID)
		tokens[i], errs[i] = c.AccessToken.Reveal(), err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d on instance %d: %v", i, i%3, err)
		}
		if tokens[i] != tokens[0] {
			t.Fatal("instances got different tokens")
		}
	}
	if n := e.sim.Grants(engagesim.GrantRefreshToken); n != 1 {
		t.Fatalf("%d refresh grants across 3 instances, want exactly 1", n)
	}
	if n := e.sim.InvalidGrants(); n != 0 {
		t.Fatalf("%d invalid_grant answers, want 0", n)
	}
	var skipped float64
	for _, reg := range e.regs[1:] {
		skipped += counter(t, reg, "noderuntime_token_refreshes_total", "skipped")
	}
	if skipped != 2 {
		t.Fatalf("%v instances skipped the refresh, want 2 (they waited for the lock and found it done)", skipped)
	}
	c, err := instances[0].Token(ctxT(t), acme, a.ID)
	if err != nil || e.works(c) != nil {
		t.Fatalf("the refreshed token does not work: %v", err)
	}
}

func TestAReplayedRefreshTokenEndsInNeedsReauthorizationNotALoop(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	a := e.createLogin(s, acme, "stolen")
	// Someone else spends the refresh token first: the provider sees our later use as a
	// replay and revokes the whole family.
	e.spendRefreshToken(a.ID)
	e.expire(a.ID)
	e.sim.ResetCounters()

	_, err := s.Token(ctxT(t), acme, a.ID)
	wantAuthError(t, err, outcomes.CodeNeedsReauthorization)
	if e.status(a.ID) != "needs_reauthorization" {
		t.Fatalf("status %s", e.status(a.ID))
	}
	for range 50 {
		_, err = s.Token(ctxT(t), acme, a.ID)
		wantAuthError(t, err, outcomes.CodeNeedsReauthorization)
		_, err = s.Refresh(ctxT(t), acme, a.ID, secrets.New("simat_whatever"))
		wantAuthError(t, err, outcomes.CodeNeedsReauthorization)
	}
	if calls := e.sim.Calls(engagesim.OpToken); calls != 1 || e.sim.InvalidGrants() != 1 {
		t.Fatalf("%d token calls, %d invalid_grant: want exactly one of each, no retry loop", calls, e.sim.InvalidGrants())
	}
	if got := counter(t, e.regs[0], "noderuntime_token_refreshes_total", "invalid_grant"); got != 1 {
		t.Fatalf("refreshes{invalid_grant} = %v", got)
	}
	got, _ := s.Get(ctxT(t), acme, a.ID)
	if !strings.Contains(got.StatusReason, "invalid_grant") {
		t.Fatalf("status reason %q", got.StatusReason)
	}
	events, _ := s.Audit(ctxT(t), acme, a.ID)
	if last := events[len(events)-1]; last.Action != "refresh_failed" || last.Actor != "system" || last.Detail["error"] != "invalid_grant" {
		t.Fatalf("last audit event %+v", last)
	}
}

func TestChangedCredentialsAtTheProviderLeadToNeedsReauthorizationOnTheNextRefresh(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	login := e.createLogin(s, acme, "login")
	cc := e.createCC(s, acme, "cc")
	for _, id := range []string{login.ID, cc.ID} {
		if _, err := s.Token(ctxT(t), acme, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.sim.ChangePassword("alice", "new-"+userPassword); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.ChangeTenantSecret("tenant-1", newCCSecret); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{login.ID, cc.ID} {
		e.expire(id)
		// The cache still holds the old token until its own expiry; Engage's 401 is
		// what the execution path would see first.
		c, err := s.Token(ctxT(t), acme, id)
		if err == nil {
			_, err = s.Refresh(ctxT(t), acme, id, c.AccessToken)
		}
		wantAuthError(t, err, outcomes.CodeNeedsReauthorization)
		if e.status(id) != "needs_reauthorization" {
			t.Fatalf("status %s", e.status(id))
		}
	}

	// Re-authorizing with the new secret makes the client credentials usable again.
	_, err := s.Reauthorize(ctxT(t), acme, authstore.ActorAPI, cc.ID, authstore.ReauthorizeRequest{TenantSecret: secrets.New("still-wrong")})
	wantCode(t, err, authstore.ErrProviderRejected)
	if e.status(cc.ID) != "needs_reauthorization" {
		t.Fatal("a refused re-authorization changed the status")
	}
	st, err := s.Reauthorize(ctxT(t), acme, authstore.ActorAPI, cc.ID, authstore.ReauthorizeRequest{TenantSecret: secrets.New(newCCSecret)})
	if err != nil || st.Status != authstore.StatusActive || st.AuthorizeURL != "" {
		t.Fatalf("reauthorize: %+v %v", st, err)
	}
	c, err := s.Token(ctxT(t), acme, cc.ID)
	if err != nil || e.works(c) != nil {
		t.Fatalf("after re-authorization: %v", err)
	}
}

// A Webex login refreshes through the service's own client (WEBEX_CLIENT_ID/SECRET).
// A replica with a wrong client secret is misconfigured; the logins are fine, so none
// of them may be marked for re-authorization or lose its refresh token over it.
func TestARefusedWebexClientIsAConfigurationFaultNotTheLogins(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	a := e.createLogin(s, acme, "login")
	refreshToken := e.storedRefreshToken(a.ID)
	e.expire(a.ID)
	misconfigured := e.replica(func(o *authstore.Options) { o.Webex.ClientSecret = secrets.New("not-the-client-secret") })

	for range 3 {
		_, err := misconfigured.Token(ctxT(t), acme, a.ID)
		if err == nil {
			t.Fatal("a token came through a refused client")
		}
		if _, ok := errors.AsType[*outcomes.AuthorizationError](err); ok {
			t.Fatalf("the service's own client was refused, yet the login was blamed: %v", err)
		}
	}
	if st := e.status(a.ID); st != "active" {
		t.Fatalf("status %s, want active", st)
	}
	if got := e.storedRefreshToken(a.ID); got != refreshToken {
		t.Fatal("the login's refresh token was dropped or replaced")
	}
	if got := counter(t, e.regs[len(e.regs)-1], "noderuntime_token_refreshes_total", "invalid_grant"); got != 0 {
		t.Fatalf("refreshes{invalid_grant} = %v, want 0", got)
	}
	if !strings.Contains(e.logs.String(), "WEBEX_CLIENT_SECRET") {
		t.Fatal("no log line tells the operator which setting to check")
	}

	// Once the configuration is right, the same login refreshes with no one signing in
	// (after the backoff the failures recorded for every replica).
	fixed := e.replica()
	var c authstore.Credential
	waitFor(t, 5*time.Second, "a refresh after fixing the client secret", func() bool {
		var err error
		c, err = fixed.Token(ctxT(t), acme, a.ID)
		return err == nil
	})
	if err := e.works(c); err != nil {
		t.Fatalf("after fixing the client secret: %v", err)
	}
}

func TestRefreshAfterA401ReplacesTheRejectedTokenOnce(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	other := e.replica()
	a := e.createLogin(s, acme, "401")
	old, err := s.Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Engage answered 401 to old (why does not matter here: the simulator's
	// RevokeAccessToken would revoke the refresh family too).
	e.sim.ResetCounters()

	fresh := make([]string, 50)
	concurrently(50, func(i int) {
		st := s
		if i%2 == 1 {
			st = other
		}
		c, err := st.Refresh(ctxT(t), acme, a.ID, old.AccessToken)
		if err != nil {
			t.Error(err)
		}
		fresh[i] = c.AccessToken.Reveal()
	})
	if n := e.sim.Grants(engagesim.GrantRefreshToken); n != 1 {
		t.Fatalf("%d refresh grants for one rejected token, want 1", n)
	}
	for _, f := range fresh {
		if f != fresh[0] || f == old.AccessToken.Reveal() {
			t.Fatal("callers did not all get the one new token")
		}
	}
	c, err := s.Token(ctxT(t), acme, a.ID)
	if err != nil || c.AccessToken.Reveal() != fresh[0] || e.works(c) != nil {
		t.Fatalf("Token after Refresh: %v", err)
	}
}

// Passing failures of the token endpoint (a 503, a 429, an answer slower than the
// refresh timeout) back off: one call during the backoff, the status stays active, and
// the authorization recovers by itself.
func TestTokenEndpointFailuresBackOffInsteadOfHammering(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault engagesim.Fault
	}{
		{"503", engagesim.Fault{Op: engagesim.OpToken, Status: http.StatusServiceUnavailable}},
		{"429", engagesim.Fault{Op: engagesim.OpToken, Status: http.StatusTooManyRequests}},
		{"slower than the refresh timeout", engagesim.Fault{Op: engagesim.OpToken, Latency: 3 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, engagesim.Config{})
			s := e.store(func(o *authstore.Options) {
				o.RefreshTimeout = 200 * time.Millisecond
				o.FailureBackoff = time.Second
			})
			a := e.createCC(s, acme, "flaky")
			e.expire(a.ID)
			e.sim.ResetCounters()
			fault := e.sim.InjectFault(tc.fault)

			start := time.Now()
			_, err := s.Token(ctxT(t), acme, a.ID)
			if err == nil {
				t.Fatal("no error from a failing token endpoint")
			}
			if _, ok := errors.AsType[*outcomes.AuthorizationError](err); ok {
				t.Fatalf("a passing failure is not an authorization failure: %v", err)
			}
			if !errors.Is(err, outcomes.ErrTokenUnavailable) {
				t.Fatalf("the endpoint's failure is not marked as one: %v", err)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("the refresh took %s, with a 200ms refresh timeout", took)
			}
			for range 30 {
				if _, err := s.Token(ctxT(t), acme, a.ID); !errors.Is(err, outcomes.ErrTokenUnavailable) {
					t.Fatalf("during the backoff: %v, want the token endpoint's failure", err)
				}
			}
			if n := e.sim.Calls(engagesim.OpToken); n != 1 {
				t.Fatalf("%d token calls during the backoff, want 1", n)
			}
			if e.status(a.ID) != "active" {
				t.Fatalf("a passing failure changed the status to %s", e.status(a.ID))
			}
			if got := counter(t, e.regs[0], "noderuntime_token_refreshes_total", "error"); got != 1 {
				t.Fatalf("refreshes{error} = %v", got)
			}
			// Read by people: "1s", not slog's nanoseconds.
			if logs := e.logs.String(); !strings.Contains(logs, `"backoff":"1s"`) {
				t.Fatalf("the warning does not say the backoff in a readable unit:\n%s", logs)
			}
			e.sim.RemoveFault(fault)
			waitFor(t, 5*time.Second, "recovery after the backoff", func() bool {
				_, err := s.Token(ctxT(t), acme, a.ID)
				return err == nil
			})
		})
	}
}

// The backoff is the authorization's, not one replica's: replicas that queued on the
// row's refresh lock behind a failing refresh, or come later, do not call the failing
// token endpoint again before the backoff ends.
func TestAFailingTokenEndpointIsCalledOnceAcrossReplicas(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	replicas := []*authstore.Store{e.store(), e.replica(), e.replica()}
	a := e.createCC(replicas[0], acme, "flaky")
	e.expire(a.ID)
	e.sim.ResetCounters()
	// Slow enough that the other replicas are waiting on the row lock when it fails.
	fault := e.sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Status: http.StatusServiceUnavailable, Latency: 200 * time.Millisecond})
	concurrently(30, func(i int) {
		if _, err := replicas[i%3].Token(ctxT(t), acme, a.ID); err == nil {
			t.Error("a token with the token endpoint down and the stored one expired")
		}
	})
	if n := e.sim.Calls(engagesim.OpToken); n != 1 {
		t.Fatalf("%d token calls from three replicas during the backoff, want 1", n)
	}
	if e.status(a.ID) != "active" {
		t.Fatal("an outage changed the status")
	}
	e.sim.RemoveFault(fault)
	waitFor(t, 5*time.Second, "recovery after the backoff", func() bool {
		_, err := replicas[2].Token(ctxT(t), acme, a.ID)
		return err == nil
	})
	if n := e.sim.Calls(engagesim.OpToken); n != 2 {
		t.Fatalf("%d token calls in all, want 2 (the failure and the recovery)", n)
	}
}

func TestAFailingRefreshStillServesATokenThatHasNotExpired(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store(func(o *authstore.Options) { o.RefreshSkew = 2 * time.Hour }) // always "due"
	a := e.createCC(s, acme, "due")
	e.sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Status: http.StatusBadGateway})
	c, err := s.Token(ctxT(t), acme, a.ID)
	if err != nil || e.works(c) != nil {
		t.Fatalf("a valid token was withheld because its early refresh failed: %v", err)
	}
}

func TestTokensAreRefreshedEarlyWithinTheSkew(t *testing.T) {
	e := newEnv(t, engagesim.Config{AccessTokenTTL: 4 * time.Second})
	s := e.store(func(o *authstore.Options) { o.RefreshSkew = 1500 * time.Millisecond })
	a := e.createLogin(s, acme, "short-lived")
	first, err := s.Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The token lives 4 s; with a 1.5 s skew it is renewed from 2.5 s on, before it
	// expires.
	var next authstore.Credential
	waitFor(t, 3500*time.Millisecond, "early refresh", func() bool {
		next, err = s.Token(ctxT(t), acme, a.ID)
		return err == nil && next.AccessToken.Reveal() != first.AccessToken.Reveal()
	})
	if !time.Now().Before(first.ExpiresAt) {
		t.Fatal("refreshed only after expiry")
	}
	if e.works(next) != nil || e.sim.Grants(engagesim.GrantRefreshToken) != 1 {
		t.Fatalf("refresh grants %d", e.sim.Grants(engagesim.GrantRefreshToken))
	}
}

// A provider whose tokens live no longer than the refresh skew (here 4 s against the
// default 5 minutes) must not have every call refresh, each spending a rotating refresh
// token: such a token is refreshed at half its life.
func TestTokensShorterThanTheSkewAreRefreshedAtHalfTheirLife(t *testing.T) {
	e := newEnv(t, engagesim.Config{AccessTokenTTL: 4 * time.Second})
	s := e.store(func(o *authstore.Options) { o.RefreshSkew = 5 * time.Minute })
	a := e.createLogin(s, acme, "shorter-than-the-skew")
	e.sim.ResetCounters()
	first, err := s.Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	other := e.replica()
	for range 20 {
		for _, st := range []*authstore.Store{s, other} {
			if _, err := st.Token(ctxT(t), acme, a.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if time.Until(first.ExpiresAt) > 2*time.Second {
		if n := e.sim.Grants(engagesim.GrantRefreshToken); n != 0 {
			t.Fatalf("%d refreshes in the first half of the token's life, want 0", n)
		}
	}
	var next authstore.Credential
	waitFor(t, 3500*time.Millisecond, "a refresh at half the token's life", func() bool {
		next, err = s.Token(ctxT(t), acme, a.ID)
		return err == nil && next.AccessToken.Reveal() != first.AccessToken.Reveal()
	})
	// At half its life, not merely before expiry: the other half is the margin the skew
	// would have given (refreshed later, at three quarters, 1s would be left).
	if left := time.Until(first.ExpiresAt); left < 1500*time.Millisecond {
		t.Fatalf("refreshed %s before expiry, want about half the token's life (2s)", left.Round(time.Millisecond))
	}
	if err := e.works(next); err != nil {
		t.Fatalf("the refreshed token does not work: %v", err)
	}
	if n := e.sim.Grants(engagesim.GrantRefreshToken); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
}

func TestTheSteadyStateIsACacheHitWithoutADatabaseRoundTrip(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	pool := e.newPool()
	s := e.store(func(o *authstore.Options) { o.Pool = pool; o.RefreshSkew = time.Minute })
	a := e.createCC(s, acme, "hot")
	waitListening(t, s)
	if _, err := s.Token(ctxT(t), acme, a.ID); err != nil {
		t.Fatal(err)
	}
	acquires := pool.Stat().AcquireCount()
	for range 1000 {
		if _, err := s.Token(ctxT(t), acme, a.ID); err != nil {
			t.Fatal(err)
		}
	}
	if got := pool.Stat().AcquireCount(); got != acquires {
		t.Fatalf("%d database round trips in the steady state, want 0", got-acquires)
	}
	if hits := counter(t, e.regs[0], "noderuntime_token_cache_requests_total", "hit"); hits != 1000 {
		t.Fatalf("cache hits %v, want 1000", hits)
	}
	// Another tenant asking for the cached ID is not served from the cache.
	_, err := s.Token(ctxT(t), globex, a.ID)
	wantAuthError(t, err, outcomes.CodeAuthorizationNotFound)
}

func TestTheAuthorizationsGaugeCountsByStatus(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	e.createCC(s, acme, "one")
	e.createCC(s, globex, "two")
	if _, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{Name: "p", Kind: authstore.KindWebexLogin, BaseURL: e.sim.BaseURL(), Domain: "acme"}); err != nil {
		t.Fatal(err)
	}
	reg := e.regs[0]
	for status, want := range map[string]float64{"active": 2, "pending": 1, "needs_reauthorization": 0} {
		if got := counter(t, reg, "noderuntime_authorizations", status); got != want {
			t.Errorf("authorizations{status=%q} = %v, want %v", status, got, want)
		}
	}
}

// Scrapes within statusCacheFor (10 s) of a count answer from it: several Prometheus
// servers scraping every replica cost one query per replica and period, not one each.
func TestTheAuthorizationsGaugeIsCountedOnceForScrapesCloseTogether(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	e.createCC(s, acme, "one")
	reg := e.regs[0]
	if got := counter(t, reg, "noderuntime_authorizations", "active"); got != 1 {
		t.Fatalf("active = %v, want 1", got)
	}
	e.createCC(s, acme, "two")
	if got := counter(t, reg, "noderuntime_authorizations", "active"); got != 1 {
		t.Fatalf("active = %v on a scrape right after the first, want the first's 1 (no second query)", got)
	}
}

// While Postgres has never answered the count, the gauge has no sample at all: a zero
// for every status would read as "no authorizations" on a dashboard.
func TestTheAuthorizationsGaugeHasNoSampleBeforePostgresAnswers(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	unreachable, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unreachable.Close)
	e.store(func(o *authstore.Options) { o.Pool = unreachable })
	mfs, err := e.regs[0].Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "noderuntime_authorizations" {
			t.Fatalf("%d samples of noderuntime_authorizations without a count, want none", len(mf.GetMetric()))
		}
	}
}

// A Refresh that comes after the rejected token was already replaced (by another
// replica, or by an earlier call here) hands out the newer token without calling the
// token endpoint, and counts as skipped: the metric tells refreshes from the calls
// that found one done.
func TestARefreshOfATokenAlreadyReplacedElsewhereCountsAsSkipped(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	other := e.replica()
	a := e.createLogin(s, acme, "replaced elsewhere")
	old, err := s.Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := s.Refresh(ctxT(t), acme, a.ID, old.AccessToken)
	if err != nil || fresh.AccessToken.Reveal() == old.AccessToken.Reveal() {
		t.Fatalf("first refresh: %v", err)
	}
	e.sim.ResetCounters()

	for _, st := range []*authstore.Store{other, s} {
		c, err := st.Refresh(ctxT(t), acme, a.ID, old.AccessToken)
		if err != nil || c.AccessToken.Reveal() != fresh.AccessToken.Reveal() {
			t.Fatalf("refresh of the replaced token: %v; want the token that replaced it", err)
		}
	}
	if n := e.sim.Grants(engagesim.GrantRefreshToken); n != 0 {
		t.Fatalf("%d refresh grants for a token already replaced, want 0", n)
	}
	for i, want := range []map[string]float64{
		{"success": 1, "skipped": 1}, // s: the first refresh, then the repeated one
		{"success": 0, "skipped": 1}, // other: found it done
	} {
		for result, n := range want {
			if got := counter(t, e.regs[i], "noderuntime_token_refreshes_total", result); got != n {
				t.Errorf("instance %d: %v refreshes counted %s, want %v", i, got, result, n)
			}
		}
	}
}
