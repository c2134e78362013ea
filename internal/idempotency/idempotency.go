// Package idempotency keeps the first answer of an execution per tenant and
// Idempotency-Key in Postgres, so a retried request gets that answer instead of running
// the node again, and concurrent requests with one key run it once.
//
// The table's primary key (tenant, key) is the lock: the request whose insert wins runs
// the execution and stores its answer; the others poll until the answer is there. The
// row names its holder (a random token of the claim), and only the holder stores an
// answer or releases the key. A row holds the SHA-256 of the request body, so the same
// key with another body is refused. Rows expire after a TTL (24 h); an expired row is reclaimed by the next
// request with its key, and a bounded sweep deletes old rows now and then.
//
// It knows Postgres, not HTTP or nodes: answers are opaque bytes.
package idempotency

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// DefaultTTL is how long an answer is kept (DESIGN.md: 24 h).
const DefaultTTL = 24 * time.Hour

// Options configure a Store. Zero values take the defaults.
type Options struct {
	// TTL is how long an answer is replayed. Zero: DefaultTTL.
	TTL time.Duration
	// MaxPoll bounds the interval between two looks at a key another request is
	// running. Zero: 100 ms.
	MaxPoll time.Duration
	// SweepEvery deletes expired rows on every SweepEvery-th new key. Zero: 256.
	SweepEvery uint64
}

// Store is the idempotency table. It is safe for concurrent use.
type Store struct {
	pool       *pgxpool.Pool
	ttl        time.Duration
	maxPoll    time.Duration
	sweepEvery uint64
	claims     atomic.Uint64
}

// New returns a Store on pool.
func New(pool *pgxpool.Pool, o Options) *Store {
	s := &Store{pool: pool, ttl: o.TTL, maxPoll: o.MaxPoll, sweepEvery: o.SweepEvery}
	if s.ttl <= 0 {
		s.ttl = DefaultTTL
	}
	if s.maxPoll <= 0 {
		s.maxPoll = 100 * time.Millisecond
	}
	if s.sweepEvery == 0 {
		s.sweepEvery = 256
	}
	return s
}

// State is what Claim found.
type State int

const (
	// Run: the caller holds the key; it runs the execution and calls Complete.
	Run State = iota + 1
	// Replay: the key already has an answer for this body, in Claim.Response.
	Replay
	// Mismatch: the key was used with another body.
	Mismatch
	// InProgress: another request with the key was still running when the caller's
	// context ended.
	InProgress
	// Abandoned: the request that held the key let its lease pass without an answer
	// (it crashed, or could not store the answer); what it did is unknown.
	Abandoned
)

func (s State) String() string {
	switch s {
	case Run:
		return "run"
	case Replay:
		return "replay"
	case Mismatch:
		return "mismatch"
	case InProgress:
		return "in_progress"
	case Abandoned:
		return "abandoned"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Claim is the result of Claim.
type Claim struct {
	State    State
	Response []byte
	// Holder is the caller's hold on the key when State is Run: Complete and Release
	// act only for it.
	Holder Holder
}

// Holder names one claim of a key: a random token, chosen by the claiming request.
type Holder [16]byte

func newHolder() Holder {
	var h Holder
	_, _ = rand.Read(h[:]) // never fails (crypto/rand)
	return h
}

// forgetTimeout bounds the release of a claim whose insert answered with an error.
const forgetTimeout = 2 * time.Second

// forget releases holder's claim of key, if it was made, after the statement that
// made it answered with an error; on its own deadline, since the caller may have left.
func (s *Store) forget(ctx context.Context, t tenant.ID, key string, holder Holder) {
	forgetCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), forgetTimeout)
	defer cancel()
	_ = s.Release(forgetCtx, t, key, holder)
}

// Claim takes key for the request whose body hashes to hash, or finds what an earlier
// request with key left. The caller that gets Run holds the key for lease: it must call
// Complete before then. While another request holds the key, Claim waits (polling)
// until it has an answer or ctx ends (InProgress, also when ctx ends during a read
// after the key was seen held). takeOver lets the caller run a key whose holder
// abandoned it; pass it only for executions that change nothing, since the first
// holder may have changed something before it went away.
func (s *Store) Claim(ctx context.Context, t tenant.ID, key string, hash []byte, lease time.Duration, takeOver bool) (Claim, error) {
	if s.claims.Add(1)%s.sweepEvery == 0 {
		// Bounded and rare: at most a few hundred rows, once every SweepEvery claims.
		_, _ = s.Sweep(ctx, 500)
	}
	wait := 5 * time.Millisecond
	// seenHeld: a look found the key held by another request. A context that ends
	// during a later read then answers InProgress, as it would between two looks;
	// before any look it is an error, since the key's state is unknown.
	seenHeld := false
	failed := func(err error) (Claim, error) {
		if seenHeld && ctx.Err() != nil {
			return Claim{State: InProgress}, nil
		}
		return Claim{}, err
	}
	holder := newHolder()
	for {
		won, err := s.insert(ctx, t, key, hash, holder, lease)
		if err != nil {
			// The insert may have reached Postgres and only its answer was lost (the
			// connection broke, the caller left): the key would then stay held by
			// nobody until its lease lapsed, and a mutation's retry would find it
			// abandoned. Give up the claim, if it was made, before failing.
			s.forget(ctx, t, key, holder)
			return failed(err)
		}
		if won {
			return Claim{State: Run, Holder: holder}, nil
		}
		for {
			c, found, err := s.look(ctx, t, key, hash, holder, lease, takeOver)
			if err != nil {
				return failed(err)
			}
			if !found {
				break // expired and swept meanwhile: try to insert again
			}
			if c.State != InProgress {
				return c, nil
			}
			seenHeld = true
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return Claim{State: InProgress}, nil
			case <-timer.C:
			}
			wait = min(wait*2, s.maxPoll)
		}
	}
}

// insert creates the key's row, or reclaims it when it expired; it reports whether the
// caller now holds the key.
func (s *Store) insert(ctx context.Context, t tenant.ID, key string, hash []byte, holder Holder, lease time.Duration) (bool, error) {
	var won bool
	err := s.pool.QueryRow(ctx, `
		insert into idempotency_keys (tenant, key, request_hash, holder, locked_until, expires_at)
		values ($1, $2, $3, $4, now() + $5::interval, now() + $6::interval)
		on conflict (tenant, key) do update
			set request_hash = excluded.request_hash, response = null, holder = excluded.holder,
			    locked_until = excluded.locked_until, created_at = now(), expires_at = excluded.expires_at
			where idempotency_keys.expires_at <= now()
		returning true`,
		string(t), key, hash, holder[:], lease, s.ttl).Scan(&won)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claim idempotency key: %w", err)
	}
	return won, nil
}

// look reads the key's row: Replay, Mismatch, InProgress, Abandoned, or Run when the
// caller took over an abandoned key. found is false when the row is gone or expired.
func (s *Store) look(ctx context.Context, t tenant.ID, key string, hash []byte, holder Holder, lease time.Duration, takeOver bool) (Claim, bool, error) {
	var stored, response []byte
	var lapsed bool
	err := s.pool.QueryRow(ctx, `
		select request_hash, response, coalesce(locked_until <= now(), true)
		from idempotency_keys
		where tenant = $1 and key = $2 and expires_at > now()`,
		string(t), key).Scan(&stored, &response, &lapsed)
	if errors.Is(err, pgx.ErrNoRows) {
		return Claim{}, false, nil
	}
	if err != nil {
		return Claim{}, false, fmt.Errorf("read idempotency key: %w", err)
	}
	switch {
	case !bytes.Equal(stored, hash):
		return Claim{State: Mismatch}, true, nil
	case response != nil:
		return Claim{State: Replay, Response: response}, true, nil
	case !lapsed:
		return Claim{State: InProgress}, true, nil
	case !takeOver:
		return Claim{State: Abandoned}, true, nil
	}
	var won bool
	err = s.pool.QueryRow(ctx, `
		update idempotency_keys set locked_until = now() + $3::interval, holder = $4
		where tenant = $1 and key = $2 and response is null and locked_until <= now()
		returning true`,
		string(t), key, lease, holder[:]).Scan(&won)
	if errors.Is(err, pgx.ErrNoRows) {
		return Claim{State: InProgress}, true, nil // someone else took it over first
	}
	if err != nil {
		// As for a lost insert: the take-over may have been made, and would hold the
		// key for nobody until its lease lapsed.
		s.forget(ctx, t, key, holder)
		return Claim{}, false, fmt.Errorf("take over idempotency key: %w", err)
	}
	return Claim{State: Run, Holder: holder}, true, nil
}

// Complete stores the answer of the execution that holds key. An answer is stored once;
// a holder whose key was taken over (after its lease lapsed) changes nothing.
func (s *Store) Complete(ctx context.Context, t tenant.ID, key string, holder Holder, response []byte) error {
	if response == nil {
		response = []byte{}
	}
	err := s.write(ctx, `
		update idempotency_keys set response = $4, locked_until = null
		where tenant = $1 and key = $2 and holder = $3 and response is null`,
		string(t), key, holder[:], response)
	if err != nil {
		return fmt.Errorf("store idempotent answer: %w", err)
	}
	return nil
}

// Release gives key up without an answer, for an execution that certainly changed
// nothing (it ended before reaching Engage): the next request with the key runs the
// execution itself, and requests waiting on the key take it as soon as it is gone. A
// holder whose key was taken over releases nothing.
func (s *Store) Release(ctx context.Context, t tenant.ID, key string, holder Holder) error {
	err := s.write(ctx, `
		delete from idempotency_keys
		where tenant = $1 and key = $2 and holder = $3 and response is null`,
		string(t), key, holder[:])
	if err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}

// write runs a holder's write (Complete, Release), which its guards make safe to run
// twice, and runs it again on a new connection while its connection turns out lost and
// ctx lasts: after a Postgres restart or fail-over the pool hands out connections the
// restart closed (those used less than a second ago, without a ping), and a write lost
// there would leave the key held by nobody, then abandoned for a day.
func (s *Store) write(ctx context.Context, sql string, args ...any) error {
	wait := time.Duration(0)
	for {
		_, err := s.pool.Exec(ctx, sql, args...)
		if err == nil || !database.ConnectionLost(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		s.pool.Reset() // every connection the restart closed, not one per try
		wait = min(max(2*wait, 50*time.Millisecond), time.Second)
	}
}

// Sweep deletes up to limit expired rows and returns how many it deleted.
func (s *Store) Sweep(ctx context.Context, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `
		delete from idempotency_keys where ctid = any(array(
			select ctid from idempotency_keys where expires_at <= now() limit $1))`, limit)
	if err != nil {
		return 0, fmt.Errorf("sweep idempotency keys: %w", err)
	}
	return tag.RowsAffected(), nil
}
