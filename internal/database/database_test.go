package database_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/migrations"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestMigrationsAppliedConcurrentlyByTwoReplicasBothSucceed(t *testing.T) {
	url := dbtest.NewEmptyURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, errs[i] = database.Migrate(ctx, url)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migration run %d: %v", i, err)
		}
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := database.CheckSchema(ctx, pool); err != nil {
		t.Fatalf("after migrating: %v", err)
	}
	// Applying again is a no-op.
	from, to, err := database.Migrate(ctx, url)
	if err != nil || from != to || to != database.Latest() {
		t.Fatalf("second migrate: from %d to %d, err %v; want both %d", from, to, err, database.Latest())
	}
}

func TestCheckSchemaReportsABehindSchema(t *testing.T) {
	url := dbtest.NewEmptyURL(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if v, err := database.SchemaVersion(ctx, pool); err != nil || v != 0 {
		t.Fatalf("empty database: version %d, err %v", v, err)
	}
	if err := database.CheckSchema(ctx, pool); !errors.Is(err, database.ErrSchemaBehind) {
		t.Fatalf("empty database: got %v, want ErrSchemaBehind", err)
	}
}

// A rollback leaves the schema where the newer release put it (docs/operations.md,
// Migrating): the older binary must start on it, so only a schema behind is refused.
func TestCheckSchemaAcceptsASchemaAheadOfTheBuild(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbtest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := database.CheckSchema(ctx, pool); err != nil {
		t.Fatalf("current schema: %v", err)
	}
	if _, err := pool.Exec(ctx, "update "+database.VersionTable+" set version = $1", database.Latest()+1); err != nil {
		t.Fatal(err)
	}
	if err := database.CheckSchema(ctx, pool); err != nil {
		t.Fatalf("a schema one version ahead (a rolled-back release): %v, want nil", err)
	}
}

func TestMigrationsHaveADownPartThatUndoesThem(t *testing.T) {
	names, err := database.MigrationNames()
	if err != nil || len(names) == 0 {
		t.Fatalf("migrations: %v %v", names, err)
	}
	if database.Latest() != int32(len(names)) {
		t.Fatalf("Latest %d, files %d", database.Latest(), len(names))
	}
}

func TestPoolStatsAreExportedAsMetrics(t *testing.T) {
	counter := &database.QueryCounter{}
	pool, err := database.Open(context.Background(), dbtest.NewURL(t), counter)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(context.Background(), "select 1"); err != nil {
		t.Fatal(err)
	}
	c := database.NewPoolCollector(pool, counter)
	got := collect(t, c)
	for _, name := range []string{"noderuntime_db_pool_total_connections", "noderuntime_db_pool_max_connections", "noderuntime_db_pool_acquired_connections", "noderuntime_db_pool_idle_connections", "noderuntime_db_pool_acquire_wait_seconds_total"} {
		if _, ok := got[name]; !ok {
			t.Errorf("metric %s missing; have %v", name, got)
		}
	}
	if got[`noderuntime_db_queries_total{origin="service"}`] != 1 || got[`noderuntime_db_queries_total{origin="scrape"}`] != 0 {
		t.Errorf("queries %v after one query of the service, want service 1, scrape 0", got)
	}
	waited := got["noderuntime_db_pool_acquire_wait_seconds_total"] // the first query opened a connection
	if _, err := pool.Exec(database.ForScrape(context.Background()), "select 1"); err != nil {
		t.Fatal(err)
	}
	got = collect(t, c)
	if got[`noderuntime_db_queries_total{origin="service"}`] != 1 || got[`noderuntime_db_queries_total{origin="scrape"}`] != 1 || counter.Count() != 2 {
		t.Errorf("queries %v (Count %d) after one more for a scrape, want service 1, scrape 1, Count 2", got, counter.Count())
	}
	// The second query found the first one's connection idle: it did not wait.
	if got["noderuntime_db_pool_acquire_wait_seconds_total"] != waited {
		t.Errorf("acquire waits went from %v s to %v s for a query that found a connection idle", waited, got["noderuntime_db_pool_acquire_wait_seconds_total"])
	}
	if got["noderuntime_db_pool_total_connections"] < 1 {
		t.Errorf("total connections %v after a ping, want >= 1", got["noderuntime_db_pool_total_connections"])
	}
}

// The pool's per-connection statement caches are the service's size, unless the URL
// sets its own. Open does not connect, so no server is needed.
func TestOpenSizesTheStatementCaches(t *testing.T) {
	for _, c := range []struct {
		url              string
		statement, descr int
	}{
		{"postgres://u@127.0.0.1:1/db", database.CacheCapacity, database.CacheCapacity},
		{"postgres://u@127.0.0.1:1/db?statement_cache_capacity=7&description_cache_capacity=9", 7, 9},
	} {
		pool, err := database.Open(context.Background(), c.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		cc := pool.Config().ConnConfig
		pool.Close()
		if cc.StatementCacheCapacity != c.statement || cc.DescriptionCacheCapacity != c.descr {
			t.Errorf("%s: caches %d and %d, want %d and %d", c.url, cc.StatementCacheCapacity, cc.DescriptionCacheCapacity, c.statement, c.descr)
		}
	}
}

// A connection attempt gives up after 5 seconds (a Postgres that does not answer must
// not hang the pool's callers), unless the URL sets its own connect_timeout.
func TestOpenBoundsTheConnectTimeoutUnlessTheURLSetsIt(t *testing.T) {
	for url, want := range map[string]time.Duration{
		"postgres://u@127.0.0.1:1/db":                   5 * time.Second,
		"postgres://u@127.0.0.1:1/db?connect_timeout=2": 2 * time.Second,
	} {
		pool, err := database.Open(context.Background(), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := pool.Config().ConnConfig.ConnectTimeout
		pool.Close()
		if got != want {
			t.Errorf("%s: connect timeout %v, want %v", url, got, want)
		}
	}
}

// The deployment has one DATABASE_URL for the pods and the migration Job, and
// docs/operations.md sizes the pool in it (pool_max_conns). Migrate connects without a
// pool, so the pool's settings must not reach Postgres as run-time parameters
// ("unrecognized configuration parameter"), or the migration Job fails on the URL the
// pods start with.
func TestMigrateAndSchemaChecksAcceptTheURLThePodsUse(t *testing.T) {
	u, err := url.Parse(dbtest.NewEmptyURL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "10")
	q.Set("pool_max_conn_lifetime", "1h")
	q.Set("statement_cache_capacity", "32")
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	from, to, err := database.Migrate(ctx, u.String())
	if err != nil {
		t.Fatalf("migrate with the pods' DATABASE_URL: %v", err)
	}
	if from != 0 || to != database.Latest() {
		t.Fatalf("migrated from %d to %d, want 0 to %d", from, to, database.Latest())
	}
	pool, err := database.Open(ctx, u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := database.CheckSchema(ctx, pool); err != nil {
		t.Fatalf("after migrating: %v", err)
	}
}

// A migration that alters a table waits for a lock behind every open transaction on it,
// and the service's reads of that table queue behind the migration. Its lock waits are
// bounded: a transaction that stays open does not stall the reads for as long as it
// lasts, and the migration is applied once the transaction ends.
func TestAMigrationWaitingForALockDoesNotStallReadsBehindIt(t *testing.T) {
	url := dbtest.NewEmptyURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	migratedTo(ctx, t, url, 1) // 002 alters authorizations
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	// A transaction that read authorizations and stays open (a refresh waiting on the
	// token endpoint holds one).
	open, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Rollback(context.Background())
	if _, err := open.Exec(ctx, "select count(*) from authorizations"); err != nil {
		t.Fatal(err)
	}
	migrated := make(chan error, 1)
	go func() {
		from, to, err := database.Migrate(ctx, url)
		if err == nil && (from != 1 || to != database.Latest()) {
			err = fmt.Errorf("migrated from %d to %d, want 1 to %d", from, to, database.Latest())
		}
		migrated <- err
	}()
	waitingForLock := func() bool {
		var n int
		err := pool.QueryRow(ctx, `select count(*) from pg_stat_activity
			where datname = current_database() and wait_event_type = 'Lock' and query ilike '%alter table authorizations%'`).Scan(&n)
		return err == nil && n > 0
	}
	for !waitingForLock() {
		select {
		case err := <-migrated:
			t.Fatalf("the migration ended (%v) while a transaction on its table was open", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	// The service's read, queued behind the migration's lock request.
	readCtx, cancelRead := context.WithTimeout(ctx, 15*time.Second)
	defer cancelRead()
	start := time.Now()
	if _, err := pool.Exec(readCtx, "select count(*) from authorizations"); err != nil {
		t.Fatalf("a read behind the waiting migration: %v after %s", err, time.Since(start).Round(time.Millisecond))
	}
	if err := open.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-migrated; err != nil {
		t.Fatalf("the migration, once the transaction ended: %v", err)
	}
}

// The bound on lock waits is each file's, not the session's: a run that waits for
// another to finish (tern's advisory lock: replicas starting with --migrate take
// turns) waits as long as that one takes, rather than giving up after a few minutes of
// retries.
func TestAMigrationWaitsItsTurnPastTheLockTimeout(t *testing.T) {
	url := dbtest.NewEmptyURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	other := connect(ctx, t, url)
	const ternLock = 9628173550095224 // tern's advisory lock (migrate.lockNum)
	if _, err := other.Exec(ctx, "select pg_advisory_lock($1)", int64(ternLock)); err != nil {
		t.Fatal(err)
	}
	migrated := make(chan error, 1)
	go func() { _, _, err := database.Migrate(ctx, url); migrated <- err }()
	waiter := func() int32 { return lockWaiter(ctx, t, other, "wait_event = 'advisory'") }
	var pid int32
	for pid = waiter(); pid == 0; pid = waiter() {
		time.Sleep(10 * time.Millisecond)
	}
	// Longer than the lock timeout: the same session is still waiting its turn.
	for until := time.Now().Add(3 * time.Second); time.Now().Before(until); time.Sleep(100 * time.Millisecond) {
		if got := waiter(); got != pid {
			t.Fatalf("the waiting session changed from %d to %d: the wait for the other run was cut short", pid, got)
		}
	}
	if _, err := other.Exec(ctx, "select pg_advisory_unlock($1)", int64(ternLock)); err != nil {
		t.Fatal(err)
	}
	if err := <-migrated; err != nil {
		t.Fatalf("the run that waited its turn: %v", err)
	}
}

// Only a lock wait that ran out (55P03) is tried again: a migration that fails for any
// other reason (here a table in its way, 42P07) fails the run at once, rather than
// after minutes of retries that cannot help.
func TestAMigrationThatFailsOtherwiseIsNotTriedAgain(t *testing.T) {
	url := dbtest.NewEmptyURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := connect(ctx, t, url)
	if _, err := conn.Exec(ctx, "create table authorizations (x int)"); err != nil {
		t.Fatal(err)
	}
	_, _, err := database.Migrate(ctx, url)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P07" {
		t.Fatalf("migrate: %v, want the duplicate table error", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the migration was tried again until the context ended")
	}
}

// The pool's gauges say what the connections are doing, as docs/operations.md reads
// them: one held is acquired, not idle; released, it is idle. Only an acquire that
// found no idle connection counts as one that waited.
func TestThePoolMetricsTellConnectionsInUseFromIdleOnesAndCountOnlyAcquiresThatWaited(t *testing.T) {
	ctx := t.Context()
	pool, err := database.Open(ctx, dbtest.NewURL(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	c := database.NewPoolCollector(pool, nil)
	conn, err := pool.Acquire(ctx) // the pool is empty: this one waits for a connection to open
	if err != nil {
		t.Fatal(err)
	}
	got := collect(t, c)
	if got["noderuntime_db_pool_acquired_connections"] != 1 || got["noderuntime_db_pool_idle_connections"] != 0 ||
		got["noderuntime_db_pool_total_connections"] != 1 || got["noderuntime_db_pool_acquire_waits_total"] != 1 {
		t.Errorf("one connection held: %v, want acquired 1, idle 0, total 1, waits 1", got)
	}
	conn.Release()
	conn, err = pool.Acquire(ctx) // finds the released one idle
	if err != nil {
		t.Fatal(err)
	}
	conn.Release()
	got = collect(t, c)
	if got["noderuntime_db_pool_acquired_connections"] != 0 || got["noderuntime_db_pool_idle_connections"] != 1 ||
		got["noderuntime_db_pool_acquire_waits_total"] != 1 {
		t.Errorf("released, then acquired from idle and released: %v, want acquired 0, idle 1, waits still 1", got)
	}
}

// A run tried again after a lock wait ran out still reports the version it began at
// (`migrate up` prints it as "was"), not the one the files applied before the retry left.
func TestAMigrationTriedAgainReportsTheVersionItBeganAt(t *testing.T) {
	url := dbtest.NewEmptyURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := migratedTo(ctx, t, url, 1) // 002 applies; 003 alters idempotency_keys
	open, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Rollback(context.Background())
	if _, err := open.Exec(ctx, "select count(*) from idempotency_keys"); err != nil {
		t.Fatal(err)
	}
	migrated := migrateInBackground(ctx, url)
	// Outside the transaction, which sees pg_stat_activity as it first read it.
	watch := connect(ctx, t, url)
	waiter := func() int32 { return lockWaiter(ctx, t, watch, "query ilike '%alter table idempotency_keys%'") }
	first := waiter()
	for ; first == 0; first = waiter() {
		time.Sleep(10 * time.Millisecond)
	}
	for pid := waiter(); pid == 0 || pid == first; pid = waiter() { // a second attempt, after 002 was applied
		time.Sleep(10 * time.Millisecond)
	}
	if err := open.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-migrated; r.err != nil || r.from != 1 || r.to != database.Latest() {
		t.Fatalf("migrated from %d to %d (%v), want from 1 to %d", r.from, r.to, r.err, database.Latest())
	}
}

// connect opens a connection of the test's own to url, closed when the test ends.
func connect(ctx context.Context, t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// migratedTo applies the migrations up to version to the empty database at url, on a
// connection it returns.
func migratedTo(ctx context.Context, t *testing.T, url string, version int32) *pgx.Conn {
	t.Helper()
	conn := connect(ctx, t, url)
	m, err := migrate.NewMigrator(ctx, conn, database.VersionTable)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, version); err != nil {
		t.Fatal(err)
	}
	return conn
}

// lockWaiter returns the session of this database that waits on a lock and matches cond
// (SQL over pg_stat_activity), or 0 while none does.
func lockWaiter(ctx context.Context, t *testing.T, conn *pgx.Conn, cond string) int32 {
	t.Helper()
	var pid int32
	if err := conn.QueryRow(ctx, `select coalesce(max(pid), 0) from pg_stat_activity
		where datname = current_database() and wait_event_type = 'Lock' and `+cond).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// A run that waited its turn behind another run (the Job and `serve --migrate`, two Jobs
// started together) reports the version it found once it held the lock, not the one it
// read before: the other run applied everything meanwhile, and "schema at version N
// (was 0)" would say this one did.
func TestAMigrationThatWaitedForAnotherRunReportsTheVersionThatRunLeft(t *testing.T) {
	url := dbtest.NewEmptyURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	migratedTo(ctx, t, url, 0) // the version table, at 0
	// Hold the run at its first read of the version, then take the migration lock ahead
	// of it: it reads 0, then waits its turn behind another run.
	table := connect(ctx, t, url)
	held, err := table.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Rollback(context.Background())
	if _, err := held.Exec(ctx, "lock table "+database.VersionTable+" in access exclusive mode"); err != nil {
		t.Fatal(err)
	}
	migrated := migrateInBackground(ctx, url)
	other := connect(ctx, t, url)
	for lockWaiter(ctx, t, other, "wait_event = 'relation' and query ilike 'select version from%'") == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	const ternLock = 9628173550095224 // tern's advisory lock (migrate.lockNum)
	if _, err := other.Exec(ctx, "select pg_advisory_lock($1)", int64(ternLock)); err != nil {
		t.Fatal(err)
	}
	if err := held.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for lockWaiter(ctx, t, other, "wait_event = 'advisory'") == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	// The other run applies every file (its session holds the lock already: advisory
	// locks are reentrant), then lets the waiting run go.
	m, err := migrate.NewMigrator(ctx, other, database.VersionTable)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		t.Fatal(err)
	}
	if err := m.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(ctx, "select pg_advisory_unlock($1)", int64(ternLock)); err != nil {
		t.Fatal(err)
	}
	if r := <-migrated; r.err != nil || r.from != database.Latest() || r.to != database.Latest() {
		t.Fatalf("the run that waited: from %d to %d (%v), want from %d to %d: it applied nothing",
			r.from, r.to, r.err, database.Latest(), database.Latest())
	}
}

// The previous release's `migrate up` (its Job, applied again on a rollback, or its
// `serve --migrate`) on the newer, backwards-compatible schema has nothing to apply and
// succeeds, as `serve` accepts that schema: it must not fail the rollback.
func TestMigrateUpOnASchemaAheadOfTheBuildAppliesNothingAndSucceeds(t *testing.T) {
	url := dbtest.NewURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := connect(ctx, t, url)
	ahead := database.Latest() + 1
	if _, err := conn.Exec(ctx, "update "+database.VersionTable+" set version = $1", ahead); err != nil {
		t.Fatal(err)
	}
	from, to, err := database.Migrate(ctx, url)
	if err != nil || from != ahead || to != ahead {
		t.Fatalf("migrate on a schema at %d, this build at %d: from %d to %d, %v; want from %d to %d, no error",
			ahead, database.Latest(), from, to, err, ahead, ahead)
	}
	var v int32
	if err := conn.QueryRow(ctx, "select version from "+database.VersionTable).Scan(&v); err != nil || v != ahead {
		t.Fatalf("version after: %d (%v), want %d unchanged", v, err, ahead)
	}
}

// migrateResult is what a Migrate run returned.
type migrateResult struct {
	from, to int32
	err      error
}

// migrateInBackground runs database.Migrate on url and sends what it returned.
func migrateInBackground(ctx context.Context, url string) <-chan migrateResult {
	out := make(chan migrateResult, 1)
	go func() { from, to, err := database.Migrate(ctx, url); out <- migrateResult{from, to, err} }()
	return out
}
