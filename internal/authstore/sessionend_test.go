package authstore_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// countCalls is a token endpoint's transport that counts the calls it passes on.
type countCalls struct {
	next  http.RoundTripper
	calls atomic.Int32
}

func (c *countCalls) RoundTrip(r *http.Request) (*http.Response, error) {
	c.calls.Add(1)
	return c.next.RoundTrip(r)
}

// sizedPool is a pool of size connections on the env's database, named app in
// pg_stat_activity, whose sessions Postgres ends when a transaction sits idle for
// idleInTransaction (0: never).
func (e *env) sizedPool(size int32, app string, idleInTransaction time.Duration) *pgxpool.Pool {
	e.t.Helper()
	cfg, err := pgxpool.ParseConfig(e.url)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.MaxConns = size
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = fmt.Sprint(idleInTransaction.Milliseconds())
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(pool.Close)
	return pool
}

// A refresh whose connection is lost after the provider answered, with every
// connection of the pool in use (here its only one, held by the refresh itself; at a
// restart, all of them by refreshes that lost theirs), still stores the rotated pair:
// the dead connection goes back to the pool before the write again asks for one, which
// otherwise waited for a connection until its time ran out.
func TestARefreshWhoseConnectionIsLostWithThePoolFullStillStoresTheNewPair(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	a := e.createLogin(e.store(), acme, "pool full at a restart")
	cut := &connectionCutAfterTheAnswer{pool: e.newPool()}
	s := e.store(func(o *authstore.Options) {
		o.Pool = e.sizedPool(1, "refresher", 0)
		o.HTTPClient = &http.Client{Transport: cut}
	})
	spent := e.storedRefreshToken(a.ID)
	e.expire(a.ID)

	c, err := s.Token(ctxT(t), acme, a.ID)
	if cut.cut.Load() != 1 {
		t.Fatalf("terminated %d connections, want 1 (the refresh's)", cut.cut.Load())
	}
	if err != nil {
		t.Fatalf("the refresh whose connection was cut: %v", err)
	}
	e.wantRotatedPairStored(t, c, a.ID, spent)
	e.expire(a.ID)
	if _, err := e.store().Token(ctxT(t), acme, a.ID); err != nil {
		t.Fatalf("the next refresh: %v (status %s)", err, e.status(a.ID))
	}
}

// A refused refresh (invalid_grant) whose connection is lost after the provider
// answered is still recorded: needs_reauthorization, on a new connection, so the next
// call answers from the status instead of asking the provider again, and again on every
// call while the cause lasts: the retry loop the status exists to prevent.
func TestARefusedRefreshWhoseConnectionIsLostIsStillRecorded(t *testing.T) {
	for _, size := range []int32{4, 1} {
		t.Run(fmt.Sprintf("pool of %d", size), func(t *testing.T) {
			e := newEnv(t, engagesim.Config{})
			a := e.createLogin(e.store(), acme, "refused as the connection is lost")
			cut := &connectionCutAfterTheAnswer{pool: e.newPool()}
			calls := &countCalls{next: cut}
			s := e.store(func(o *authstore.Options) {
				o.Pool = e.sizedPool(size, "refresher", 0)
				o.HTTPClient = &http.Client{Transport: calls}
			})
			if err := e.sim.RevokeTokens("alice"); err != nil {
				t.Fatal(err)
			}
			e.expire(a.ID)

			_, err := s.Token(ctxT(t), acme, a.ID)
			if cut.cut.Load() != 1 {
				t.Fatalf("terminated %d connections, want 1 (the refresh's)", cut.cut.Load())
			}
			wantAuthError(t, err, outcomes.CodeNeedsReauthorization)
			if st := e.status(a.ID); st != string(authstore.StatusNeedsReauthorization) {
				t.Fatalf("status %s, want %s", st, authstore.StatusNeedsReauthorization)
			}
			_, err = s.Token(ctxT(t), acme, a.ID)
			wantAuthError(t, err, outcomes.CodeNeedsReauthorization)
			if n := calls.calls.Load(); n != 1 {
				t.Fatalf("the token endpoint was called %d times, want 1", n)
			}
		})
	}
}

// A Postgres that ends transactions idle for less time than the token endpoint takes
// (idle_in_transaction_session_timeout) does not end a refresh's: the refresh keeps its
// row lock until the rotated pair is stored. Ended, the lock would go to the replicas
// queued on it, which would refresh with the refresh token just rotated away.
func TestARefreshKeepsItsLockThroughAShorterIdleInTransactionTimeout(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	a := e.createLogin(e.store(), acme, "idle in transaction")
	const idle = 100 * time.Millisecond
	hold := &heldRefresh{reached: make(chan struct{}), release: make(chan struct{})}
	s := e.store(func(o *authstore.Options) {
		o.Pool = e.sizedPool(4, "refresher", idle)
		o.HTTPClient = &http.Client{Transport: hold}
	})
	var once sync.Once
	release := func() { once.Do(func() { close(hold.release) }) }
	t.Cleanup(release) // before the pool closes, which waits for the refresh's connection
	spent := e.storedRefreshToken(a.ID)
	e.expire(a.ID)

	refreshed := make(chan tokenResult, 1)
	go func() {
		c, err := s.Token(ctxT(t), acme, a.ID)
		refreshed <- tokenResult{c, err}
	}()
	reach(t, hold.reached, "the refresh reaches the provider")
	// A transaction of the same setting that went idle after the refresh's: once Postgres
	// has ended it, the refresh's transaction has been idle longer than the setting.
	control, err := e.sizedPool(1, "control", idle).Begin(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = control.Rollback(context.Background()) }) // gives its connection back
	pid := control.Conn().PgConn().PID()
	waitFor(t, 10*time.Second, "Postgres ends the control's idle transaction", func() bool {
		var n int
		if err := e.pool.QueryRow(ctxT(t), "select count(*) from pg_stat_activity where pid = $1", pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	var held int
	if err := e.pool.QueryRow(ctxT(t), `select count(*) from pg_stat_activity where datname = current_database()
		and application_name = 'refresher' and state = 'idle in transaction' and query like '%for update'`).Scan(&held); err != nil {
		t.Fatal(err)
	}
	release()
	r := <-refreshed
	if held != 1 {
		t.Fatalf("%d refresh transactions hold the lock once the idle timeout passed, want 1", held)
	}
	if r.err != nil {
		t.Fatalf("the refresh: %v", r.err)
	}
	e.wantRotatedPairStored(t, r.c, a.ID, spent)
}
