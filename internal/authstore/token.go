package authstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/outcomes"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// Token returns a valid access token for t's authorization id. In the steady state it
// is a memory cache hit without any database round trip; otherwise it reads the row and,
// when the token is within the refresh skew of its expiry, refreshes it (once per
// authorization across every replica).
//
// While the LISTEN/NOTIFY listener is down the cache may have missed a deletion, so
// Postgres answers first; only when that read fails for another reason than the
// authorization being unusable (most often Postgres is down or restarting) does a token
// still good in the cache serve: executions that ran before the outage keep running
// through it.
//
// An authorization that cannot be used (missing, another tenant's, malformed ID,
// pending, needs re-authorization, a base URL off the allowlist) answers an
// *outcomes.AuthorizationError; any other failure is a plain error.
func (s *Store) Token(ctx context.Context, t tenant.ID, authorizationID string) (Credential, error) {
	id, ok := normalizeID(authorizationID)
	if !ok {
		return Credential{}, authNotFound()
	}
	listening := s.listening.Load()
	if listening {
		if c, ok := s.cache.get(id, t, s.now()); ok {
			s.metrics.cacheHit.Inc()
			return c, nil
		}
	}
	s.metrics.cacheMiss.Inc()
	c, err := s.shared(ctx, t, id, secrets.Value{})
	if err != nil && !listening && ctx.Err() == nil {
		if _, final := errors.AsType[*outcomes.AuthorizationError](err); !final {
			if stale, ok := s.cache.get(id, t, s.now()); ok {
				return stale, nil
			}
		}
	}
	return c, err
}

// Refresh is for the execution path after Engage answered 401 to the token rejected:
// it refreshes once, unless another caller or replica already replaced that token, in
// which case it returns the newer one. Errors are those of Token.
func (s *Store) Refresh(ctx context.Context, t tenant.ID, authorizationID string, rejected secrets.Value) (Credential, error) {
	id, ok := normalizeID(authorizationID)
	if !ok {
		return Credential{}, authNotFound()
	}
	if !rejected.IsZero() {
		s.cache.dropToken(id, rejected)
	}
	return s.shared(ctx, t, id, rejected)
}

// storeTimeout bounds the reads and writes of a refresh around the token endpoint's
// call; it is also the time the new pair always gets to be stored.
const storeTimeout = 5 * time.Second

// shared runs one load per flightKey (tenant, authorization, rejected token, cache
// generation) in this process; the callers that arrive meanwhile wait for its answer. The
// load runs on its own deadline, not the first caller's: a caller that gives up must not
// cut a refresh in half (the provider may already have rotated the refresh token we are
// about to store).
func (s *Store) shared(ctx context.Context, t tenant.ID, id string, rejected secrets.Value) (Credential, error) {
	snap := s.cache.snapshot()
	ch := s.flight.DoChan(s.flightKey(snap, t, id, rejected), func() (any, error) {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.lockTimeout+s.refreshTimeout+storeTimeout)
		defer cancel()
		return s.load(wctx, snap, t, id, rejected)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return Credential{}, r.Err
		}
		return r.Val.(Credential), nil
	case <-ctx.Done():
		return Credential{}, fmt.Errorf("wait for the authorization's token: %w", ctx.Err())
	}
}

// flightKey names the load shared by concurrent calls: one per tenant, authorization,
// rejected token and cache generation (snap). A load is shared only by the calls made
// before the next invalidation: a call made once this process knows of a deletion, a
// re-authorization or a listener reconnect must not get the answer of a read begun
// before it (the deleted authorization's token, or a failure on the outage with no
// cache to fall back on). The generation counts every invalidation, not only this
// authorization's; a load split off by another's only waits on the row lock and skips
// the refresh the first one did.
func (s *Store) flightKey(snap uint64, t tenant.ID, id string, rejected secrets.Value) string {
	key := strconv.FormatUint(snap, 10) + "\x00" + string(t) + "\x00" + id
	if !rejected.IsZero() {
		sum := sha256.Sum256([]byte(rejected.Reveal()))
		key += "\x00" + hex.EncodeToString(sum[:8])
	}
	return key
}

// usable reports whether c, stored at issued, can be handed out: not yet due for
// refresh and not the token Engage just rejected.
func (s *Store) usable(c Credential, issued time.Time, rejected secrets.Value, now time.Time) bool {
	if c.AccessToken.IsZero() {
		return false
	}
	if !rejected.IsZero() && c.AccessToken.Reveal() == rejected.Reveal() {
		return false
	}
	return c.ExpiresAt.IsZero() || now.Before(s.refreshAt(c.ExpiresAt, issued))
}

// refreshAt is when a token stored at issued and expiring at expiry is due for refresh:
// the skew before its expiry, but never before half its life. A provider whose tokens
// live no longer than the skew would otherwise have every call refresh, each spending a
// rotating refresh token.
func (s *Store) refreshAt(expiry, issued time.Time) time.Time {
	skew := s.skew
	if !issued.IsZero() && issued.Before(expiry) {
		skew = min(skew, expiry.Sub(issued)/2)
	}
	return expiry.Add(-skew)
}

// stillValid reports whether c works at all (it may be within the skew): what a caller
// gets while the token endpoint is failing.
func stillValid(c Credential, rejected secrets.Value, now time.Time) bool {
	if c.AccessToken.IsZero() || (!rejected.IsZero() && c.AccessToken.Reveal() == rejected.Reveal()) {
		return false
	}
	return c.ExpiresAt.IsZero() || now.Before(c.ExpiresAt)
}

// usableRow says why the execution path cannot use r, or nil.
func (s *Store) usableRow(ctx context.Context, r *row) error {
	if !s.allowedBase(r.baseURL) {
		s.logger.WarnContext(ctx, "authorization refused: its base URL is not on the allowlist", slog.String("authorizationId", r.id), slog.String("tenant", string(r.tenant)))
		return authBaseNotAllowed()
	}
	return statusError(r)
}

func statusError(r *row) error {
	switch r.status {
	case StatusActive:
		return nil
	case StatusPending:
		return authPending()
	default:
		return authNeedsReauthorization()
	}
}

func (s *Store) credential(r *row) (Credential, error) {
	at, err := s.open(r.id, colAccessToken, r.accessToken)
	if err != nil {
		return Credential{}, err
	}
	c := Credential{AuthorizationID: r.id, BaseURL: r.baseURL, Domain: r.domain, AccessToken: at}
	if r.tokenExpiry != nil {
		c.ExpiresAt = *r.tokenExpiry
	}
	return c, nil
}

// remember caches c until it is due for refresh, at most CacheMaxAge. r.updatedAt is
// when its token was stored.
func (s *Store) remember(snap uint64, t tenant.ID, r *row, c Credential) {
	until := s.now().Add(s.maxAge)
	if !c.ExpiresAt.IsZero() {
		if e := s.refreshAt(c.ExpiresAt, r.updatedAt); e.Before(until) {
			until = e
		}
	}
	s.cache.put(snap, r.id, &entry{tenant: t, cred: c, version: r.version, until: until})
}

// load reads the row and refreshes its token if needed. snap is the cache generation
// of its flightKey: what it caches is dropped if an invalidation came since.
func (s *Store) load(ctx context.Context, snap uint64, t tenant.ID, id string, rejected secrets.Value) (Credential, error) {
	r, err := readRow(ctx, s.pool, t, id, false)
	if err != nil && ctx.Err() == nil && connectionLost(err) {
		// After a Postgres restart the pool still holds the connections it closed, and
		// hands out those used less than a second ago without a ping: one read fails
		// for each. Drop them all and read again, once (a read is safe to repeat).
		s.pool.Reset()
		r, err = readRow(ctx, s.pool, t, id, false)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return Credential{}, authNotFound()
	}
	if err != nil {
		return Credential{}, fmt.Errorf("read authorization: %w", err)
	}
	if err := s.usableRow(ctx, r); err != nil {
		return Credential{}, err
	}
	cur, err := s.credential(r)
	if err != nil {
		return Credential{}, err
	}
	now := s.now()
	if s.usable(cur, r.updatedAt, rejected, now) {
		if !rejected.IsZero() {
			s.metrics.refresh(resultSkipped) // someone already replaced the rejected token
		}
		s.remember(snap, t, r, cur)
		return cur, nil
	}
	if until, ok := s.backingOff(r, now); ok {
		return s.whileBackingOff(r, cur, rejected, now, until)
	}
	return s.refreshLocked(ctx, t, r.version, id, rejected)
}

// backingOff returns the end of r's backoff after a failed refresh: this process's, or
// the one a replica recorded in the row.
func (s *Store) backingOff(r *row, now time.Time) (time.Time, bool) {
	until, ok := s.cache.backingOff(r.id, now)
	if b := r.backoffUntil; b != nil && now.Before(*b) && (!ok || b.After(until)) {
		until, ok = *b, true
	}
	return until, ok
}

// whileBackingOff answers without calling the token endpoint: the current token while
// it works at all, else an error that says when the next attempt is. It caches nothing:
// cur is due for refresh (else no refresh would have been tried), and the cache serves
// no token past that.
func (s *Store) whileBackingOff(r *row, cur Credential, rejected secrets.Value, now, until time.Time) (Credential, error) {
	s.cache.fail(r.id, until)
	if stillValid(cur, rejected, now) {
		return cur, nil
	}
	return Credential{}, fmt.Errorf("refresh token: %w (it failed moments ago; next attempt after %s)", outcomes.ErrTokenUnavailable, until.UTC().Format(time.RFC3339Nano))
}

// refreshLocked refreshes under the row lock: take the lock (bounded by LockTimeout),
// skip if another replica changed the row since we read it, else call the token
// endpoint (bounded by RefreshTimeout) and store the new pair before anyone uses it.
func (s *Store) refreshLocked(ctx context.Context, t tenant.ID, seenVersion int64, id string, rejected secrets.Value) (Credential, error) {
	log := s.logger.With(slog.String("authorizationId", id), slog.String("tenant", string(t)))
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Credential{}, fmt.Errorf("refresh token: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, setRefreshTimeouts, strconv.FormatInt(s.lockTimeout.Milliseconds(), 10)+"ms", (s.refreshTimeout + storeTimeout).Milliseconds()); err != nil {
		return Credential{}, fmt.Errorf("refresh token: set lock timeout: %w", err)
	}
	snap := s.cache.snapshot()
	r, err := readRow(ctx, tx, t, id, true)
	if errors.Is(err, pgx.ErrNoRows) {
		return Credential{}, authNotFound()
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "55P03" { // lock_not_available
		return Credential{}, errors.New("refresh token: another replica holds the authorization's refresh lock past the lock timeout")
	}
	if err != nil {
		return Credential{}, fmt.Errorf("refresh token: lock authorization: %w", err)
	}
	if err := s.usableRow(ctx, r); err != nil {
		return Credential{}, err
	}
	cur, err := s.credential(r)
	if err != nil {
		return Credential{}, err
	}
	now := s.now()
	if r.version != seenVersion && s.usable(cur, r.updatedAt, rejected, now) {
		// Another replica (or caller) refreshed while we waited for the lock.
		if err := tx.Commit(ctx); err != nil {
			return Credential{}, fmt.Errorf("refresh token: %w", err)
		}
		s.metrics.refresh(resultSkipped)
		s.remember(snap, t, r, cur)
		return cur, nil
	}
	if until, ok := s.backingOff(r, now); ok {
		// The endpoint failed for whoever held the lock before us, here or on another
		// replica: calling it again now would hammer it.
		return s.whileBackingOff(r, cur, rejected, now, until)
	}
	o, err := s.openRow(r)
	if err != nil {
		return Credential{}, err
	}
	if rt, ok := s.unstored.get(id, r.version); ok {
		// This process refreshed the row at this version and could not store what the
		// provider answered: the stored refresh token is spent, the one it got is not.
		o.refreshToken = rt
	}

	var got tokens
	switch r.kind {
	case KindClientCredentials:
		got, err = s.fetchClientCredentials(ctx, r.baseURL, r.engageTenantID, o.tenantSecret)
	default:
		got, err = s.refreshWebex(ctx, o.refreshToken)
	}
	pe, _ := errors.AsType[*providerError](err)
	if pe != nil && pe.finalFor(r.kind) {
		return Credential{}, s.markNeedsReauthorization(ctx, tx, log, r, pe)
	}
	if err != nil {
		s.metrics.refresh(resultError)
		until := s.now().Add(s.backoff)
		s.cache.fail(id, until)
		// Every replica backs off, not only this one. Best effort: should Postgres refuse
		// the write, this process backs off all the same.
		_, uerr := tx.Exec(ctx, "update authorizations set refresh_backoff_until = $2 where id = $1", r.id, until)
		if uerr == nil {
			uerr = tx.Commit(ctx)
		}
		if uerr != nil {
			log.DebugContext(ctx, "could not record the refresh backoff", slog.String("error", uerr.Error()))
		}
		if pe != nil && pe.clientRefused() {
			// Every login refreshes through the same client: the operator must act.
			log.ErrorContext(ctx, "the Webex token endpoint refused this service's client; check WEBEX_CLIENT_ID and WEBEX_CLIENT_SECRET (the authorization keeps its refresh token)",
				slog.String("error", err.Error()), slog.String("backoff", s.backoff.String()))
		} else {
			log.WarnContext(ctx, "token refresh failed; backing off", slog.String("error", err.Error()), slog.String("backoff", s.backoff.String()))
		}
		if stillValid(cur, rejected, s.now()) {
			return cur, nil // still good for a while: better than failing the execution
		}
		return Credential{}, fmt.Errorf("refresh token: %w: %w", outcomes.ErrTokenUnavailable, err)
	}

	o.accessToken = got.access
	if !got.refresh.IsZero() {
		o.refreshToken = got.refresh // rotated; otherwise the old one stays valid
	}
	sl, err := s.sealRow(r.id, o)
	if err != nil {
		return Credential{}, err
	}
	var expiry *time.Time
	if !got.expiry.IsZero() {
		expiry = &got.expiry
	}
	// The provider has answered and may have rotated the refresh token: the write gets
	// a deadline of its own, so steps before it that used up the refresh's (a slow pool,
	// a long lock wait) cannot make us lose the only refresh token that still works.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	var (
		version int64
		stored  time.Time
	)
	err = tx.QueryRow(sctx, storeRefreshed, r.id, sl.accessToken, sl.refreshToken, sl.tenantSecret, sl.keyID, expiry, r.version).Scan(&version, &stored)
	if err == nil {
		err = tx.Commit(sctx)
	}
	if err != nil && sctx.Err() == nil {
		// Postgres restarted or failed over after the provider answered, or the write was
		// refused otherwise (canceled by pg_cancel_backend, a statement_timeout): the
		// transaction is over, the lock with it, and the row still holds a refresh token
		// the provider may have rotated away. Write the pair again on a new connection,
		// unless the row changed meanwhile (a refusal that lasts fails that write too, at
		// once). The dead one goes back to the pool first: with every connection held so
		// (refreshes that lost theirs at once, or a pool of one), the write would wait
		// for a connection until its time ran out.
		_ = tx.Rollback(sctx)
		version, stored, err = s.storeAgain(sctx, log, r, sl, expiry, connectionLost(err))
	}
	if err != nil {
		// The provider may have rotated the refresh token we failed to store. The pair is
		// not handed out; its refresh token is kept for this process's next refresh of
		// the row at this version (unstoredTokens). Should another replica refresh it
		// first, it replays the stored one: invalid_grant, and the authorization needs
		// re-authorization (docs/authorizations.md).
		s.metrics.refresh(resultError)
		if r.kind == KindWebexLogin {
			s.unstored.put(id, r.version, o.refreshToken)
		}
		log.ErrorContext(ctx, "token refreshed but not stored; its refresh token is kept in this replica's memory for its next refresh", slog.String("error", err.Error()))
		return Credential{}, fmt.Errorf("refresh token: store the new token: %w", err)
	}
	s.metrics.refresh(resultSuccess)
	s.unstored.forget(id)
	s.cache.recovered(id)
	r.version, r.updatedAt = version, stored
	c := Credential{AuthorizationID: r.id, BaseURL: r.baseURL, Domain: r.domain, AccessToken: got.access, ExpiresAt: got.expiry}
	s.remember(snap, t, r, c)
	log.DebugContext(ctx, "token refreshed", slog.String("kind", string(r.kind)))
	return c, nil
}

// unstoredTokens holds, per authorization, the refresh token a refresh of this process
// got from the provider and could not store (Postgres away for longer than the write's
// 5 s), with the row version it refreshed: the provider has rotated the stored refresh
// token away, so while the row still has that version, the next refresh here spends
// this one instead. A refresh that stores its pair, or finds the row at another version
// (re-authorized, marked for re-authorization, refreshed by another replica), forgets it.
type unstoredTokens struct {
	mu sync.Mutex
	m  map[string]unstoredToken
}

type unstoredToken struct {
	version int64
	refresh secrets.Value
}

// get returns id's unstored refresh token if it was got at version; one got at another
// version is forgotten.
func (u *unstoredTokens) get(id string, version int64) (secrets.Value, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	t, ok := u.m[id]
	if !ok {
		return secrets.Value{}, false
	}
	if t.version != version {
		delete(u.m, id)
		return secrets.Value{}, false
	}
	return t.refresh, true
}

func (u *unstoredTokens) put(id string, version int64, refresh secrets.Value) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil || len(u.m) >= maxCacheEntries {
		u.m = map[string]unstoredToken{}
	}
	u.m[id] = unstoredToken{version: version, refresh: refresh}
}

func (u *unstoredTokens) forget(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.m, id)
}

// setRefreshTimeouts bounds a refresh transaction's wait for the row lock ($1), and keeps
// Postgres from ending the transaction while it sits idle, the token endpoint answering:
// an idle_in_transaction_session_timeout shorter than that call would release the lock
// before the rotated pair is stored, and the replicas queued on the lock would refresh
// with the refresh token the provider has just rotated away (invalid_grant: the login is
// lost). It is raised to $2 milliseconds (the refresh timeout and the time the write
// gets) for this transaction only; never lowered, nor set where there is none.
const setRefreshTimeouts = `select set_config('lock_timeout', $1, true),
	set_config('idle_in_transaction_session_timeout', (case when v > 0 and v < $2 then $2 else v end)::text, true)
	from (select setting::bigint as v from pg_settings where name = 'idle_in_transaction_session_timeout') current`

// storeRefreshed writes a refreshed pair over the version the refresh locked ($7): under
// the lock it always matches; written again after the lock was lost, it matches only if
// nothing changed the row since (a re-authorization, a deletion, another refresh).
const storeRefreshed = `update authorizations set access_token = $2, refresh_token = $3, tenant_secret = $4,
	key_id = $5, token_expiry = $6, version = version + 1, updated_at = now(), refresh_backoff_until = null
	where id = $1 and version = $7 returning version, updated_at`

// storeAgain writes a refreshed pair whose first write failed (lost says it lost its
// connection), on new connections while they turn out lost and ctx lasts: Postgres may
// take a few seconds to come back. Any other failure ends it at once.
func (s *Store) storeAgain(ctx context.Context, log *slog.Logger, r *row, sl sealed, expiry *time.Time, lost bool) (int64, time.Time, error) {
	var (
		version int64
		stored  time.Time
	)
	wait := 50 * time.Millisecond
	for {
		if lost {
			// The pool hands out connections the restart closed without a ping (load).
			s.pool.Reset()
		}
		lost = true // the tries after this one follow a lost connection
		err := s.pool.QueryRow(ctx, storeRefreshed, r.id, sl.accessToken, sl.refreshToken, sl.tenantSecret, sl.keyID, expiry, r.version).Scan(&version, &stored)
		if err == nil {
			log.WarnContext(ctx, "token refresh stored on a new connection after the first write failed")
			return version, stored, nil
		}
		if errors.Is(err, pgx.ErrNoRows) {
			// The first write may have committed with only its answer lost: then the row
			// holds this pair (its sealed access token is unique), and it is stored.
			err = s.pool.QueryRow(ctx, "select version, updated_at from authorizations where id = $1 and access_token = $2", r.id, sl.accessToken).Scan(&version, &stored)
			if err == nil {
				return version, stored, nil
			}
			if errors.Is(err, pgx.ErrNoRows) {
				return 0, time.Time{}, errors.New("the authorization changed (or was deleted) while its refreshed token was being stored")
			}
		}
		if !connectionLost(err) {
			return 0, time.Time{}, err
		}
		select {
		case <-ctx.Done():
			return 0, time.Time{}, err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// markNeedsReauthorization records that the provider refused the grant for good: the
// status, an audit event and a notification to every replica, all in the locked
// transaction. The caller gets the authorization error, and no retry loop follows:
// every later call answers from the status without calling the provider. When the
// locked transaction's connection is lost first (Postgres restarted, or ended the
// transaction left idle while the provider answered), the refusal is recorded again on
// a new connection, unless the row changed meanwhile: unrecorded, every call would ask
// the provider again.
func (s *Store) markNeedsReauthorization(ctx context.Context, tx pgx.Tx, log *slog.Logger, r *row, pe *providerError) error {
	reason := "the provider refused the credentials"
	if pe.code != "" {
		reason += " (" + pe.code + ")"
	}
	reason += "; re-authorize it"
	record := func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `update authorizations set status = 'needs_reauthorization', status_reason = $2,
			access_token = null, refresh_token = null, token_expiry = null, version = version + 1, updated_at = now()
			where id = $1 and version = $3`, r.id, reason, r.version)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return errRowChanged
		}
		if err := audit(ctx, tx, r.tenant, r.id, "refresh_failed", ActorSystem, map[string]any{"error": pe.code, "httpStatus": pe.status, "newStatus": StatusNeedsReauthorization}); err != nil {
			return err
		}
		return notify(ctx, tx, r.id)
	}
	err := record(ctx, tx)
	if err == nil {
		err = tx.Commit(ctx)
	}
	if err != nil && connectionLost(err) {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		defer cancel()
		_ = tx.Rollback(sctx) // the dead connection back to the pool first, as for a new pair
		err = s.recordAgain(sctx, r, record)
	}
	if err != nil {
		s.metrics.refresh(resultError)
		return fmt.Errorf("refresh token: record needs_reauthorization: %w", err)
	}
	s.metrics.refresh(resultInvalidGrant)
	s.cache.invalidate(r.id)
	log.WarnContext(ctx, "provider refused the refresh; authorization needs re-authorization",
		slog.String("error", pe.Error()), slog.String("kind", string(r.kind)))
	return authNeedsReauthorization()
}

// errRowChanged: a write made against the version a refresh read found another.
var errRowChanged = errors.New("the authorization changed (or was deleted) meanwhile")

// recordAgain runs record in a transaction on new connections until it commits, finds
// the row changed, fails otherwise than by a lost connection, or ctx ends. A row changed
// only by the first attempt's own commit (its answer lost) is recorded.
func (s *Store) recordAgain(ctx context.Context, r *row, record func(context.Context, pgx.Tx) error) error {
	wait := 50 * time.Millisecond
	for {
		s.pool.Reset() // it hands out connections the restart closed without a ping (load)
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return record(ctx, tx) })
		if errors.Is(err, errRowChanged) {
			var status string
			serr := s.pool.QueryRow(ctx, "select status from authorizations where id = $1 and version = $2", r.id, r.version+1).Scan(&status)
			if serr == nil && Status(status) == StatusNeedsReauthorization {
				return nil // the first attempt committed
			}
			return err
		}
		if err == nil || !connectionLost(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// connectionLost reports whether err says the connection failed rather than the query
// (database.ConnectionLost).
func connectionLost(err error) bool { return database.ConnectionLost(err) }
