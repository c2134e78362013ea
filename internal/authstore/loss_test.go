package authstore_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/pgtemp"
)

// failNextUpdate makes the next update of an authorization fail as a canceled statement
// does (SQLSTATE 57014: pg_cancel_backend, a statement_timeout), on a connection that
// stays up. The count is a sequence, which the failed statement's rollback does not undo:
// the update after it goes through.
func (e *env) failNextUpdate() {
	e.t.Helper()
	_, err := e.pool.Exec(context.Background(), `
		create sequence fail_next_update;
		create function fail_next_update() returns trigger language plpgsql as $$
		begin
			if nextval('fail_next_update') = 1 then
				raise exception 'canceling statement due to user request' using errcode = 'query_canceled';
			end if;
			return new;
		end $$;
		create trigger fail_next_update before update on authorizations for each row execute function fail_next_update();`)
	if err != nil {
		e.t.Fatal(err)
	}
}

// A refresh whose write is refused once after the provider answered, for another reason
// than a lost connection (the statement canceled), still stores the rotated pair: the
// provider has spent the stored refresh token, so dropping the pair would have the next
// refresh replay it (invalid_grant, the login lost).
func TestARefreshWhoseWriteIsCanceledAfterTheProviderAnsweredStillStoresTheNewPair(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	a := e.createLogin(s, acme, "write canceled during a refresh")
	spent := e.storedRefreshToken(a.ID)
	e.expire(a.ID)
	e.failNextUpdate()

	c, err := s.Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatalf("the refresh whose write was canceled: %v", err)
	}
	e.wantRotatedPairStored(t, c, a.ID, spent)

	e.expire(a.ID)
	next, err := e.store().Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatalf("the next refresh: %v (status %s, %d invalid_grant answers)", err, e.status(a.ID), e.sim.InvalidGrants())
	}
	if err := e.works(next); err != nil {
		t.Fatal(err)
	}
	if n := e.sim.InvalidGrants(); n != 0 || e.status(a.ID) != string(authstore.StatusActive) {
		t.Fatalf("%d invalid_grant answers, status %s: want 0, active", n, e.status(a.ID))
	}
}

// A token endpoint whose answers give the access token's lifetime as expires_in (absent
// when nil), relayed from the simulator's; it counts the refreshes.
type lifetimeRewriter struct {
	to        string
	expiresIn any
	refreshes atomic.Int32
}

func (l *lifetimeRewriter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if isRefreshGrant(r) {
		l.refreshes.Add(1)
	}
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, l.to, r.Body)
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	var answer map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if resp.StatusCode == http.StatusOK {
		delete(answer, "expires_in")
		if l.expiresIn != nil {
			answer["expires_in"] = l.expiresIn
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.StatusCode)
	_ = json.NewEncoder(w).Encode(answer)
}

// A token endpoint that gives no usable lifetime (expires_in absent, 0, negative, or past
// what a duration holds) gets no refresh until Engage rejects the token: then one, whose
// rotated pair is kept. A lifetime over before it was received would otherwise have every
// call refresh, on every replica, each spending the rotating refresh token.
func TestATokenWithoutAUsableLifetimeIsRefreshedOnlyWhenEngageRejectsIt(t *testing.T) {
	for _, tc := range []struct {
		name      string
		expiresIn any
	}{
		{"absent", nil},
		{"zero", 0},
		{"negative", -60},
		{"huge", int64(1) << 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, engagesim.Config{})
			provider := &lifetimeRewriter{to: e.sim.TokenURL(), expiresIn: tc.expiresIn}
			srv := httptest.NewServer(provider)
			t.Cleanup(srv.Close)
			withProvider := func(o *authstore.Options) { o.Webex.TokenURL = srv.URL }
			a := e.createLogin(e.store(withProvider), acme, "lifetime "+tc.name)
			replicas := []*authstore.Store{e.replica(withProvider), e.replica(withProvider)}

			var c authstore.Credential
			for i := range 3 {
				for _, s := range replicas {
					var err error
					if c, err = s.Token(ctxT(t), acme, a.ID); err != nil {
						t.Fatalf("call %d: %v", i, err)
					}
				}
			}
			if n := provider.refreshes.Load(); n != 0 {
				t.Fatalf("%d refreshes for 6 calls on a token Engage did not reject, want 0", n)
			}
			if err := e.works(c); err != nil {
				t.Fatal(err)
			}

			spent := e.storedRefreshToken(a.ID)
			for _, s := range replicas {
				fresh, err := s.Refresh(ctxT(t), acme, a.ID, c.AccessToken)
				if err != nil {
					t.Fatalf("refresh after a 401: %v", err)
				}
				e.wantRotatedPairStored(t, fresh, a.ID, spent)
			}
			if n := provider.refreshes.Load(); n != 1 {
				t.Fatalf("%d refreshes after one rejected token on two replicas, want 1", n)
			}
			if n := e.sim.InvalidGrants(); n != 0 || e.status(a.ID) != string(authstore.StatusActive) {
				t.Fatalf("%d invalid_grant answers, status %s: want 0, active", n, e.status(a.ID))
			}
		})
	}
}

// refuseUpdates makes every update of an authorization fail, as a canceled statement
// does, until the function it returns is called: a write that cannot be made within its
// 5 s (Postgres away for longer), without the test waiting for them.
func (e *env) refuseUpdates() (allow func()) {
	e.t.Helper()
	_, err := e.pool.Exec(context.Background(), `
		create table refuse_updates (on_ boolean);
		insert into refuse_updates values (true);
		create function refuse_updates() returns trigger language plpgsql as $$
		begin
			if exists (select 1 from refuse_updates) then
				raise exception 'canceling statement due to user request' using errcode = 'query_canceled';
			end if;
			return new;
		end $$;
		create trigger refuse_updates before update on authorizations for each row execute function refuse_updates();`)
	if err != nil {
		e.t.Fatal(err)
	}
	return func() {
		e.t.Helper()
		if _, err := e.pool.Exec(context.Background(), "delete from refuse_updates"); err != nil {
			e.t.Fatal(err)
		}
	}
}

// A refresh whose new pair cannot be stored at all does not cost the login, once
// Postgres takes writes again: the provider has rotated the stored refresh token away,
// so the replica keeps the one it got, and its next refresh spends that one instead of
// replaying the spent one (invalid_grant, needs_reauthorization).
func TestARefreshThatCouldNotStoreItsPairSpendsTheRefreshTokenItGotNextTime(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	a := e.createLogin(s, acme, "pair not stored")
	spent := e.storedRefreshToken(a.ID)
	e.expire(a.ID)
	allow := e.refuseUpdates()

	if _, err := s.Token(ctxT(t), acme, a.ID); err == nil {
		t.Fatal("a refresh whose pair could not be stored handed out a token")
	}
	if e.storedRefreshToken(a.ID) != spent {
		t.Fatal("the refused write changed the row")
	}

	allow()
	c, err := s.Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatalf("the next refresh: %v (status %s, %d invalid_grant answers)", err, e.status(a.ID), e.sim.InvalidGrants())
	}
	e.wantRotatedPairStored(t, c, a.ID, spent)
	if n := e.sim.InvalidGrants(); n != 0 || e.status(a.ID) != string(authstore.StatusActive) {
		t.Fatalf("%d invalid_grant answers, status %s: want 0, active", n, e.status(a.ID))
	}

	// The pair stored, the next refresh (on another replica too) spends the stored one.
	e.expire(a.ID)
	next, err := e.replica().Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatalf("a refresh on another replica: %v (status %s)", err, e.status(a.ID))
	}
	if err := e.works(next); err != nil {
		t.Fatal(err)
	}
	e.expire(a.ID)
	if _, err := s.Token(ctxT(t), acme, a.ID); err != nil || e.sim.InvalidGrants() != 0 {
		t.Fatalf("the first replica's refresh after the other's: %v (%d invalid_grant answers)", err, e.sim.InvalidGrants())
	}
}

// A login whose write is refused once on a live connection (the statement canceled) is
// still stored: the state and the code are spent, so nothing else could store it, and
// the person would have to sign in again.
func TestALoginWhoseWriteIsCanceledOnceIsStillStored(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	started, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
		Name: "canceled during the login", Kind: authstore.KindWebexLogin, BaseURL: e.sim.BaseURL(), Domain: "acme",
	})
	if err != nil {
		t.Fatal(err)
	}
	query := e.login(started.AuthorizeURL, "login")
	e.failNextUpdate()
	done, err := s.CompleteLogin(ctxT(t), query)
	if err != nil {
		t.Fatalf("a login whose write was canceled once: %v (status %s)", err, e.status(started.ID))
	}
	e.wantFirstLoginStoredOnce(t, s, done)
}

// stopAfterTheRefresh is a token endpoint's transport that stops Postgres once the
// provider has answered the first refresh, before the store sees the answer: the
// rotated pair cannot be written until Postgres is started again.
type stopAfterTheRefresh struct {
	cluster *pgtemp.Cluster
	stopped atomic.Bool
}

func (s *stopAfterTheRefresh) RoundTrip(r *http.Request) (*http.Response, error) {
	refresh := isRefreshGrant(r)
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && refresh && s.stopped.CompareAndSwap(false, true) {
		if serr := s.cluster.Stop(context.Background()); serr != nil {
			return nil, serr
		}
	}
	return resp, err
}

// Postgres stops as the provider answers a refresh and stays down past the 5 s the new
// pair gets: the pair is not stored, and the execution gets an error. Once Postgres is
// back, the replica's next refresh spends the refresh token the provider rotated to,
// not the stored one it rotated away: the login survives the outage.
func TestARefreshWhosePairOutlivesAPostgresOutageKeepsTheLogin(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	cluster, url := dbtest.NewCluster(t)
	e.url = url
	e.pool = e.newPool()
	stop := &stopAfterTheRefresh{cluster: cluster}
	s := e.store(func(o *authstore.Options) { o.HTTPClient = &http.Client{Transport: stop} })
	a := e.createLogin(s, acme, "outage during a refresh")
	spent := e.storedRefreshToken(a.ID)
	e.expire(a.ID)

	if _, err := s.Token(ctxT(t), acme, a.ID); err == nil {
		t.Fatal("a refresh whose pair could not be stored handed out a token")
	} else if !stop.stopped.Load() {
		t.Fatalf("the refresh did not reach the provider: %v", err)
	}

	if err := cluster.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	e.pool.Reset()
	if e.storedRefreshToken(a.ID) != spent {
		t.Fatal("the row changed during the outage")
	}
	c, err := s.Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatalf("the refresh after the outage: %v (status %s, %d invalid_grant answers)", err, e.status(a.ID), e.sim.InvalidGrants())
	}
	e.wantRotatedPairStored(t, c, a.ID, spent)
	if n := e.sim.InvalidGrants(); n != 0 || e.status(a.ID) != string(authstore.StatusActive) {
		t.Fatalf("%d invalid_grant answers, status %s: want 0, active", n, e.status(a.ID))
	}
}
