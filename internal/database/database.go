// Package database owns the Postgres pool, the schema migrations and the readiness of
// the schema. Tables belong to the packages that use them; this package knows none.
package database

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"github.com/noderuntime/noderuntime/migrations"
)

// CacheCapacity is each connection's statement and description cache size, unless the
// URL sets its own (statement_cache_capacity, description_cache_capacity).
const CacheCapacity = 64

// pgxDefaultCacheCapacity is what pgx.ParseConfig gives either cache.
const pgxDefaultCacheCapacity = 512

// VersionTable is where tern records the applied schema version.
const VersionTable = "public.schema_version"

// Open connects a pool. It does not wait for the server: a service must start (and
// report not ready) while Postgres is down. counter, when not nil, counts every query
// the pool sends (the performance target is zero per execution in steady state).
func Open(ctx context.Context, url string, counter *QueryCounter) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("database: DATABASE_URL does not parse") // never echo the URL: it may hold a password
	}
	if counter != nil {
		cfg.ConnConfig.Tracer = counter
	}
	// The service runs a few dozen distinct statements. pgx's default caches hold 512
	// each, their maps allocated up front on every connection: pointer-holding memory
	// that every garbage collection marks (docs/performance.md). A capacity the URL
	// sets (other than pgx's 512) is kept.
	if cfg.ConnConfig.StatementCacheCapacity == pgxDefaultCacheCapacity {
		cfg.ConnConfig.StatementCacheCapacity = CacheCapacity
	}
	if cfg.ConnConfig.DescriptionCacheCapacity == pgxDefaultCacheCapacity {
		cfg.ConnConfig.DescriptionCacheCapacity = CacheCapacity
	}
	cfg.MaxConnIdleTime = 5 * time.Minute
	cfg.HealthCheckPeriod = 15 * time.Second
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database: open pool: %w", err)
	}
	return pool, nil
}

// QueryCounter counts the queries a pool sends: those of a metrics scrape (their
// context marked by ForScrape) apart from the service's own, so that "no query per
// execution" can be read off the service's count while Prometheus scrapes.
type QueryCounter struct{ service, scrape atomic.Uint64 }

type scrapeKey struct{}

// ForScrape marks ctx as a metrics scrape's: the queries sent on it count under
// origin="scrape".
func ForScrape(ctx context.Context) context.Context {
	return context.WithValue(ctx, scrapeKey{}, true)
}

// TraceQueryStart implements pgx.QueryTracer.
func (c *QueryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	if ctx.Value(scrapeKey{}) != nil {
		c.scrape.Add(1)
	} else {
		c.service.Add(1)
	}
	return ctx
}

// TraceQueryEnd implements pgx.QueryTracer.
func (c *QueryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Count is the number of queries sent so far, of every origin.
func (c *QueryCounter) Count() uint64 { return c.service.Load() + c.scrape.Load() }

// migrationLockTimeout bounds each wait of a migration for a lock. A migration that
// alters a table queues for an exclusive lock behind every open transaction on it, and
// every read of that table queues behind the migration: unbounded, one long
// transaction would stall the running service's reads for as long as it lasts.
const migrationLockTimeout = 2 * time.Second

// migrationRetries is how long Migrate keeps trying again after a lock wait ran out.
const migrationRetries = 5 * time.Minute

// Migrate applies every pending migration. Tern holds a Postgres advisory lock for the
// whole run and applies each file in its own transaction, so replicas that start at the
// same time take turns and the second finds nothing left to do. A lock the migration
// cannot get within migrationLockTimeout rolls its file back, and the run is tried again
// after a pause that lets the service's queries through.
func Migrate(ctx context.Context, url string) (from, to int32, err error) {
	giveUp := time.Now().Add(migrationRetries)
	pause := 250 * time.Millisecond
	for attempt := 0; ; attempt++ {
		var began int32
		began, to, err = migrateOnce(ctx, url)
		if attempt == 0 {
			from = began // a retry starts where the files applied before it left off
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "55P03" || time.Now().Add(pause).After(giveUp) { // lock_not_available
			return from, to, err
		}
		select {
		case <-ctx.Done():
			return from, to, err
		case <-time.After(pause):
		}
		pause = min(2*pause, 5*time.Second)
	}
}

func migrateOnce(ctx context.Context, url string) (from, to int32, err error) {
	// The URL is the service's, pool settings included (pool_max_conns, ...): parsed as
	// pgx.Connect parses it, those would reach Postgres as run-time parameters and be
	// refused. pgxpool's parser takes them out.
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return 0, 0, errors.New("database: DATABASE_URL does not parse") // never echo the URL: it may hold a password
	}
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		return 0, 0, fmt.Errorf("database: connect: %w", redact(err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return 0, 0, fmt.Errorf("database: migrator: %w", err)
	}
	// Each file's lock waits are bounded inside its own transaction, which tern has
	// begun when it calls OnStart: not the session, whose advisory lock (replicas taking
	// turns) must wait as long as another run takes.
	setLockTimeout := fmt.Sprintf("set local lock_timeout = %d", migrationLockTimeout.Milliseconds())
	// The version this run began at is the one before the first file it applies: the
	// version read before m.Migrate takes the lock may be older, when another run
	// (replicas, a Job) held the lock and applied the files meanwhile.
	var first int32
	m.OnStart = func(seq int32, _, _, _ string) {
		if first == 0 {
			first = seq
		}
		_, _ = conn.Exec(ctx, setLockTimeout)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		return 0, 0, fmt.Errorf("database: load migrations: %w", err)
	}
	if from, err = m.GetCurrentVersion(ctx); err != nil {
		return 0, 0, fmt.Errorf("database: current version: %w", err)
	}
	latest := int32(len(m.Migrations))
	if from >= latest {
		// At this build's version, or past it: a newer release migrated, and this one
		// (its Job on a rollback) runs on that backwards-compatible schema, as serve
		// does. tern would refuse a version it has no file for.
		return from, from, nil
	}
	err = m.Migrate(ctx)
	if first > 0 {
		from = first - 1
	}
	if _, ok := errors.AsType[migrate.BadVersionError](err); ok {
		// A newer release's run went past this build while this one waited its turn.
		if v, verr := m.GetCurrentVersion(ctx); verr == nil && v >= latest {
			return v, v, nil
		}
	}
	if err != nil {
		return from, 0, fmt.Errorf("database: migrate: %w", err)
	}
	if to, err = m.GetCurrentVersion(ctx); err != nil {
		return from, 0, fmt.Errorf("database: current version: %w", err)
	}
	if first == 0 {
		from = to // nothing applied: another run had, or there was nothing to do
	}
	return from, to, nil
}

// Latest is the schema version the embedded migrations lead to.
func Latest() int32 {
	names, err := migrate.FindMigrations(migrations.FS)
	if err != nil {
		panic(fmt.Sprintf("embedded migrations are broken: %v", err)) // caught by every test run
	}
	return int32(len(names))
}

// Querier is what SchemaVersion needs of a pool or connection.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// SchemaVersion reads the applied version without changing anything (0 when the
// database was never migrated).
func SchemaVersion(ctx context.Context, q Querier) (int32, error) {
	var v int32
	err := q.QueryRow(ctx, "select version from "+VersionTable).Scan(&v)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return 0, nil
	}
	return v, err
}

// ErrSchemaBehind means the database needs `noderuntime migrate up`.
var ErrSchemaBehind = errors.New("database schema is behind")

// CheckSchema returns ErrSchemaBehind (wrapped with the versions) unless the schema is
// at the version this binary was built for, or past it: after a rollback the older
// release runs on the newer, backwards-compatible schema.
func CheckSchema(ctx context.Context, q Querier) error {
	v, err := SchemaVersion(ctx, q)
	if err != nil {
		return fmt.Errorf("database: read schema version: %w", err)
	}
	if latest := Latest(); v < latest {
		return fmt.Errorf("%w: at version %d, this build needs %d (run `noderuntime migrate up`)", ErrSchemaBehind, v, latest)
	}
	return nil
}

// Refused reports whether Postgres itself refused the connection for a reason that no
// retry fixes: a wrong password or user (SQLSTATE class 28) or a database that does not
// exist (3D000). The error names the SQLSTATE.
func Refused(err error) bool {
	pgErr, ok := errors.AsType[*pgconn.PgError](err)
	return ok && (strings.HasPrefix(pgErr.Code, "28") || pgErr.Code == "3D000")
}

// ConnectionLost reports whether err says the connection failed rather than the
// statement, so that the statement may not have reached Postgres and is worth sending
// again on another connection: no SQL error at all (a broken or closed connection), one
// of the classes of a closed connection (08, connection exception; 57P, the server
// shutting down or restarting), or any other error that ended the session (severity
// FATAL), above all Postgres ending a transaction left idle past
// idle_in_transaction_session_timeout (25P03) or transaction_timeout (25P04). A refusal
// of a new connection (Refused) is a setting, not a loss; neither is a context ending.
func ConnectionLost(err error) bool {
	if err == nil || errors.Is(err, pgx.ErrNoRows) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), strings.HasPrefix(pgErr.Code, "57P"):
			return true
		case Refused(err):
			return false
		}
		return pgErr.Code == "25P03" || pgErr.Code == "25P04" || pgErr.Severity == "FATAL" || pgErr.Severity == "PANIC" ||
			pgErr.SeverityUnlocalized == "FATAL" || pgErr.SeverityUnlocalized == "PANIC"
	}
	return true
}

// Redact is err without the connection details (host, user, database) pgx puts in
// connect errors, for logs; the cause, such as a refusal's SQLSTATE, stays.
func Redact(err error) error { return redact(err) }

// redact drops the connection details pgx puts in connect errors, and writes the
// causes of its attempts (two with sslmode=prefer, one per address of a host), one a
// line, on one line: start-up stops with one line, and a log line has no breaks.
func redact(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		var causes []string
		for _, c := range strings.Split(ce.Unwrap().Error(), "\n") {
			if c = strings.TrimSpace(c); c != "" && !slices.Contains(causes, c) {
				causes = append(causes, c)
			}
		}
		return errors.New("cannot reach Postgres: " + strings.Join(causes, "; "))
	}
	return err
}

// MigrationNames lists the embedded migration files, in order.
func MigrationNames() ([]string, error) { return migrate.FindMigrations(migrations.FS) }

// WithDatabaseName returns connection string u pointing at database name instead.
func WithDatabaseName(u, name string) string {
	parsed, err := url.Parse(u)
	if err != nil || parsed.Scheme == "" {
		return u + " dbname=" + name // key=value form: a later key wins
	}
	parsed.Path = "/" + name
	return parsed.String()
}
