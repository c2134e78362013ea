package authstore_test

import (
	"context"
	"testing"
	"time"

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
