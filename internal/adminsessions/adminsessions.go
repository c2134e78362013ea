// Package adminsessions remembers the admin sessions that were signed out, so that a
// copy of a signed-out session's cookie opens the admin pages on no replica. The cookie
// itself is sealed and carries the session; this table holds only the IDs of those that
// ended early, each until the session would have expired anyway.
//
// It knows Postgres, not HTTP or cookies.
package adminsessions

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noderuntime/noderuntime/internal/database"
)

// Store is the table of ended sessions. It is safe for concurrent use.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// sweepMargin is how long a record outlives its session: the session's expiry is
// checked against the clock of the replica that reads the cookie, the sweep against
// Postgres's, and a replica whose clock lags must not take a signed-out cookie again.
const sweepMargin = time.Hour

// End records that session id ended; it is refused until expires, when it would have
// expired anyway. Records expired for sweepMargin are swept on the way, a bounded
// number at a time.
func (s *Store) End(ctx context.Context, id string, expires time.Time) error {
	_, err := s.pool.Exec(ctx, `
		with swept as (
			delete from admin_sessions_ended where id = any(array(
				select id from admin_sessions_ended where expires_at <= now() - $3::interval limit 100)))
		insert into admin_sessions_ended (id, expires_at) values ($1, $2)
		on conflict (id) do nothing`, id, expires, sweepMargin)
	if err != nil {
		return fmt.Errorf("end admin session: %w", database.Redact(err))
	}
	return nil
}

// Ended reports whether session id was signed out.
func (s *Store) Ended(ctx context.Context, id string) (bool, error) {
	var ended bool
	err := s.pool.QueryRow(ctx, `select exists(select 1 from admin_sessions_ended where id = $1)`, id).Scan(&ended)
	if err != nil {
		return false, fmt.Errorf("read ended admin sessions: %w", database.Redact(err))
	}
	return ended, nil
}
