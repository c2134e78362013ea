package authstore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// sessionEndsAfterTheAnswer is a token endpoint's transport that, once the provider has
// answered (and rotated the refresh token), waits until Postgres has ended the
// refresh's session for sitting idle in its transaction (idle_in_transaction_session_timeout),
// as it does when a token endpoint is slower than a DBA's setting.
type sessionEndsAfterTheAnswer struct {
	t     *testing.T
	watch *pgxpool.Pool
	ended bool
	calls atomic.Int32 // the token endpoint's calls
}

func (s *sessionEndsAfterTheAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	s.calls.Add(1)
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || s.ended {
		return resp, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	waitFor(s.t, 10*time.Second, "Postgres ends the refresh's idle transaction", func() bool {
		var n int
		if err := s.watch.QueryRow(context.Background(), `select count(*) from pg_stat_activity
			where datname = current_database() and application_name = 'idle-refresher' and query like '%for update'`).Scan(&n); err != nil {
			s.t.Error(err)
			return true
		}
		return n == 0
	})
	s.ended = true
	return resp, nil
}

// A refresh whose session Postgres ends while the token endpoint answers (the
// transaction sat idle past idle_in_transaction_session_timeout, SQLSTATE 25P03) has lost
// its connection as surely as one cut by a restart: the rotated pair is written again on
// a new connection, not dropped with "token refreshed but not stored" (the next refresh
// would spend the rotated-away refresh token and end the login in needs_reauthorization).
func TestARefreshWhoseIdleTransactionPostgresEndedStillStoresTheNewPair(t *testing.T) {
	for _, size := range poolSizes {
		t.Run(fmt.Sprintf("pool of %d", size), func(t *testing.T) {
			e := newEnv(t, engagesim.Config{})
			a := e.createLogin(e.store(), acme, "idle in transaction")
			ended := &sessionEndsAfterTheAnswer{t: t, watch: e.newPool()}
			s := e.store(func(o *authstore.Options) {
				o.Pool = e.poolEndingIdleTransactions(size)
				o.HTTPClient = &http.Client{Transport: ended}
			})
			spent := e.storedRefreshToken(a.ID)
			e.expire(a.ID)

			c, err := s.Token(ctxT(t), acme, a.ID)
			if !ended.ended {
				t.Fatal("the refresh did not reach the provider")
			}
			if err != nil {
				t.Fatalf("the refresh whose session Postgres ended: %v", err)
			}
			if err := e.works(c); err != nil {
				t.Fatalf("the token handed out: %v", err)
			}
			if e.storedRefreshToken(a.ID) == spent {
				t.Fatal("the row still holds the refresh token the provider rotated away")
			}
			e.expire(a.ID)
			if _, err := e.store().Token(ctxT(t), acme, a.ID); err != nil {
				t.Fatalf("the next refresh: %v (status %s)", err, e.status(a.ID))
			}
		})
	}
}

// A refused refresh (invalid_grant) whose transaction Postgres ended while the token
// endpoint answered is still recorded: needs_reauthorization, on a new connection, so the
// next call answers from the status instead of asking the provider again (with such a
// setting, every call would otherwise spend a token endpoint request on a grant known to
// be refused: the retry loop the status exists to prevent).
func TestARefusedRefreshWhoseIdleTransactionPostgresEndedIsStillRecorded(t *testing.T) {
	for _, size := range poolSizes {
		t.Run(fmt.Sprintf("pool of %d", size), func(t *testing.T) {
			e := newEnv(t, engagesim.Config{})
			a := e.createLogin(e.store(), acme, "refused while idle in transaction")
			ended := &sessionEndsAfterTheAnswer{t: t, watch: e.newPool()}
			s := e.store(func(o *authstore.Options) {
				o.Pool = e.poolEndingIdleTransactions(size)
				o.HTTPClient = &http.Client{Transport: ended}
			})
			if err := e.sim.RevokeTokens("alice"); err != nil {
				t.Fatal(err)
			}
			e.expire(a.ID)

			_, err := s.Token(ctxT(t), acme, a.ID)
			if !ended.ended {
				t.Fatal("the refresh did not reach the provider")
			}
			wantAuthError(t, err, outcomes.CodeNeedsReauthorization)
			if st := e.status(a.ID); st != string(authstore.StatusNeedsReauthorization) {
				t.Fatalf("status %s, want %s", st, authstore.StatusNeedsReauthorization)
			}
			_, err = s.Token(ctxT(t), acme, a.ID)
			wantAuthError(t, err, outcomes.CodeNeedsReauthorization)
			if n := ended.calls.Load(); n != 1 {
				t.Fatalf("the token endpoint was called %d times, want 1", n)
			}
		})
	}
}

// poolSizes: a pool with connections to spare, and one whose every connection is in
// use (here its only one) by the refresh whose session ended: the write again must not
// wait for a connection the dead transaction still holds (with many refreshes losing
// their connections at once, a pool of any size is in that state).
var poolSizes = []int32{4, 1}

// poolEndingIdleTransactions is a pool of size connections whose sessions Postgres ends
// when a transaction sits idle for 100 ms (idle_in_transaction_session_timeout), named
// idle-refresher in pg_stat_activity.
func (e *env) poolEndingIdleTransactions(size int32) *pgxpool.Pool {
	e.t.Helper()
	cfg, err := pgxpool.ParseConfig(e.url)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.MaxConns = size
	cfg.ConnConfig.RuntimeParams["application_name"] = "idle-refresher"
	cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "100"
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(pool.Close)
	return pool
}
