package authstore_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/outcomes"
	"github.com/noderuntime/noderuntime/internal/secrets"
)

// warm makes b serve id from its cache, and checks that it does.
func warm(t *testing.T, e *env, b *authstore.Store, reg int, id string) authstore.Credential {
	t.Helper()
	c, err := b.Token(ctxT(t), acme, id)
	if err != nil {
		t.Fatal(err)
	}
	hits := counter(t, e.regs[reg], "noderuntime_token_cache_requests_total", "hit")
	if _, err := b.Token(ctxT(t), acme, id); err != nil {
		t.Fatal(err)
	}
	if counter(t, e.regs[reg], "noderuntime_token_cache_requests_total", "hit") != hits+1 {
		t.Fatal("instance B does not serve the token from its cache")
	}
	return c
}

func TestDeleteOnOneInstanceMakesAnotherRefuseWithinASecond(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	a, b := e.replica(), e.replica()
	waitListening(t, a, b)
	auth := e.createCC(a, acme, "doomed")
	warm(t, e, b, 1, auth.ID)

	if err := a.Delete(ctxT(t), acme, authstore.ActorAPI, auth.ID); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, time.Second, "instance B refuses the deleted authorization", func() bool {
		_, err := b.Token(ctxT(t), acme, auth.ID)
		return err != nil
	})
	_, err := b.Token(ctxT(t), acme, auth.ID)
	wantAuthError(t, err, outcomes.CodeAuthorizationNotFound)
	t.Logf("instance B refused %s after the delete", took)
}

func TestReauthorizationReachesAnotherInstancesCache(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	a, b := e.replica(), e.replica()
	waitListening(t, a, b)
	auth := e.createCC(a, acme, "rotated secret")
	old := warm(t, e, b, 1, auth.ID)
	if err := e.sim.ChangeTenantSecret("tenant-1", newCCSecret); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reauthorize(ctxT(t), acme, authstore.ActorAPI, auth.ID, authstore.ReauthorizeRequest{TenantSecret: secrets.New(newCCSecret)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "instance B uses the new token", func() bool {
		c, err := b.Token(ctxT(t), acme, auth.ID)
		return err == nil && c.AccessToken.Reveal() != old.AccessToken.Reveal()
	})
	c, _ := b.Token(ctxT(t), acme, auth.ID)
	if err := e.works(c); err != nil {
		t.Fatalf("B's token after re-authorization: %v", err)
	}
}

func TestTheListenerReconnectsAndNeverServesTheCacheWhileDisconnected(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	a, b := e.replica(), e.replica()
	waitListening(t, a, b)
	auth := e.createCC(a, acme, "survivor")
	warm(t, e, b, 1, auth.ID)

	// Cut every listener connection, as a Postgres restart or failover would.
	var killed int
	err := e.pool.QueryRow(context.Background(), `select count(pg_terminate_backend(pid)) from pg_stat_activity
		where datname = current_database() and query like 'listen %'`).Scan(&killed)
	if err != nil || killed != 2 {
		t.Fatalf("terminated %d listeners (%v), want 2", killed, err)
	}
	waitFor(t, 5*time.Second, "B notices the lost connection", func() bool { return !b.Listening() })
	hits := counter(t, e.regs[1], "noderuntime_token_cache_requests_total", "hit")
	if _, err := b.Token(ctxT(t), acme, auth.ID); err != nil {
		t.Fatal(err)
	}
	if counter(t, e.regs[1], "noderuntime_token_cache_requests_total", "hit") != hits && !b.Listening() {
		t.Fatal("a disconnected instance answered from its cache")
	}
	waitListening(t, a, b)
	warm(t, e, b, 1, auth.ID)
	if err := a.Delete(ctxT(t), acme, authstore.ActorAPI, auth.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "instance B refuses after its listener reconnected", func() bool {
		_, err := b.Token(ctxT(t), acme, auth.ID)
		return err != nil
	})
}

// holdTokenRead holds one read of an authorization's row after Postgres has answered
// and before the store caches what it read, until release is closed.
type holdTokenRead struct {
	id      atomic.Value // string: the authorization whose next read to hold; "" none
	reached chan struct{}
	release chan struct{}
}

type heldRead struct{}

func (h *holdTokenRead) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if id, _ := h.id.Load().(string); id != "" && strings.HasPrefix(d.SQL, "select id::text") && len(d.Args) > 0 && d.Args[0] == id &&
		h.id.CompareAndSwap(id, "") {
		return context.WithValue(ctx, heldRead{}, true)
	}
	return ctx
}

func (h *holdTokenRead) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	if ctx.Value(heldRead{}) != nil {
		close(h.reached)
		<-h.release
	}
}

// A deletion that reaches an instance while it is reading the row (the read answered
// before the delete) must not be undone when that read caches its token: the next call
// is refused, not served the deleted authorization's token from the cache.
func TestADeletionThatArrivesDuringATokenReadIsNotUndoneByIt(t *testing.T) {
	b, target, read, release := deletedDuringAHeldRead(t, "deleted during a read")
	release()
	if r := <-read; r.err != nil {
		t.Fatalf("the read that began before the deletion: %v", r.err)
	}

	c, err := b.Token(ctxT(t), acme, target.ID)
	if err == nil {
		t.Fatalf("B served a deleted authorization's token from its cache (expires %s)", c.ExpiresAt)
	}
	wantAuthError(t, err, outcomes.CodeAuthorizationNotFound)
}

// deletedDuringAHeldRead starts instances A and B; B begins reading an authorization's
// row and is held once Postgres has answered, while A deletes it and a probe, and B
// hears of both (notifications arrive in order: once B no longer serves the probe, it
// has had the authorization's too). read gets the held read's result once release (safe
// to call twice, and called when the test ends) lets it finish.
func deletedDuringAHeldRead(t *testing.T, name string) (b *authstore.Store, target authstore.Authorization, read <-chan tokenResult, release func()) {
	t.Helper()
	e := newEnv(t, engagesim.Config{})
	hold := &holdTokenRead{reached: make(chan struct{}), release: make(chan struct{})}
	hold.id.Store("")
	a := e.replica()
	b = e.store(func(o *authstore.Options) { o.Pool = e.tracedPool(hold) })
	waitListening(t, a, b)
	target = e.createCC(a, acme, name)
	probe := e.createCC(a, acme, "probe")
	warm(t, e, b, 1, probe.ID)

	hold.id.Store(target.ID)
	result := make(chan tokenResult, 1)
	go func() {
		c, err := b.Token(ctxT(t), acme, target.ID)
		result <- tokenResult{c, err}
	}()
	reach(t, hold.reached, "B reads the row")
	var once sync.Once
	release = func() { once.Do(func() { close(hold.release) }) }
	t.Cleanup(release)
	for _, id := range []string{target.ID, probe.ID} {
		if err := a.Delete(ctxT(t), acme, authstore.ActorAPI, id); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "B hears of the deletions", func() bool {
		_, err := b.Token(ctxT(t), acme, probe.ID)
		return err != nil
	})
	return b, target, result, release
}

// The instance that deletes an authorization refuses it as soon as Delete returns, from
// its own cache too: it does not wait for its own NOTIFY to come back.
func TestTheInstanceThatDeletesAnAuthorizationRefusesItAsSoonAsDeleteReturns(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	waitListening(t, s)
	for i := range 10 {
		a := e.createCC(s, acme, "deleted "+strconv.Itoa(i))
		// Cached: the previous round's NOTIFY, arriving late, may drop a first read's.
		waitFor(t, 5*time.Second, "the token is served from the cache", func() bool {
			if _, err := s.Token(ctxT(t), acme, a.ID); err != nil {
				t.Fatal(err)
			}
			hits := counter(t, e.regs[0], "noderuntime_token_cache_requests_total", "hit")
			_, err := s.Token(ctxT(t), acme, a.ID)
			return err == nil && counter(t, e.regs[0], "noderuntime_token_cache_requests_total", "hit") == hits+1
		})
		if err := s.Delete(ctxT(t), acme, authstore.ActorAPI, a.ID); err != nil {
			t.Fatal(err)
		}
		c, err := s.Token(ctxT(t), acme, a.ID)
		if err == nil {
			t.Fatalf("deletion %d: the instance that deleted it served its cached token (expires %s)", i+1, c.ExpiresAt)
		}
		wantAuthError(t, err, outcomes.CodeAuthorizationNotFound)
	}
}

// Likewise the instance that re-authorizes client credentials serves the new token as
// soon as Reauthorize returns: the re-authorization may have moved the authorization to
// another Engage tenant, whose executions must not run on the old tenant's token.
func TestTheInstanceThatReauthorizesServesTheNewTokenAsSoonAsReauthorizeReturns(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	waitListening(t, s)
	for i := range 10 {
		a := e.createCC(s, acme, "reauthorized "+strconv.Itoa(i))
		// Cached: the previous round's NOTIFY, arriving late, may drop a first read's.
		var old authstore.Credential
		waitFor(t, 5*time.Second, "the token is served from the cache", func() bool {
			var err error
			if old, err = s.Token(ctxT(t), acme, a.ID); err != nil {
				t.Fatal(err)
			}
			hits := counter(t, e.regs[0], "noderuntime_token_cache_requests_total", "hit")
			_, err = s.Token(ctxT(t), acme, a.ID)
			return err == nil && counter(t, e.regs[0], "noderuntime_token_cache_requests_total", "hit") == hits+1
		})
		if _, err := s.Reauthorize(ctxT(t), acme, authstore.ActorAPI, a.ID, authstore.ReauthorizeRequest{}); err != nil {
			t.Fatal(err)
		}
		c, err := s.Token(ctxT(t), acme, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if c.AccessToken.Reveal() == old.AccessToken.Reveal() || c.AccessToken.Reveal() != e.storedAccessToken(a.ID) {
			t.Fatalf("re-authorization %d: the instance that re-authorized served the token it replaced", i+1)
		}
	}
}

// A load begun before the listener reconnected (during an outage, say) and failing after
// it is not shared with a call made after the reconnect: that call finds the cache
// emptied by the reconnect and no stale token to fall back on, so it reads Postgres
// itself, which is back, instead of answering the old load's failure.
func TestACallAfterTheListenerReconnectsDoesNotShareALoadBegunBefore(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	a := e.createCC(s, acme, "across a reconnect")
	waitListening(t, s)
	release := s.HoldLoad(acme, a.ID)
	s.Connected()
	got := make(chan error, 1)
	go func() {
		_, err := s.Token(ctxT(t), acme, a.ID)
		got <- err
	}()
	select {
	case err := <-got:
		release(nil)
		if err != nil {
			t.Fatalf("a call after the reconnect: %v", err)
		}
	case <-time.After(5 * time.Second):
		release(errors.New("the outage"))
		t.Fatalf("a call after the reconnect waited on a load begun before it, and answered: %v", <-got)
	}
}

// A call made once an instance knows of a deletion must not share a read of the row
// begun before it (another caller's, still in flight): that read answers the deleted
// authorization's token, and the later call would get it too. It reads Postgres
// itself and is refused, without waiting for the older read.
func TestACallAfterADeletionDoesNotShareATokenReadBegunBeforeIt(t *testing.T) {
	b, target, first, release := deletedDuringAHeldRead(t, "deleted during a shared read")

	later := make(chan tokenResult, 1)
	go func() {
		c, err := b.Token(ctxT(t), acme, target.ID)
		later <- tokenResult{c, err}
	}()
	var r tokenResult
	select {
	case r = <-later:
	case <-time.After(5 * time.Second):
		release()
		r = <-later
		if r.err == nil {
			t.Fatalf("a call after the deletion waited on a read begun before it and got the deleted authorization's token (expires %s)", r.c.ExpiresAt)
		}
		t.Fatalf("a call after the deletion waited on a read begun before it: %v", r.err)
	}
	if r.err == nil {
		t.Fatalf("a call after the deletion got the deleted authorization's token (expires %s)", r.c.ExpiresAt)
	}
	wantAuthError(t, r.err, outcomes.CodeAuthorizationNotFound)
	release()
	<-first
}
