package authstore

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// channel is the NOTIFY channel of authorization changes; the payload is the ID.
const channel = "noderuntime_authorizations"

// notify tells every replica (this one included) to forget an authorization, when the
// caller's transaction commits.
func notify(ctx context.Context, q querier, id string) error {
	_, err := q.Exec(ctx, "select pg_notify($1, $2)", channel, id)
	return err
}

// How the listener waits and reconnects.
const (
	listenIdlePing = 15 * time.Second // a silent connection is pinged this often
	listenMinWait  = 100 * time.Millisecond
	listenMaxWait  = 5 * time.Second
)

// listen keeps a LISTEN connection of its own (not a pool connection: LISTEN belongs to
// a session) and drops cache entries as notifications arrive. While it is not
// connected, Token asks Postgres before the cache (which serves only when Postgres does
// not answer), and every (re)connect clears the cache, since notifications may have
// been missed meanwhile.
func (s *Store) listen(ctx context.Context) {
	wait := listenMinWait
	for ctx.Err() == nil {
		connected := s.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if connected {
			wait = listenMinWait
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, listenMaxWait)
	}
}

// connected starts a listening session. The cache may have missed notifications while
// the listener was down, so it starts over; that also starts a new cache generation, so
// a load begun before, which may yet fail on the outage, is not shared with the calls
// after (they would get its failure with no cache to fall back on; flightKey).
func (s *Store) connected() {
	s.cache.invalidateAll()
	s.listening.Store(true)
}

// listenOnce runs one connection until it fails; it reports whether it got as far as
// listening.
func (s *Store) listenOnce(ctx context.Context) bool {
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.Tracer = nil // the pool's query tracer counts the pool's queries, not this session's
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		s.logger.Debug("authorization listener cannot connect", slog.String("error", "postgres unreachable"))
		return false
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, "listen "+channel); err != nil {
		return false
	}
	s.connected()
	// The cache is kept when the connection goes: it is what serves while Postgres is
	// down. The next connect clears it.
	defer s.listening.Store(false)
	s.logger.Debug("authorization listener connected")
	for {
		wctx, cancel := context.WithTimeout(ctx, listenIdlePing)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			if id, ok := normalizeID(n.Payload); ok {
				s.cache.invalidate(id)
			}
		case ctx.Err() != nil:
			return true
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				s.logger.Warn("authorization listener lost postgres; reconnecting")
				return true
			}
		default:
			if ctx.Err() == nil {
				s.logger.Warn("authorization listener lost postgres; reconnecting")
			}
			return true
		}
	}
}
