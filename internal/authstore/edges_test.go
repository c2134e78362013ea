package authstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/outcomes"
	"github.com/noderuntime/noderuntime/internal/secrets"
)

// storedAccessToken decrypts a row's access token.
func (e *env) storedAccessToken(id string) string {
	e.t.Helper()
	var ct []byte
	if err := e.pool.QueryRow(context.Background(), "select access_token from authorizations where id = $1", id).Scan(&ct); err != nil {
		e.t.Fatal(err)
	}
	plain, err := e.ring.Decrypt(ct, []byte("authorizations/"+id+"/access_token"))
	if err != nil {
		e.t.Fatal(err)
	}
	return string(plain)
}

// dueButValid makes id's stored token due for refresh under a 5-minute skew (it was
// issued an hour ago) though it still works for two minutes.
func (e *env) dueButValid(id string) {
	e.t.Helper()
	if _, err := e.pool.Exec(context.Background(), `update authorizations set updated_at = now() - interval '1 hour',
		token_expiry = now() + interval '2 minutes' where id = $1`, id); err != nil {
		e.t.Fatal(err)
	}
}

// backoffUntil is the refresh backoff recorded in id's row, or nil.
func (e *env) backoffUntil(id string) *time.Time {
	e.t.Helper()
	var until *time.Time
	if err := e.pool.QueryRow(context.Background(), "select refresh_backoff_until from authorizations where id = $1", id).Scan(&until); err != nil {
		e.t.Fatal(err)
	}
	return until
}

// gatedPool is a pool (for a replica) whose new connections fail while refuse is set;
// the connections it already holds go on working. A Store's LISTEN connection copies
// the pool's connection settings, so it cannot come back while refuse is set. Every
// connection carries application_name app.
func (e *env) gatedPool(app string, refuse *atomic.Bool) *pgxpool.Pool {
	e.t.Helper()
	cfg, err := pgxpool.ParseConfig(e.url)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	cfg.ConnConfig.AfterConnect = func(context.Context, *pgconn.PgConn) error {
		if refuse.Load() {
			return errors.New("new connections refused by the test")
		}
		return nil
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(pool.Close)
	return pool
}

// lockWaiters counts the sessions of the test's database waiting for a lock.
func (e *env) lockWaiters() int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), `select count(*) from pg_stat_activity
		where datname = current_database() and wait_event_type = 'Lock'`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// eventually reports whether cond held within the time given (polled as waitFor does).
func eventually(within time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(within); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

type tokenResult struct {
	c   authstore.Credential
	err error
}

// A refresh in flight for one tenant's authorization is not something another tenant
// can join: globex asking for acme's authorization ID while acme's refresh runs gets
// authorization_not_found, as it would at any other time, never acme's token.
func TestAnotherTenantAskingDuringARefreshGetsNotFoundNotTheToken(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	a := e.createCC(s, acme, "acme only")
	e.expire(a.ID)
	e.sim.ResetCounters()
	e.sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Latency: 500 * time.Millisecond})

	acmeDone := make(chan tokenResult, 1)
	go func() {
		c, err := s.Token(ctxT(t), acme, a.ID)
		acmeDone <- tokenResult{c, err}
	}()
	waitFor(t, 5*time.Second, "acme's refresh reaches the token endpoint", func() bool {
		return e.sim.Calls(engagesim.OpToken) == 1
	})
	c, err := s.Token(ctxT(t), globex, a.ID)
	select {
	case <-acmeDone:
		t.Fatal("acme's refresh ended before globex's call answered: the calls did not overlap")
	default:
	}
	if err == nil {
		t.Fatalf("globex got a credential for acme's authorization (%d characters of token)", len(c.AccessToken.Reveal()))
	}
	wantAuthError(t, err, outcomes.CodeAuthorizationNotFound)

	r := <-acmeDone
	if r.err != nil || e.works(r.c) != nil {
		t.Fatalf("acme's own refresh: %v", r.err)
	}
	if n := e.sim.Calls(engagesim.OpToken); n != 1 {
		t.Fatalf("%d token calls, want 1 (acme's refresh)", n)
	}
}

// While its listener is down an instance asks Postgres first, and when Postgres answers
// that the authorization is gone, that is the answer: the cache serves only when
// Postgres cannot answer at all, never over a definite refusal.
func TestADisconnectedInstanceAnswersNotFoundForADeletionItMissedInsteadOfItsCache(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	var refuse atomic.Bool
	t.Cleanup(func() { refuse.Store(false) })
	a := e.replica()
	b := e.store(func(o *authstore.Options) { o.Pool = e.gatedPool("replica-b", &refuse) })
	waitListening(t, a, b)
	auth := e.createCC(a, acme, "deleted while B is deaf")
	warm(t, e, b, 1, auth.ID)

	// B's listener loses its connection and cannot make a new one; B's pool keeps the
	// connection it has.
	refuse.Store(true)
	var killed int
	err := e.pool.QueryRow(context.Background(), `select count(pg_terminate_backend(pid)) from pg_stat_activity
		where datname = current_database() and application_name = 'replica-b' and query like 'listen %'`).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminated %d listeners of B (%v), want 1", killed, err)
	}
	waitFor(t, 5*time.Second, "B notices the lost connection", func() bool { return !b.Listening() })

	if err := a.Delete(ctxT(t), acme, authstore.ActorAPI, auth.ID); err != nil {
		t.Fatal(err)
	}
	c, err := b.Token(ctxT(t), acme, auth.ID)
	if err == nil {
		t.Fatalf("B served its cached token of a deleted authorization (expires %s)", c.ExpiresAt)
	}
	wantAuthError(t, err, outcomes.CodeAuthorizationNotFound)
	if b.Listening() {
		t.Fatal("B's listener came back during the test: the cache was cleared anyway, so this proves nothing")
	}

	refuse.Store(false)
	waitListening(t, b)
	_, err = b.Token(ctxT(t), acme, auth.ID)
	wantAuthError(t, err, outcomes.CodeAuthorizationNotFound)
}

// A token due for refresh but not expired is still handed out when the refresh fails
// for a passing reason, and the failure backs off: the next calls within the backoff
// get the same token without calling the token endpoint again.
func TestATransientRefreshFailureHandsOutTheCurrentTokenAndBacksOff(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store(func(o *authstore.Options) {
		o.RefreshSkew = 5 * time.Minute
		o.FailureBackoff = time.Minute
	})
	a := e.createCC(s, acme, "due")
	e.dueButValid(a.ID)
	current := e.storedAccessToken(a.ID)
	e.sim.ResetCounters()
	e.sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Status: http.StatusServiceUnavailable})

	c, err := s.Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatalf("a token valid for two more minutes was withheld because its early refresh failed: %v", err)
	}
	if c.AccessToken.Reveal() != current {
		t.Fatal("the token handed out is not the stored one")
	}
	if err := e.works(c); err != nil {
		t.Fatalf("the token handed out does not work: %v", err)
	}
	if n := e.sim.Calls(engagesim.OpToken); n != 1 {
		t.Fatalf("%d token calls, want 1", n)
	}
	if until := e.backoffUntil(a.ID); until == nil || !until.After(time.Now()) {
		t.Fatalf("no running backoff recorded in the row: %v", until)
	}
	for range 20 {
		c, err := s.Token(ctxT(t), acme, a.ID)
		if err != nil || c.AccessToken.Reveal() != current {
			t.Fatalf("during the backoff: %v", err)
		}
	}
	if n := e.sim.Calls(engagesim.OpToken); n != 1 {
		t.Fatalf("%d token calls during the backoff, want 1", n)
	}
	if e.status(a.ID) != "active" {
		t.Fatalf("a passing failure changed the status to %s", e.status(a.ID))
	}
}

// For client credentials the OAuth client is the authorization's own tenant ID and
// secret, so a token endpoint refusing it (unauthorized_client, or a 401 that names no
// error) is final: the authorization needs re-authorization, with an audit event, and
// the endpoint is not called again.
func TestClientCredentialsRefusedAsUnauthorizedClientOrByABare401NeedReauthorization(t *testing.T) {
	for _, tc := range []struct {
		name   string
		refuse func(w http.ResponseWriter)
		status int
		code   string
	}{
		{"unauthorized_client", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"unauthorized_client","error_description":"this client may not use client_credentials"}`))
		}, http.StatusBadRequest, "unauthorized_client"},
		{"a 401 without an error code", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusUnauthorized)
		}, http.StatusUnauthorized, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, engagesim.Config{})
			var refusing atomic.Bool
			var calls atomic.Int32
			s, base := e.providerStore(func(w http.ResponseWriter, r *http.Request) {
				n := calls.Add(1)
				if r.URL.Path != "/api/v1/oauth/token" {
					http.NotFound(w, r)
					return
				}
				if refusing.Load() {
					tc.refuse(w)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "provider-token-" + strconv.Itoa(int(n)), "token_type": "Bearer", "expires_in": 3600})
			})
			created, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
				Name: "cc", Kind: authstore.KindClientCredentials, BaseURL: base, Domain: "acme",
				TenantID: "tenant-1", TenantSecret: secrets.New(ccSecret),
			})
			if err != nil {
				t.Fatal(err)
			}
			id := created.ID
			e.expire(id)
			refusing.Store(true)
			before := calls.Load()

			_, err = s.Token(ctxT(t), acme, id)
			wantAuthError(t, err, outcomes.CodeNeedsReauthorization)
			if st := e.status(id); st != "needs_reauthorization" {
				t.Fatalf("status %s, want needs_reauthorization", st)
			}
			events, err := s.Audit(ctxT(t), acme, id)
			if err != nil || len(events) == 0 {
				t.Fatalf("audit: %v %v", events, err)
			}
			last := events[len(events)-1]
			if last.Action != "refresh_failed" || last.Actor != "system" || last.Detail["error"] != tc.code ||
				last.Detail["httpStatus"] != float64(tc.status) || last.Detail["newStatus"] != "needs_reauthorization" {
				t.Fatalf("last audit event %+v", last)
			}
			got, err := s.Get(ctxT(t), acme, id)
			if err != nil || !strings.Contains(got.StatusReason, "re-authorize") || !strings.Contains(got.StatusReason, tc.code) {
				t.Fatalf("status reason %q (%v)", got.StatusReason, err)
			}
			for range 10 {
				_, err = s.Token(ctxT(t), acme, id)
				wantAuthError(t, err, outcomes.CodeNeedsReauthorization)
			}
			if n := calls.Load() - before; n != 1 {
				t.Fatalf("%d token calls after the refusal, want 1: no retry loop", n)
			}
			if got := counter(t, e.regs[0], "noderuntime_token_refreshes_total", "invalid_grant"); got != 1 {
				t.Fatalf("refreshes{invalid_grant} = %v, want 1", got)
			}
		})
	}
}

// Two executions whose tokens Engage rejected ask at once: one holds a token that was
// already replaced (it gets the current one without a refresh), the other the current
// token (it gets a new one). Their loads are separate: the second must never join the
// first and get back the very token Engage just rejected.
func TestRefreshesOfDifferentRejectedTokensNeverShareAnAnswer(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.replica()
	a := e.createCC(s, acme, "two rejections")
	first, err := s.Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	current, err := s.Refresh(ctxT(t), acme, a.ID, first.AccessToken)
	if err != nil || current.AccessToken.Reveal() == first.AccessToken.Reveal() {
		t.Fatalf("the first Refresh: %v", err)
	}
	e.sim.ResetCounters()

	// Hold every read of the table, so both loads are in flight at once.
	tx, err := e.newPool().Begin(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctxT(t), "lock table authorizations in access exclusive mode"); err != nil {
		t.Fatal(err)
	}
	stale, fresh := make(chan tokenResult, 1), make(chan tokenResult, 1)
	go func() {
		c, err := s.Refresh(ctxT(t), acme, a.ID, first.AccessToken)
		stale <- tokenResult{c, err}
	}()
	waitFor(t, 5*time.Second, "the Refresh of the replaced token waits for its read", func() bool { return e.lockWaiters() == 1 })
	go func() {
		c, err := s.Refresh(ctxT(t), acme, a.ID, current.AccessToken)
		fresh <- tokenResult{c, err}
	}()
	// Had it joined the first load instead, no second read would ever wait: report it,
	// then let both finish to see what it answers.
	if !eventually(3*time.Second, func() bool { return e.lockWaiters() == 2 }) {
		t.Errorf("%d reads waiting, want 2: the Refresh of the current token did not start a load of its own", e.lockWaiters())
	}
	if err := tx.Rollback(ctxT(t)); err != nil {
		t.Fatal(err)
	}

	r := <-stale
	if r.err != nil || r.c.AccessToken.Reveal() == first.AccessToken.Reveal() {
		t.Fatalf("the Refresh of the replaced token: %v (same token again: %t)", r.err, r.c.AccessToken.Reveal() == first.AccessToken.Reveal())
	}
	r = <-fresh
	if r.err != nil {
		t.Fatalf("the Refresh of the current token: %v", r.err)
	}
	if r.c.AccessToken.Reveal() == current.AccessToken.Reveal() {
		t.Fatal("the Refresh of the current token answered the very token Engage rejected")
	}
	if err := e.works(r.c); err != nil {
		t.Fatalf("the new token does not work: %v", err)
	}
	if n := e.sim.Grants(engagesim.GrantClientCredentials); n != 1 {
		t.Fatalf("%d client-credentials grants, want 1 (for the current token's rejection only)", n)
	}
}

// Should Postgres refuse to record a refresh backoff, the failing instance still backs
// off by itself: no second call of the failing token endpoint within the backoff.
func TestAFailedRefreshBacksOffInProcessWhenTheBackoffCannotBeStored(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store(func(o *authstore.Options) { o.FailureBackoff = time.Minute })
	a := e.createCC(s, acme, "no backoff column")
	refuseToStore(t, e.pool, "refresh_backoff_until")
	e.expire(a.ID)
	e.sim.ResetCounters()
	e.sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Status: http.StatusServiceUnavailable})

	for i := range 20 {
		_, err := s.Token(ctxT(t), acme, a.ID)
		if err == nil {
			t.Fatal("a token with the token endpoint down and the stored one expired")
		}
		if _, ok := errors.AsType[*outcomes.AuthorizationError](err); ok {
			t.Fatalf("call %d: a passing failure is not an authorization failure: %v", i, err)
		}
	}
	if until := e.backoffUntil(a.ID); until != nil {
		t.Fatalf("the backoff was stored (%s): the trigger did not refuse it, so this proves nothing", until)
	}
	if n := e.sim.Calls(engagesim.OpToken); n != 1 {
		t.Fatalf("%d token calls within the backoff, want 1", n)
	}
	if !strings.Contains(e.logs.String(), "could not record the refresh backoff") {
		t.Fatal("no log line about the backoff that could not be stored")
	}
}

// After a Postgres restart the pool still holds connections the server closed, and
// hands out one used less than a second ago without a ping. A token read that meets one
// must not fail the execution: the store drops them and reads again.
func TestATokenReadOnAConnectionARestartClosedIsReadAgain(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	first := e.createCC(e.store(), acme, "read before")
	second := e.createCC(e.store(), acme, "read after")
	cfg, err := pgxpool.ParseConfig(e.url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false } // as a busy pool's are not
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s := e.store(func(o *authstore.Options) { o.Pool = pool })
	waitListening(t, s)
	if _, err := s.Token(ctxT(t), acme, first.ID); err != nil {
		t.Fatal(err)
	}
	// A pool that served a few calls at once holds several connections: a second read
	// on whichever comes next would meet a closed one too.
	conns := make([]*pgxpool.Conn, 4)
	for i := range conns {
		if conns[i], err = pool.Acquire(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns {
		c.Release()
	}
	// What a restart does to every connection of the pool (and the listener's).
	if _, err := e.pool.Exec(ctxT(t), `select pg_terminate_backend(pid) from pg_stat_activity
		where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the listener to reconnect", func() bool { return s.Listening() })
	if _, err := s.Token(ctxT(t), acme, second.ID); err != nil {
		t.Fatalf("a read on a closed connection failed the token: %v", err)
	}
}

// slowBeforeTheRefresh plays a Postgres that is slow around a refresh: the lock-timeout
// statement, the refresh's first step in its transaction, returns only when the
// refresh's deadline is 150 ms away (as after a long wait for a pool connection), and
// the write of the new tokens takes 300 ms.
type slowBeforeTheRefresh struct{ writes atomic.Int32 }

func (s *slowBeforeTheRefresh) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	switch {
	case strings.Contains(d.SQL, "set_config('lock_timeout'"):
		if dl, ok := ctx.Deadline(); ok {
			time.Sleep(time.Until(dl) - 150*time.Millisecond)
		}
	case strings.HasPrefix(d.SQL, "update authorizations set access_token"):
		s.writes.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
	return ctx
}

func (*slowBeforeTheRefresh) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Once the token endpoint has rotated the refresh token, the new one is the only one
// that works (the simulator, like Webex, revokes the family when the old one is
// replayed): its write must not fail because the steps before the endpoint's call used
// up the refresh's deadline.
func TestANewRefreshTokenIsStoredEvenWhenTheStepsBeforeUsedUpTheDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engagesim.Config{})
	a := e.createLogin(e.store(), acme, "slow postgres")
	cfg, err := pgxpool.ParseConfig(e.url)
	if err != nil {
		t.Fatal(err)
	}
	tracer := &slowBeforeTheRefresh{}
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	slow := e.store(func(o *authstore.Options) {
		o.Pool = pool
		o.RefreshTimeout = 200 * time.Millisecond
		o.LockTimeout = 200 * time.Millisecond
	})

	e.expire(a.ID)
	c, err := slow.Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatalf("refresh on a slow Postgres: %v", err)
	}
	if tracer.writes.Load() != 1 {
		t.Fatalf("%d writes of new tokens, want 1", tracer.writes.Load())
	}
	if err := e.works(c); err != nil {
		t.Fatalf("the refreshed token: %v", err)
	}
	// The stored refresh token is the rotated one: a replica refreshes with it.
	e.expire(a.ID)
	next, err := e.replica().Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatalf("the next refresh, with the stored refresh token: %v", err)
	}
	if err := e.works(next); err != nil {
		t.Fatalf("the next token: %v", err)
	}
}

// Once the provider has answered, the new pair is what the authorization must
// remember: a token whose pair could not be stored is neither handed out nor cached,
// and once Postgres stores again, what is handed out is what is stored.
func TestATokenWhoseNewPairCouldNotBeStoredIsNotHandedOut(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	a := e.createCC(s, acme, "unstorable")
	waitListening(t, s)
	storeAgain := refuseToStore(t, e.pool, "access_token")
	e.expire(a.ID)
	e.sim.ResetCounters()

	c, err := s.Token(ctxT(t), acme, a.ID)
	if err == nil {
		t.Fatalf("a token whose new pair was not stored was handed out (%d characters)", len(c.AccessToken.Reveal()))
	}
	if _, ok := errors.AsType[*outcomes.AuthorizationError](err); ok {
		t.Fatalf("a write that failed is not an authorization failure: %v", err)
	}
	if n := e.sim.Grants(engagesim.GrantClientCredentials); n != 1 {
		t.Fatalf("%d grants, want 1: the refresh did not reach the write", n)
	}
	if got := counter(t, e.regs[0], "noderuntime_token_refreshes_total", "success"); got != 0 {
		t.Fatalf("refreshes{success} = %v for a refresh that was not stored", got)
	}
	if got := counter(t, e.regs[0], "noderuntime_token_refreshes_total", "error"); got != 1 {
		t.Fatalf("refreshes{error} = %v for a refresh that was not stored, want 1", got)
	}

	storeAgain()
	c, err = s.Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatalf("once the write works again: %v", err)
	}
	if c.AccessToken.Reveal() != e.storedAccessToken(a.ID) {
		t.Fatal("the token handed out is not the one stored")
	}
	if err := e.works(c); err != nil {
		t.Fatal(err)
	}
}

// answerAfterTheCallerLeft is a token endpoint's transport whose answer arrives just
// after the caller that asked for the token has left (its deadline passed, its client
// went away): the provider has rotated the refresh token by then.
type answerAfterTheCallerLeft struct{ leave context.CancelFunc }

func (a answerAfterTheCallerLeft) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r.WithContext(context.WithoutCancel(r.Context())))
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	a.leave()
	if cerr := r.Context().Err(); cerr != nil {
		return nil, cerr
	}
	return resp, err
}

// The refresh runs on its own deadline, not its first caller's: a caller that leaves
// while the provider is answering does not cut the refresh short after the provider
// rotated the refresh token, which would leave only a spent one stored.
func TestACallerThatLeavesDuringARefreshDoesNotCostTheRotatedRefreshToken(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	a := e.createLogin(e.store(), acme, "caller leaves")
	ctx, leave := context.WithCancel(ctxT(t))
	defer leave()
	s := e.store(func(o *authstore.Options) { o.HTTPClient = &http.Client{Transport: answerAfterTheCallerLeft{leave}} })
	reg := e.regs[len(e.regs)-1]
	e.expire(a.ID)
	e.sim.ResetCounters()

	_, err := s.Token(ctx, acme, a.ID)
	if _, ok := errors.AsType[*outcomes.AuthorizationError](err); ok {
		t.Fatalf("the caller leaving is not an authorization failure: %v", err)
	}
	refreshes := func(result string) float64 {
		return counter(t, reg, "noderuntime_token_refreshes_total", result)
	}
	waitFor(t, 10*time.Second, "the refresh its caller left", func() bool { return refreshes("success")+refreshes("error") > 0 })
	if refreshes("success") != 1 {
		t.Fatalf("the refresh failed once its caller left (refreshes{error} = %v), after the provider had rotated the refresh token", refreshes("error"))
	}

	e.expire(a.ID)
	next, err := e.replica().Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatalf("the next refresh: %v (status %s)", err, e.status(a.ID))
	}
	if err := e.works(next); err != nil {
		t.Fatal(err)
	}
	if n := e.sim.InvalidGrants(); n != 0 {
		t.Fatalf("%d invalid_grant answers: a spent refresh token was stored", n)
	}
}

// A token Engage has just refused is never handed back as the answer to its refresh,
// not even while the token endpoint fails and the token has not expired: the execution
// gets the endpoint's failure (onError), not a second try with the refused token.
func TestARefusedTokenIsNotHandedBackWhileTheTokenEndpointFails(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store(func(o *authstore.Options) { o.FailureBackoff = time.Minute })
	a := e.createCC(s, acme, "refused")
	refused, err := s.Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	e.sim.ResetCounters()
	e.sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Status: http.StatusServiceUnavailable})
	// The refresh that fails, then one during its backoff.
	for i := range 2 {
		c, err := s.Refresh(ctxT(t), acme, a.ID, refused.AccessToken)
		if err == nil && c.AccessToken.Reveal() == refused.AccessToken.Reveal() {
			t.Fatalf("refresh %d handed back the token Engage refused", i+1)
		}
		if !errors.Is(err, outcomes.ErrTokenUnavailable) {
			t.Fatalf("refresh %d: %v, want the token endpoint's failure", i+1, err)
		}
	}
	if n := e.sim.Calls(engagesim.OpToken); n != 1 {
		t.Fatalf("%d token calls, want 1 (the failed refresh; the second one backs off)", n)
	}
}

// refuseToStore makes Postgres refuse every update that sets column of authorizations
// to a value (a trigger raises): a write the store cannot make, with the database up.
// The function it returns lifts the refusal.
func refuseToStore(t *testing.T, pool *pgxpool.Pool, column string) (storeAgain func()) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), fmt.Sprintf(`
		create function refuse_%[1]s() returns trigger language plpgsql as $$
		begin
			raise exception 'the test refuses to store %[1]s';
		end $$;
		create trigger refuse_%[1]s before update of %[1]s on authorizations
			for each row when (new.%[1]s is not null) execute function refuse_%[1]s();`, column)); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if _, err := pool.Exec(context.Background(), fmt.Sprintf("drop trigger refuse_%[1]s on authorizations", column)); err != nil {
			t.Fatal(err)
		}
	}
}

// connectionCutAfterTheAnswer is a token endpoint's transport that, once the provider has
// answered (and rotated the refresh token), terminates the Postgres connection of the
// refresh's transaction, as a Postgres restart or fail-over at that moment would.
type connectionCutAfterTheAnswer struct {
	pool *pgxpool.Pool
	cut  atomic.Int32
}

func (c *connectionCutAfterTheAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || c.cut.Load() > 0 {
		return resp, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var n int32
	if qerr := c.pool.QueryRow(context.Background(), `select count(pg_terminate_backend(pid, 5000)) from pg_stat_activity
		where datname = current_database() and pid <> pg_backend_pid() and state = 'idle in transaction'
		and query like '%for update'`).Scan(&n); qerr != nil {
		return nil, qerr
	}
	c.cut.Add(n)
	return resp, nil
}

// A connection lost between the provider's answer and the write of the new pair (a
// Postgres restart or fail-over at that moment) does not cost the rotated refresh
// token: the stored one is spent, so the pair is written again on a new connection,
// and the next refresh uses the new refresh token instead of replaying the spent one
// (which revokes the login).
func TestARefreshWhoseConnectionIsLostAfterTheProviderAnsweredStillStoresTheNewPair(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	a := e.createLogin(e.store(), acme, "restart during a refresh")
	cut := &connectionCutAfterTheAnswer{pool: e.newPool()}
	s := e.store(func(o *authstore.Options) { o.HTTPClient = &http.Client{Transport: cut} })
	spent := e.storedRefreshToken(a.ID)
	e.expire(a.ID)

	c, err := s.Token(ctxT(t), acme, a.ID)
	if cut.cut.Load() != 1 {
		t.Fatalf("terminated %d connections, want 1 (the refresh's)", cut.cut.Load())
	}
	if err != nil {
		t.Logf("the refresh whose connection was cut: %v", err)
	} else if err := e.works(c); err != nil {
		t.Fatalf("the token handed out: %v", err)
	}
	if e.storedRefreshToken(a.ID) == spent {
		t.Error("the row still holds the refresh token the provider rotated away")
	}

	e.expire(a.ID)
	c, err = s.Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatalf("the next refresh: %v (status %s)", err, e.status(a.ID))
	}
	if err := e.works(c); err != nil {
		t.Fatal(err)
	}
	if st := e.status(a.ID); st != string(authstore.StatusActive) {
		t.Fatalf("status %s, want active", st)
	}
}

// A refresh whose commit reached Postgres but whose answer was lost: the write again
// finds the row moved on, by its own first write. It hands out the new token instead of
// an error, and the row keeps the rotated pair.
func TestARefreshWhoseCommitAnswerWasLostHandsOutTheTokenItStored(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	a := e.createLogin(e.store(), acme, "commit answer lost")
	pool, armed := dbtest.PoolLosingTheReplyTo(t, e.url, "commit")
	s := e.store(func(o *authstore.Options) { o.Pool = pool })
	spent := e.storedRefreshToken(a.ID)
	e.expire(a.ID)

	armed.Store(true)
	c, err := s.Token(ctxT(t), acme, a.ID)
	if armed.Load() {
		t.Fatal("no commit was sent: the refresh did not run")
	}
	if err != nil {
		t.Fatalf("the refresh whose commit answer was lost: %v", err)
	}
	e.wantRotatedPairStored(t, c, a.ID, spent)
	e.expire(a.ID)
	if _, err := s.Token(ctxT(t), acme, a.ID); err != nil {
		t.Fatalf("the next refresh: %v (status %s)", err, e.status(a.ID))
	}
}

// heldRefresh is a token endpoint's transport that holds the refresh_token grants (the
// refreshes) until release is closed, once the provider has answered: a refresh with
// the row locked and the refresh token rotated, not yet stored.
type heldRefresh struct {
	reached chan struct{}
	release chan struct{}
	once    atomic.Bool
}

func (h *heldRefresh) RoundTrip(r *http.Request) (*http.Response, error) {
	refresh := isRefreshGrant(r)
	resp, err := http.DefaultTransport.RoundTrip(r)
	if refresh && h.once.CompareAndSwap(false, true) {
		close(h.reached)
		<-h.release
	}
	return resp, err
}

// A refresh that holds the row while a deletion or a completed re-login arrives on
// another replica: the change waits for the refresh and then wins. A deleted
// authorization is refused on both replicas and not brought back; a re-logged one
// serves the new login's token on both (not the refreshed one of the old login), and
// keeps the new login's refresh token, which refreshes again.
func TestARefreshRacingADeletionOrAReloginLeavesTheChangeInPlace(t *testing.T) {
	for _, change := range []string{"delete", "relogin"} {
		t.Run(change, func(t *testing.T) {
			e := newEnv(t, engagesim.Config{})
			hold := &heldRefresh{reached: make(chan struct{}), release: make(chan struct{})}
			a := e.replica()
			b := e.replica(func(o *authstore.Options) { o.HTTPClient = &http.Client{Transport: hold} })
			waitListening(t, a, b)
			auth := e.createLogin(a, acme, "raced "+change)
			var query url.Values
			if change == "relogin" {
				started, err := a.Reauthorize(ctxT(t), acme, authstore.ActorAPI, auth.ID, authstore.ReauthorizeRequest{})
				if err != nil {
					t.Fatal(err)
				}
				query = e.login(started.AuthorizeURL, "login")
			}
			e.expire(auth.ID)

			refreshed := make(chan tokenResult, 1)
			go func() {
				c, err := b.Token(ctxT(t), acme, auth.ID)
				refreshed <- tokenResult{c, err}
			}()
			reach(t, hold.reached, "B's refresh reaches the provider")
			changed := make(chan error, 1)
			go func() {
				if change == "delete" {
					changed <- a.Delete(ctxT(t), acme, authstore.ActorAPI, auth.ID)
				} else {
					_, err := a.CompleteLogin(ctxT(t), query)
					changed <- err
				}
			}()
			waitFor(t, 5*time.Second, "the change waits for the refresh's lock", func() bool { return e.lockWaiters() == 1 })
			close(hold.release)
			if r := <-refreshed; r.err != nil {
				t.Fatalf("B's refresh: %v", r.err)
			}
			if err := <-changed; err != nil {
				t.Fatalf("%s: %v", change, err)
			}

			if change == "delete" {
				for _, s := range []*authstore.Store{a, b} {
					waitFor(t, time.Second, "the deletion reaches every replica", func() bool {
						_, err := s.Token(ctxT(t), acme, auth.ID)
						return err != nil
					})
					_, err := s.Token(ctxT(t), acme, auth.ID)
					wantAuthError(t, err, outcomes.CodeAuthorizationNotFound)
				}
				var n int
				if err := e.pool.QueryRow(ctxT(t), "select count(*) from authorizations where id = $1", auth.ID).Scan(&n); err != nil || n != 0 {
					t.Fatalf("%d rows (%v): the refresh brought the deleted authorization back", n, err)
				}
				return
			}
			stored := e.storedAccessToken(auth.ID)
			for _, s := range []*authstore.Store{a, b} {
				waitFor(t, time.Second, "the re-login reaches every replica", func() bool {
					c, err := s.Token(ctxT(t), acme, auth.ID)
					return err == nil && c.AccessToken.Reveal() == stored
				})
			}
			e.expire(auth.ID)
			c, err := a.Token(ctxT(t), acme, auth.ID)
			if err != nil {
				t.Fatalf("a refresh with the new login's refresh token: %v (status %s)", err, e.status(auth.ID))
			}
			if err := e.works(c); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// cutTheLoginWrite terminates the connection that is about to store a completed login,
// once: a Postgres restart or fail-over during that write.
type cutTheLoginWrite struct {
	pool *pgxpool.Pool
	cut  atomic.Int32
}

func (c *cutTheLoginWrite) TraceQueryStart(ctx context.Context, conn *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.HasPrefix(d.SQL, "update authorizations set access_token") && strings.Contains(d.SQL, "status = 'active'") && c.cut.CompareAndSwap(0, 1) {
		_, _ = c.pool.Exec(context.Background(), "select pg_terminate_backend($1, 5000)", conn.PgConn().PID())
	}
	return ctx
}

func (*cutTheLoginWrite) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// A login whose write committed with only its answer lost: the write again finds the
// login's token stored and neither stores nor audits it twice.
func TestALoginWhoseCommitAnswerWasLostIsStoredAndAuditedOnce(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	pool, armed := dbtest.PoolLosingTheReplyTo(t, e.url, "commit")
	s := e.store(func(o *authstore.Options) { o.Pool = pool })
	started, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
		Name: "commit answer lost", Kind: authstore.KindWebexLogin, BaseURL: e.sim.BaseURL(), Domain: "acme",
	})
	if err != nil {
		t.Fatal(err)
	}
	query := e.login(started.AuthorizeURL, "login")
	armed.Store(true)
	done, err := s.CompleteLogin(ctxT(t), query)
	if armed.Load() {
		t.Fatal("no commit was sent: the login was not written")
	}
	if err != nil {
		t.Fatalf("a login whose commit answer was lost: %v (status %s)", err, e.status(started.ID))
	}
	if done.Reauthorized || done.Status != authstore.StatusActive {
		t.Fatalf("completed %+v, want a first login, active", done)
	}
	var n int
	if err := e.pool.QueryRow(ctxT(t), "select count(*) from audit_events where authorization_id = $1 and action = 'authorized'", started.ID).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d authorized events (%v), want 1", n, err)
	}
}

// A login whose write loses its connection (Postgres restarts or fails over once the
// code is exchanged) is still stored: its state and its code are spent, so nothing else
// could store it. It is stored once, with one audit event.
func TestALoginWhoseWriteLosesItsConnectionIsStillStored(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	cut := &cutTheLoginWrite{pool: e.newPool()}
	s := e.store(func(o *authstore.Options) { o.Pool = e.tracedPool(cut) })
	started, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
		Name: "restart during the login", Kind: authstore.KindWebexLogin, BaseURL: e.sim.BaseURL(), Domain: "acme",
	})
	if err != nil {
		t.Fatal(err)
	}
	done, err := s.CompleteLogin(ctxT(t), e.login(started.AuthorizeURL, "login"))
	if cut.cut.Load() != 1 {
		t.Fatal("the login's write was not cut")
	}
	if err != nil {
		t.Fatalf("a login whose write lost its connection: %v (status %s)", err, e.status(started.ID))
	}
	e.wantFirstLoginStoredOnce(t, s, done)
}

// cutEveryLoginWrite terminates the connection of every try of a login's write: Postgres
// stays unreachable for it until the callback's bound passes.
type cutEveryLoginWrite struct{ pool *pgxpool.Pool }

func (c *cutEveryLoginWrite) TraceQueryStart(ctx context.Context, conn *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.HasPrefix(d.SQL, "update authorizations set access_token") && strings.Contains(d.SQL, "status = 'active'") {
		_, _ = c.pool.Exec(context.Background(), "select pg_terminate_backend($1, 5000)", conn.PgConn().PID())
	}
	return ctx
}

func (*cutEveryLoginWrite) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// A login whose every write loses its connection until the callback's bound passes
// fails with the lost connection as its cause, not with the deadline of a last try
// made after the bound had passed.
func TestALoginThatCannotBeWrittenBeforeItsBoundFailsWithTheLostConnection(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store(func(o *authstore.Options) {
		o.Pool = e.tracedPool(&cutEveryLoginWrite{pool: e.newPool()})
		o.RefreshTimeout, o.LockTimeout = 300*time.Millisecond, 300*time.Millisecond
	})
	started, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
		Name: "postgres gone during the login", Kind: authstore.KindWebexLogin, BaseURL: e.sim.BaseURL(), Domain: "acme",
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CompleteLogin(ctxT(t), e.login(started.AuthorizeURL, "login"))
	if err == nil {
		t.Fatal("a login that could not be written completed")
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		t.Fatalf("the login failed with %v: the lost connection that caused it is not said", err)
	}
}

// thenAfterTheAnswer is a token endpoint's transport that runs then once, after next
// has brought the provider's answer and before the store sees it.
type thenAfterTheAnswer struct {
	next http.RoundTripper
	then func()
	once sync.Once
}

func (a *thenAfterTheAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := a.next.RoundTrip(r)
	if err == nil {
		a.once.Do(a.then)
	}
	return resp, err
}

// A refresh whose connection is lost after the provider answered writes its pair again
// only over the row it refreshed: a re-login completed in between (the lock went with
// the connection) is the newer grant, and the refresh of the old login must not write
// over it. The refresh fails; the row, and every token handed out after, are the
// re-login's.
func TestARefreshWrittenAgainAfterALostConnectionLeavesAReloginMadeMeanwhile(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	other := e.store()
	a := e.createLogin(other, acme, "relogin during a lost refresh")
	started, err := other.Reauthorize(ctxT(t), acme, authstore.ActorAPI, a.ID, authstore.ReauthorizeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	query := e.login(started.AuthorizeURL, "login")
	cut := &connectionCutAfterTheAnswer{pool: e.newPool()}
	var relogged []byte // the re-login's sealed access token
	relogin := func() {
		if _, err := other.CompleteLogin(context.Background(), query); err != nil {
			t.Errorf("the re-login while the refresh's connection is down: %v", err)
			return
		}
		if err := e.pool.QueryRow(context.Background(), "select access_token from authorizations where id = $1", a.ID).Scan(&relogged); err != nil {
			t.Error(err)
		}
	}
	s := e.store(func(o *authstore.Options) {
		o.HTTPClient = &http.Client{Transport: &thenAfterTheAnswer{next: cut, then: relogin}}
	})
	e.expire(a.ID)

	c, err := s.Token(ctxT(t), acme, a.ID)
	if cut.cut.Load() != 1 || relogged == nil {
		t.Fatalf("terminated %d connections, re-logged %v: want the refresh's cut, then the re-login", cut.cut.Load(), relogged != nil)
	}
	if err == nil {
		t.Errorf("the refresh of the replaced login handed out a token (works: %v), want an error", e.works(c))
	}
	var stored []byte
	if err := e.pool.QueryRow(ctxT(t), "select access_token from authorizations where id = $1", a.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored, relogged) {
		t.Fatal("the refresh wrote the old login's pair over the re-login")
	}
	want := e.storedAccessToken(a.ID)
	for _, st := range []*authstore.Store{s, other} {
		c, err := st.Token(ctxT(t), acme, a.ID)
		if err != nil || c.AccessToken.Reveal() != want {
			t.Fatalf("a token after the race: %v; want the re-login's", err)
		}
	}
}

// A refresh that waited for the row lock reads the row again under it: an authorization
// a replica moved to needs_reauthorization meanwhile (its refresh was refused) answers
// from its status, with no further call of the token endpoint and no token.
func TestARefreshThatWaitedForTheLockAnswersAStatusChangedMeanwhile(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	a := e.createCC(s, acme, "refused meanwhile")
	e.expire(a.ID)
	e.sim.ResetCounters()
	tx := e.lockRow(a.ID)
	got := make(chan tokenResult, 1)
	go func() {
		c, err := s.Token(ctxT(t), acme, a.ID)
		got <- tokenResult{c, err}
	}()
	waitFor(t, 5*time.Second, "the refresh waits for the lock", func() bool { return e.lockWaiters() == 1 })
	// What a replica's refused refresh writes.
	if _, err := tx.Exec(ctxT(t), `update authorizations set status = 'needs_reauthorization', status_reason = 'refused',
		access_token = null, refresh_token = null, token_expiry = null, version = version + 1, updated_at = now()
		where id = $1`, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	r := <-got
	wantAuthError(t, r.err, outcomes.CodeNeedsReauthorization)
	if n := e.sim.Calls(engagesim.OpToken); n != 0 {
		t.Fatalf("%d token calls for an authorization that needs re-authorization, want 0", n)
	}
}

// The audit trail is answered to the tenant and outlives the authorization: no secret,
// token or login code is ever in it, whatever happened to the authorization.
func TestTheAuditTrailNeverHoldsASecret(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	cc := e.createCC(s, acme, "cc")
	login := e.createLogin(s, acme, "login")
	if err := e.sim.ChangeTenantSecret("tenant-1", newCCSecret); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reauthorize(ctxT(t), acme, authstore.ActorAPI, cc.ID, authstore.ReauthorizeRequest{TenantSecret: secrets.New(newCCSecret)}); err != nil {
		t.Fatal(err)
	}
	e.spendRefreshToken(login.ID)
	e.expire(login.ID)
	_, err := s.Token(ctxT(t), acme, login.ID)
	wantAuthError(t, err, outcomes.CodeNeedsReauthorization)
	if err := s.Delete(ctxT(t), acme, authstore.ActorAPI, cc.ID); err != nil {
		t.Fatal(err)
	}

	var texts []string
	for _, id := range []string{cc.ID, login.ID} {
		events, err := s.Audit(ctxT(t), acme, id)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := json.Marshal(events)
		texts = append(texts, string(answer))
	}
	rows, err := e.pool.Query(ctxT(t), "select detail::text from audit_events")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(stored) < 7 {
		t.Fatalf("%d audit events (%v), want every step audited", len(stored), err)
	}
	texts = append(texts, stored...)
	for _, text := range texts {
		for _, c := range canaries {
			if strings.Contains(text, c) {
				t.Errorf("the audit trail holds %q", c)
			}
		}
	}
}
