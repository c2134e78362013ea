package idempotency_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/internal/idempotency"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// waiterPatience is how long the tests' waiters wait on a key held by another request.
const waiterPatience = time.Second

func hash(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func claim(t *testing.T, s *idempotency.Store, tn, key, body string, lease time.Duration, takeOver bool) idempotency.Claim {
	t.Helper()
	c, err := s.Claim(t.Context(), tenant.ID("t-"+tn), key, hash(body), lease, takeOver)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTheFirstRequestRunsAndTheNextOnesReplayItsAnswer(t *testing.T) {
	t.Parallel()
	s := idempotency.New(dbtest.NewPool(t), idempotency.Options{})
	first := claim(t, s, "a", "k1", "body", time.Minute, false)
	if first.State != idempotency.Run {
		t.Fatalf("first claim: %v", first.State)
	}
	if err := s.Complete(t.Context(), "t-a", "k1", first.Holder, []byte(`{"outcome":"x"}`)); err != nil {
		t.Fatal(err)
	}
	c := claim(t, s, "a", "k1", "body", time.Minute, false)
	if c.State != idempotency.Replay || string(c.Response) != `{"outcome":"x"}` {
		t.Fatalf("second claim: %v %q", c.State, c.Response)
	}
	if c := claim(t, s, "a", "k1", "other body", time.Minute, false); c.State != idempotency.Mismatch {
		t.Fatalf("other body: %v", c.State)
	}
	if c := claim(t, s, "b", "k1", "body", time.Minute, false); c.State != idempotency.Run {
		t.Fatalf("another tenant's key is its own: %v", c.State)
	}
	// A late second answer does not replace the first.
	if err := s.Complete(t.Context(), "t-a", "k1", first.Holder, []byte(`{"outcome":"y"}`)); err != nil {
		t.Fatal(err)
	}
	if c := claim(t, s, "a", "k1", "body", time.Minute, false); string(c.Response) != `{"outcome":"x"}` {
		t.Fatalf("answer replaced: %q", c.Response)
	}
}

// Two tenants that pick the same key each have their own: neither reads, nor
// completes, the other's, whether their bodies differ or are the same.
func TestTenantsWithTheSameKeyNeverSeeEachOthersAnswer(t *testing.T) {
	t.Parallel()
	s := idempotency.New(dbtest.NewPool(t), idempotency.Options{})
	a := claim(t, s, "a", "k", "body-a", time.Minute, false)
	if err := s.Complete(t.Context(), "t-a", "k", a.Holder, []byte(`"A"`)); err != nil {
		t.Fatal(err)
	}
	b := claim(t, s, "b", "k", "body-b", time.Minute, false)
	if b.State != idempotency.Run {
		t.Fatalf("b's first claim: %v", b.State)
	}
	if err := s.Complete(t.Context(), "t-b", "k", b.Holder, []byte(`"B"`)); err != nil {
		t.Fatal(err)
	}
	if c := claim(t, s, "b", "k", "body-b", time.Minute, false); c.State != idempotency.Replay || string(c.Response) != `"B"` {
		t.Fatalf("b's retry: %v %q, want its own answer", c.State, c.Response)
	}
	if c := claim(t, s, "b", "k", "body-a", time.Minute, false); c.State != idempotency.Mismatch {
		t.Fatalf("b with a's body: %v %q, want a mismatch with b's own request", c.State, c.Response)
	}

	// The same body under both tenants: a's answer is not b's.
	a = claim(t, s, "a", "same", "body", time.Minute, false)
	claim(t, s, "b", "same", "body", time.Minute, false)
	if err := s.Complete(t.Context(), "t-a", "same", a.Holder, []byte(`"A"`)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waiterPatience)
	defer cancel()
	if c, err := s.Claim(ctx, "t-b", "same", hash("body"), time.Minute, false); err != nil || c.State != idempotency.InProgress {
		t.Fatalf("b's key while b still runs: %v %q %v, want in progress", c.State, c.Response, err)
	}
}

func TestConcurrentRequestsWithOneKeyRunOnceAndAllGetTheAnswer(t *testing.T) {
	t.Parallel()
	s := idempotency.New(dbtest.NewPool(t), idempotency.Options{MaxPoll: 10 * time.Millisecond})
	const n = 20
	var wg sync.WaitGroup
	states := make(chan idempotency.Claim, n)
	var runs sync.Mutex
	ran := 0
	for range n {
		wg.Go(func() {
			c, err := s.Claim(t.Context(), "acme", "k", hash("b"), time.Minute, false)
			if err != nil {
				t.Error(err)
				return
			}
			if c.State == idempotency.Run {
				runs.Lock()
				ran++
				runs.Unlock()
				if err := s.Complete(context.Background(), "acme", "k", c.Holder, []byte("answer")); err != nil {
					t.Error(err)
				}
			}
			states <- c
		})
	}
	wg.Wait()
	close(states)
	if ran != 1 {
		t.Fatalf("%d requests ran the execution, want 1", ran)
	}
	for c := range states {
		if c.State == idempotency.Replay && string(c.Response) != "answer" {
			t.Errorf("replayed %q", c.Response)
		} else if c.State != idempotency.Replay && c.State != idempotency.Run {
			t.Errorf("state %v", c.State)
		}
	}
}

func TestAWaiterGivesUpWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	s := idempotency.New(dbtest.NewPool(t), idempotency.Options{})
	if c := claim(t, s, "a", "k", "b", time.Minute, false); c.State != idempotency.Run {
		t.Fatal(c.State)
	}
	// Long enough for the first read on a busy machine: a context that ends before
	// any look saw the key held is an error (the key's state is unknown).
	ctx, cancel := context.WithTimeout(t.Context(), waiterPatience)
	defer cancel()
	c, err := s.Claim(ctx, "t-a", "k", hash("b"), time.Minute, false)
	if err != nil || c.State != idempotency.InProgress {
		t.Fatalf("got %v, %v; want InProgress", c.State, err)
	}
}

// cancelOnRead cancels the waiter's context as its at-th read of the key starts, so
// that read runs on an ended context: what a slow database does to a waiter near its
// deadline.
type cancelOnRead struct {
	at     int32
	reads  atomic.Int32
	cancel atomic.Pointer[context.CancelFunc]
}

func (c *cancelOnRead) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "select request_hash") && c.reads.Add(1) == c.at {
		(*c.cancel.Load())()
	}
	return ctx
}

func (c *cancelOnRead) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func TestAWaiterWhoseContextEndsDuringARead(t *testing.T) {
	t.Parallel()
	cfg, err := pgxpool.ParseConfig(dbtest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		at    int32
		state idempotency.State // zero: an error is wanted
	}{
		// The first look has not seen the key yet: its state is unknown.
		{"first read", 1, 0},
		// An earlier look saw the key held: as if the context had ended between looks.
		{"a later read", 2, idempotency.InProgress},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tracer := &cancelOnRead{at: tc.at}
			cfg := cfg.Copy()
			cfg.ConnConfig.Tracer = tracer
			pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			s := idempotency.New(pool, idempotency.Options{MaxPoll: time.Millisecond})
			key := "k-" + tc.name
			if c := claim(t, s, "a", key, "b", time.Minute, false); c.State != idempotency.Run {
				t.Fatal(c.State)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			tracer.cancel.Store(&cancel)
			c, err := s.Claim(ctx, "t-a", key, hash("b"), time.Minute, false)
			if tracer.reads.Load() != tc.at {
				t.Fatalf("%d reads, want the claim to end at read %d", tracer.reads.Load(), tc.at)
			}
			if tc.state == 0 {
				if err == nil || !errors.Is(err, context.Canceled) {
					t.Fatalf("got %v, %v; want the context's error", c.State, err)
				}
				return
			}
			if err != nil || c.State != tc.state {
				t.Fatalf("got %v, %v; want %v", c.State, err, tc.state)
			}
		})
	}
}

func TestAnAbandonedKeyIsTakenOverOnlyWhenTheCallerMayRunAgain(t *testing.T) {
	t.Parallel()
	s := idempotency.New(dbtest.NewPool(t), idempotency.Options{})
	// A lease of zero has lapsed at once: the holder went away without an answer.
	if c := claim(t, s, "a", "k", "b", 0, false); c.State != idempotency.Run {
		t.Fatal(c.State)
	}
	if c := claim(t, s, "a", "k", "b", time.Minute, false); c.State != idempotency.Abandoned {
		t.Fatalf("mutating caller: %v, want Abandoned", c.State)
	}
	if c := claim(t, s, "a", "k", "b", time.Minute, true); c.State != idempotency.Run {
		t.Fatalf("read-only caller: %v, want Run", c.State)
	}
	// Long enough for the first read on a busy machine: a context that ends before
	// any look saw the key held is an error (the key's state is unknown).
	ctx, cancel := context.WithTimeout(t.Context(), waiterPatience)
	defer cancel()
	if c, err := s.Claim(ctx, "t-a", "k", hash("b"), time.Minute, true); err != nil || c.State != idempotency.InProgress {
		t.Fatalf("a key taken over is held again: got %v (%v), want InProgress", c.State, err)
	}
}

func TestExpiredKeysAreReclaimedAndSwept(t *testing.T) {
	t.Parallel()
	pool := dbtest.NewPool(t)
	s := idempotency.New(pool, idempotency.Options{})
	for _, key := range []string{"old1", "old2", "fresh"} {
		c := claim(t, s, "a", key, "b", time.Minute, false)
		if c.State != idempotency.Run {
			t.Fatal(c.State)
		}
		if err := s.Complete(t.Context(), "t-a", key, c.Holder, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(t.Context(), `update idempotency_keys set expires_at = now() - interval '1 second' where key like 'old%'`); err != nil {
		t.Fatal(err)
	}
	// An expired key is new again, even with another body.
	if c := claim(t, s, "a", "old1", "another body", time.Minute, false); c.State != idempotency.Run {
		t.Fatalf("expired key: %v, want Run", c.State)
	}
	n, err := s.Sweep(t.Context(), 100)
	if err != nil || n != 1 {
		t.Fatalf("swept %d (%v), want 1 (old2)", n, err)
	}
	var left int
	if err := pool.QueryRow(t.Context(), `select count(*) from idempotency_keys`).Scan(&left); err != nil || left != 2 {
		t.Fatalf("%d rows left (%v), want 2", left, err)
	}
}

// A released key has no answer to replay: the next request with it runs, and a request
// that was waiting on it takes it. Release touches only the holder's own claim: not
// another tenant's key, not another holder's, not an answer already stored.
func TestAReleasedKeyRunsAgainAndAWaiterTakesIt(t *testing.T) {
	t.Parallel()
	s := idempotency.New(dbtest.NewPool(t), idempotency.Options{MaxPoll: 10 * time.Millisecond})
	a := claim(t, s, "a", "k", "body", time.Minute, false)
	if a.State != idempotency.Run {
		t.Fatalf("first claim: %v", a.State)
	}
	b := claim(t, s, "b", "k", "body", time.Minute, false)
	waiter := make(chan idempotency.State, 1)
	go func() {
		c, err := s.Claim(t.Context(), "t-a", "k", hash("body"), time.Minute, false)
		if err != nil {
			t.Error(err)
		}
		waiter <- c.State
	}()
	for _, other := range []struct {
		tenant tenant.ID
		holder idempotency.Holder
	}{{"t-c", a.Holder}, {"t-a", b.Holder}} {
		if err := s.Release(t.Context(), other.tenant, "k", other.holder); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case st := <-waiter:
		t.Fatalf("the waiter got %v before the holder released the key", st)
	case <-time.After(50 * time.Millisecond): // a few of its looks
	}
	if err := s.Release(t.Context(), "t-a", "k", a.Holder); err != nil {
		t.Fatal(err)
	}
	if st := <-waiter; st != idempotency.Run {
		t.Fatalf("the waiter after the release: %v, want run", st)
	}
	// Tenant b's claim was not released; once answered, a release leaves the answer.
	if err := s.Complete(t.Context(), "t-b", "k", b.Holder, []byte(`{"outcome":"b"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(t.Context(), "t-b", "k", b.Holder); err != nil {
		t.Fatal(err)
	}
	if c := claim(t, s, "b", "k", "body", time.Minute, false); c.State != idempotency.Replay || string(c.Response) != `{"outcome":"b"}` {
		t.Fatalf("tenant b: %v %q, want its answer replayed", c.State, c.Response)
	}
}

// A holder whose lease lapsed and whose key a search took over no longer holds it: its
// late release does not free the key under the request that runs it now, and its late
// answer is not stored over the one that request will give.
func TestAHolderWhoseKeyWasTakenOverNoLongerTouchesIt(t *testing.T) {
	t.Parallel()
	s := idempotency.New(dbtest.NewPool(t), idempotency.Options{})
	// A lease of zero has lapsed at once: the first holder is slow, not gone.
	slow := claim(t, s, "a", "k", "b", 0, true)
	taker := claim(t, s, "a", "k", "b", time.Minute, true)
	if slow.State != idempotency.Run || taker.State != idempotency.Run {
		t.Fatalf("claims: %v, %v; want both Run", slow.State, taker.State)
	}
	if slow.Holder == taker.Holder {
		t.Fatal("two claims share a holder")
	}
	if err := s.Release(t.Context(), "t-a", "k", slow.Holder); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waiterPatience)
	defer cancel()
	if c, err := s.Claim(ctx, "t-a", "k", hash("b"), time.Minute, true); err != nil || c.State != idempotency.InProgress {
		t.Fatalf("after the slow holder's release: %v (%v), want the taker's claim still in progress", c.State, err)
	}
	if err := s.Complete(t.Context(), "t-a", "k", slow.Holder, []byte("slow")); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(t.Context(), "t-a", "k", taker.Holder, []byte("taker")); err != nil {
		t.Fatal(err)
	}
	if c := claim(t, s, "a", "k", "b", time.Minute, true); c.State != idempotency.Replay || string(c.Response) != "taker" {
		t.Fatalf("replayed %v %q, want the taker's answer", c.State, c.Response)
	}
}

// A claim whose insert reached Postgres but whose answer was lost fails, and leaves
// the key free: the retry runs the execution instead of waiting out the lease and then
// finding the key abandoned (which a mutation's retry cannot get past for a day).
func TestAClaimWhoseAnswerWasLostLeavesTheKeyFree(t *testing.T) {
	t.Parallel()
	pool, armed := dbtest.PoolLosingTheReplyTo(t, dbtest.NewURL(t), "insert into idempotency_keys")
	armed.Store(true)
	s := idempotency.New(pool, idempotency.Options{})

	if _, err := s.Claim(t.Context(), "t-a", "k", hash("b"), time.Minute, false); err == nil || armed.Load() {
		t.Fatalf("the claim whose answer was lost: %v (insert seen: %v), want an error", err, !armed.Load())
	}
	ctx, cancel := context.WithTimeout(t.Context(), waiterPatience)
	defer cancel()
	if c, err := s.Claim(ctx, "t-a", "k", hash("b"), time.Minute, false); err != nil || c.State != idempotency.Run {
		t.Fatalf("the retry: %v (%v), want Run", c.State, err)
	}
}

// An expired key that a new request reclaims is that request's alone: its answer is
// the one stored and replayed, never the expired request's, and its holder is the one
// that may store it.
func TestAReclaimedKeyKeepsTheNewRequestsAnswer(t *testing.T) {
	t.Parallel()
	pool := dbtest.NewPool(t)
	s := idempotency.New(pool, idempotency.Options{})
	old := claim(t, s, "a", "k", "old body", time.Minute, false)
	if err := s.Complete(t.Context(), "t-a", "k", old.Holder, []byte(`{"outcome":"old"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(t.Context(), `update idempotency_keys set expires_at = now() - interval '1 second' where key = 'k'`); err != nil {
		t.Fatal(err)
	}
	reclaimed := claim(t, s, "a", "k", "new body", time.Minute, false)
	if reclaimed.State != idempotency.Run {
		t.Fatalf("expired key: %v, want Run", reclaimed.State)
	}
	if err := s.Complete(t.Context(), "t-a", "k", reclaimed.Holder, []byte(`{"outcome":"new"}`)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waiterPatience)
	defer cancel()
	c, err := s.Claim(ctx, "t-a", "k", hash("new body"), time.Minute, false)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != idempotency.Replay || string(c.Response) != `{"outcome":"new"}` {
		t.Fatalf("the reclaimed key's retry: %v %q, want the new request's answer replayed", c.State, c.Response)
	}
	// The expired request's holder no longer touches it.
	if err := s.Release(t.Context(), "t-a", "k", old.Holder); err != nil {
		t.Fatal(err)
	}
	if c := claim(t, s, "a", "k", "new body", time.Minute, false); c.State != idempotency.Replay {
		t.Fatalf("after the old holder's release: %v, want Replay", c.State)
	}
}

// A take-over whose update reached Postgres but whose answer was lost leaves the key
// free too: the retry takes it at once instead of waiting out the lost claim's lease.
func TestATakeOverWhoseAnswerWasLostLeavesTheKeyFree(t *testing.T) {
	t.Parallel()
	pool, armed := dbtest.PoolLosingTheReplyTo(t, dbtest.NewURL(t), "update idempotency_keys set locked_until")
	s := idempotency.New(pool, idempotency.Options{})

	claim(t, s, "a", "k", "b", 0, true) // a lease of zero has lapsed at once: abandoned
	armed.Store(true)
	if _, err := s.Claim(t.Context(), "t-a", "k", hash("b"), time.Minute, true); err == nil || armed.Load() {
		t.Fatalf("the take-over whose answer was lost: %v (update seen: %v), want an error", err, !armed.Load())
	}
	ctx, cancel := context.WithTimeout(t.Context(), waiterPatience)
	defer cancel()
	if c, err := s.Claim(ctx, "t-a", "k", hash("b"), time.Minute, true); err != nil || c.State != idempotency.Run {
		t.Fatalf("the retry: %v (%v), want Run", c.State, err)
	}
}

// An expired key that many requests claim at once, on two replicas, one of which sweeps
// on every claim (so the row may be reclaimed in place or deleted and inserted anew
// under them): one request runs, the others replay its answer, never the expired one.
func TestAnExpiredKeyClaimedAtOnceOnTwoReplicasRunsOnce(t *testing.T) {
	t.Parallel()
	url := dbtest.NewURL(t)
	pools := make([]*pgxpool.Pool, 2)
	for i := range pools {
		p, err := pgxpool.New(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		pools[i] = p
	}
	stores := []*idempotency.Store{
		idempotency.New(pools[0], idempotency.Options{MaxPoll: 10 * time.Millisecond, SweepEvery: 1}),
		idempotency.New(pools[1], idempotency.Options{MaxPoll: 10 * time.Millisecond}),
	}
	first := claim(t, stores[0], "a", "k", "b", time.Minute, false)
	if err := stores[0].Complete(t.Context(), "t-a", "k", first.Holder, []byte("expired answer")); err != nil {
		t.Fatal(err)
	}
	if _, err := pools[0].Exec(t.Context(), `update idempotency_keys set expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var ran atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := stores[i%2].Claim(t.Context(), "t-a", "k", hash("b"), time.Minute, false)
			switch {
			case err != nil:
				t.Error(err)
			case c.State == idempotency.Run:
				ran.Add(1)
				if err := stores[i%2].Complete(context.Background(), "t-a", "k", c.Holder, []byte("new answer")); err != nil {
					t.Error(err)
				}
			case c.State != idempotency.Replay || string(c.Response) != "new answer":
				t.Errorf("claim %d: %v %q, want Run or a replay of the new answer", i, c.State, c.Response)
			}
		})
	}
	wg.Wait()
	if ran.Load() != 1 {
		t.Fatalf("%d requests ran, want 1", ran.Load())
	}
}

// holdTakeOver holds the first take-over statement before it is sent, until release is
// closed (a request that read the key as abandoned and has not yet taken it), and
// closes answered when that statement has its answer.
type holdTakeOver struct {
	held                       atomic.Bool
	reached, release, answered chan struct{}
}

type heldStatement struct{}

func (h *holdTakeOver) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "update idempotency_keys set locked_until") && h.held.CompareAndSwap(false, true) {
		close(h.reached)
		<-h.release
		return context.WithValue(ctx, heldStatement{}, true)
	}
	return ctx
}

func (h *holdTakeOver) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	if ctx.Value(heldStatement{}) != nil {
		close(h.answered)
	}
}

// Two requests that both read a key as abandoned race to take it over: the one that
// takes it second finds it held again and waits, rather than running the execution a
// second time beside the first.
func TestAnAbandonedKeyTakenOverByTwoRequestsAtOnceRunsOnce(t *testing.T) {
	t.Parallel()
	url := dbtest.NewURL(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	hold := &holdTakeOver{reached: make(chan struct{}), release: make(chan struct{}), answered: make(chan struct{})}
	cfg.ConnConfig.Tracer = hold
	held, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(held.Close)
	plain, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plain.Close)
	first := idempotency.New(held, idempotency.Options{})
	second := idempotency.New(plain, idempotency.Options{})
	// A lease of zero has lapsed at once: the holder went away without an answer.
	if c := claim(t, second, "a", "k", "b", 0, false); c.State != idempotency.Run {
		t.Fatal(c.State)
	}

	type result struct {
		c   idempotency.Claim
		err error
	}
	late := make(chan result, 1)
	ctx, giveUp := context.WithCancel(t.Context())
	defer giveUp()
	go func() {
		c, err := first.Claim(ctx, "t-a", "k", hash("b"), time.Minute, true)
		late <- result{c, err}
	}()
	select {
	case <-hold.reached:
	case r := <-late:
		t.Fatalf("the first request: %v (%v) before it came to take the key over", r.c.State, r.err)
	}
	if c := claim(t, second, "a", "k", "b", time.Minute, true); c.State != idempotency.Run {
		t.Fatalf("the second request: %v, want Run (it took the key over)", c.State)
	}
	close(hold.release)
	// Once its take-over has answered, the first request has nothing left to decide but
	// to wait: it gives up, and says whether it ran.
	select {
	case <-hold.answered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request's take-over did not answer")
	}
	giveUp()
	if r := <-late; r.err != nil || r.c.State != idempotency.InProgress {
		t.Fatalf("the first request: %v (%v), want InProgress: the key was taken over meanwhile", r.c.State, r.err)
	}
}

// leaveAtTheAnswer is a connection on which the caller leaves as the answer to the
// next claim arrives: Postgres has made the claim, the caller's context ends, and the
// connection breaks with the answer unread.
type leaveAtTheAnswer struct {
	net.Conn
	leave  func()
	armed  *atomic.Bool
	losing bool
}

func (c *leaveAtTheAnswer) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte("insert into idempotency_keys")) && c.armed.CompareAndSwap(true, false) {
		c.losing = true
	}
	return c.Conn.Write(b)
}

func (c *leaveAtTheAnswer) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.losing && n > 0 {
		c.leave()
		c.Conn.Close()
		return 0, errors.New("the caller left as the answer arrived")
	}
	return n, err
}

// A caller that leaves while its claim is in flight (the client hung up) after
// Postgres made the claim: the key is given up on a deadline of the store's own, not
// the caller's ended context, so the retry runs at once instead of finding the key held
// by nobody for the whole lease.
func TestAClaimWhoseCallerLeftAsItWasMadeLeavesTheKeyFree(t *testing.T) {
	t.Parallel()
	ctx, leave := context.WithCancel(t.Context())
	defer leave()
	armed := new(atomic.Bool)
	pool := dbtest.PoolOnConns(t, dbtest.NewURL(t), func(conn net.Conn) net.Conn {
		return &leaveAtTheAnswer{Conn: conn, leave: leave, armed: armed}
	})
	s := idempotency.New(pool, idempotency.Options{})

	armed.Store(true)
	if _, err := s.Claim(ctx, "t-a", "k", hash("b"), time.Minute, false); err == nil || armed.Load() || ctx.Err() == nil {
		t.Fatalf("the claim whose caller left: %v (insert seen: %v, left: %v), want an error", err, !armed.Load(), ctx.Err() != nil)
	}
	retry, cancel := context.WithTimeout(t.Context(), waiterPatience)
	defer cancel()
	if c, err := s.Claim(retry, "t-a", "k", hash("b"), time.Minute, false); err != nil || c.State != idempotency.Run {
		t.Fatalf("the retry: %v (%v), want Run", c.State, err)
	}
}

// An execution whose answer is empty (or nil) has answered all the same: its key
// replays the empty answer, rather than reading as still running or abandoned.
func TestAnEmptyAnswerIsReplayedAsAnAnswer(t *testing.T) {
	t.Parallel()
	s := idempotency.New(dbtest.NewPool(t), idempotency.Options{})
	for key, answer := range map[string][]byte{"nil": nil, "empty": {}} {
		c := claim(t, s, "a", key, "b", time.Minute, false)
		if c.State != idempotency.Run {
			t.Fatal(c.State)
		}
		if err := s.Complete(t.Context(), "t-a", key, c.Holder, answer); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), waiterPatience)
		defer cancel()
		got, err := s.Claim(ctx, "t-a", key, hash("b"), time.Minute, false)
		if err != nil || got.State != idempotency.Replay || len(got.Response) != 0 {
			t.Errorf("%s answer: %v %q (%v), want an empty replay", key, got.State, got.Response, err)
		}
	}
}

// The sweep deletes expired rows only: an answer about to expire (a short TTL, or one
// near the end of its day) is still replayed after a sweep.
func TestTheSweepKeepsAnswersThatHaveNotExpiredYet(t *testing.T) {
	t.Parallel()
	s := idempotency.New(dbtest.NewPool(t), idempotency.Options{TTL: time.Minute})
	c := claim(t, s, "a", "k", "b", time.Minute, false)
	if err := s.Complete(t.Context(), "t-a", "k", c.Holder, []byte("answer")); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Sweep(t.Context(), 100); err != nil || n != 0 {
		t.Fatalf("swept %d (%v), want 0: the answer has a minute to live", n, err)
	}
	if c := claim(t, s, "a", "k", "b", time.Minute, false); c.State != idempotency.Replay || string(c.Response) != "answer" {
		t.Fatalf("after the sweep: %v %q, want the answer replayed", c.State, c.Response)
	}
}

// Claims sweep now and then (every SweepEvery-th new key), so expired rows of keys no
// one uses again do not pile up without an operator calling Sweep.
func TestClaimsSweepExpiredKeysNowAndThen(t *testing.T) {
	t.Parallel()
	pool := dbtest.NewPool(t)
	s := idempotency.New(pool, idempotency.Options{SweepEvery: 2})
	for _, key := range []string{"old1", "old2"} {
		c := claim(t, s, "a", key, "b", time.Minute, false)
		if err := s.Complete(t.Context(), "t-a", key, c.Holder, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(t.Context(), `update idempotency_keys set expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	claim(t, s, "a", "new1", "b", time.Minute, false) // the third claim: no sweep
	claim(t, s, "a", "new2", "b", time.Minute, false) // the fourth: sweeps
	var left int
	if err := pool.QueryRow(t.Context(), `select count(*) from idempotency_keys where key like 'old%'`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d expired rows left (%v), want 0", left, err)
	}
}

// countLooks counts a waiter's looks at a key.
type countLooks struct{ n atomic.Int32 }

func (c *countLooks) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "select request_hash, response") {
		c.n.Add(1)
	}
	return ctx
}

func (c *countLooks) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// A waiter looks at the key at least every MaxPoll however long it has waited, so it
// sees the answer soon after it is stored, not after a wait that doubled without end.
func TestAWaiterLooksAtLeastEveryMaxPoll(t *testing.T) {
	t.Parallel()
	cfg, err := pgxpool.ParseConfig(dbtest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	looks := &countLooks{}
	cfg.ConnConfig.Tracer = looks
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s := idempotency.New(pool, idempotency.Options{MaxPoll: 10 * time.Millisecond})
	holder := claim(t, s, "a", "k", "b", time.Minute, false)

	got := make(chan idempotency.Claim, 1)
	go func() {
		c, err := s.Claim(t.Context(), "t-a", "k", hash("b"), time.Minute, false)
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	// Doubling from 5 ms without the bound, 40 looks would take hours; with it, under a
	// second.
	for start := time.Now(); looks.n.Load() < 40; time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%d looks in 5s, want one at least every 10ms", looks.n.Load())
		}
	}
	if err := s.Complete(t.Context(), "t-a", "k", holder.Holder, []byte("answer")); err != nil {
		t.Fatal(err)
	}
	if c := <-got; c.State != idempotency.Replay || string(c.Response) != "answer" {
		t.Fatalf("the waiter: %v %q, want the answer", c.State, c.Response)
	}
}

// expireOnRead expires every row of the table as the next read of a key starts, once
// armed: a key whose TTL passes between a claim's insert, which found it held, and its
// look at it.
type expireOnRead struct {
	db    *pgxpool.Pool // another pool on the same database
	armed atomic.Bool
	err   chan error
}

func (e *expireOnRead) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "select request_hash") && e.armed.CompareAndSwap(true, false) {
		_, err := e.db.Exec(ctx, `update idempotency_keys set expires_at = now() - interval '1 second'`)
		e.err <- err
	}
	return ctx
}

func (e *expireOnRead) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// An answer whose key expires just as a retry reads it is not replayed: expired, it is
// no longer the key's answer, and the retry reclaims the key and runs, as it would have
// a moment later.
func TestAnAnswerThatExpiresAsARetryReadsItIsNotReplayed(t *testing.T) {
	t.Parallel()
	url := dbtest.NewURL(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	expire := &expireOnRead{db: plain, err: make(chan error, 1)}
	cfg.ConnConfig.Tracer = expire
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := idempotency.New(pool, idempotency.Options{})

	first := claim(t, s, "a", "k", "b", time.Minute, false)
	if err := s.Complete(t.Context(), "t-a", "k", first.Holder, []byte(`{"outcome":"expired"}`)); err != nil {
		t.Fatal(err)
	}
	expire.armed.Store(true)
	c := claim(t, s, "a", "k", "b", time.Minute, false)
	select {
	case err := <-expire.err:
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("the retry did not read the key (%v)", c.State)
	}
	if c.State != idempotency.Run {
		t.Fatalf("got %v %q, want Run: the expired answer is not the key's any more", c.State, c.Response)
	}
}

// An answer is stored under the tenant that completes: a holder given with another
// tenant's name stores nothing under the key of the tenant it holds.
func TestCompleteStoresNothingUnderAnotherTenantsKey(t *testing.T) {
	t.Parallel()
	s := idempotency.New(dbtest.NewPool(t), idempotency.Options{})
	a := claim(t, s, "a", "k", "body", time.Minute, false)
	if a.State != idempotency.Run {
		t.Fatalf("first claim: %v", a.State)
	}
	if err := s.Complete(t.Context(), "t-b", "k", a.Holder, []byte(`"B"`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(t.Context(), "t-a", "k", a.Holder, []byte(`"A"`)); err != nil {
		t.Fatal(err)
	}
	if c := claim(t, s, "a", "k", "body", time.Minute, false); c.State != idempotency.Replay || string(c.Response) != `"A"` {
		t.Fatalf("a's retry: %v %q, want a's own answer", c.State, c.Response)
	}
}

// A take-over takes the caller's tenant's key only: another tenant's key of the same
// name, abandoned too, is still free for that tenant to take over.
func TestATakeOverTakesOnlyItsOwnTenantsKey(t *testing.T) {
	t.Parallel()
	s := idempotency.New(dbtest.NewPool(t), idempotency.Options{})
	// A lease of zero has lapsed at once: both holders went away without an answer.
	claim(t, s, "a", "k", "body", 0, true)
	claim(t, s, "b", "k", "body", 0, true)
	if c := claim(t, s, "a", "k", "body", time.Minute, true); c.State != idempotency.Run {
		t.Fatalf("a's take-over: %v, want Run", c.State)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waiterPatience)
	defer cancel()
	if c, err := s.Claim(ctx, "t-b", "k", hash("body"), time.Minute, true); err != nil || c.State != idempotency.Run {
		t.Fatalf("b's take-over: %v (%v), want Run", c.State, err)
	}
}

// A key is kept for the TTL from its claim: 24 hours by default (DESIGN.md), the
// Options' TTL when one is given.
func TestAKeyIsKeptForTheTTL(t *testing.T) {
	t.Parallel()
	pool := dbtest.NewPool(t)
	for _, tc := range []struct {
		key  string
		ttl  time.Duration
		want time.Duration
	}{
		{"default", 0, 24 * time.Hour},
		{"given", 3 * time.Hour, 3 * time.Hour},
	} {
		s := idempotency.New(pool, idempotency.Options{TTL: tc.ttl})
		if c := claim(t, s, "a", tc.key, "b", time.Minute, false); c.State != idempotency.Run {
			t.Fatalf("%s: %v", tc.key, c.State)
		}
		var left float64
		if err := pool.QueryRow(t.Context(), `select extract(epoch from expires_at - now()) from idempotency_keys where tenant = 't-a' and key = $1`, tc.key).Scan(&left); err != nil {
			t.Fatal(err)
		}
		// now() is the time of this statement's transaction, a moment after the claim's.
		if got := time.Duration(left * float64(time.Second)); got > tc.want || got < tc.want-time.Minute {
			t.Errorf("%s: the key expires in %v, want %v", tc.key, got, tc.want)
		}
	}
}
