// Package dbtest gives tests a real, freshly migrated Postgres database of their own.
//
// Each test package migrates one template database per process (in TestMain, through
// Main) and each test clones it (CREATE DATABASE ... TEMPLATE), so tests start from the
// real schema without depending on anything an earlier test or run left behind. Every
// database is dropped when its test or package ends.
//
// The server comes from TEST_DATABASE_URL, else DATABASE_URL, else the local default
// postgres://postgres@127.0.0.1:5432/postgres. No server is a test failure, never a skip.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/pgtemp"
)

const prefix = "nrtest_"

var (
	mu       sync.Mutex
	template string
	runID    = fmt.Sprintf("%s%d_%s", prefix, os.Getpid(), randomHex(3))
	counter  int
)

// AdminURL is the server the databases are made on.
func AdminURL() string {
	for _, env := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if v := os.Getenv(env); v != "" {
			return v
		}
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// Main runs the package's tests and drops its template afterwards. Use it as
//
//	func TestMain(m *testing.M) { dbtest.Main(m) }
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run runs the package's tests, drops the template and returns the exit code, for a
// TestMain that has more to check after the tests before it exits.
func Run(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	if template != "" {
		_ = dropDatabase(context.Background(), template)
		template = ""
	}
	mu.Unlock()
	return code
}

// NewURL creates a fresh migrated database for t and returns its connection string.
// The database is dropped when t ends.
func NewURL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mu.Lock()
	defer mu.Unlock()
	if template == "" {
		if err := makeTemplate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	counter++
	name := fmt.Sprintf("%s_%d", runID, counter)
	if err := exec(ctx, "create database "+pgx.Identifier{name}.Sanitize()+" template "+pgx.Identifier{template}.Sanitize()); err != nil {
		t.Fatalf("dbtest: create database: %v", err)
	}
	t.Cleanup(func() {
		if err := dropDatabase(context.Background(), name); err != nil {
			t.Errorf("dbtest: drop %s: %v", name, err)
		}
	})
	return WithDatabase(AdminURL(), name)
}

// NewPool creates a fresh migrated database for t and a pool on it, closed when t ends.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), NewURL(t))
	if err != nil {
		t.Fatalf("dbtest: pool: %v", err)
	}
	t.Cleanup(pool.Close) // registered after the drop, so it runs before it
	return pool
}

// NewCluster starts a throwaway PostgreSQL cluster of t's own (internal/pgtemp), for
// tests that stop and restart the server, and returns it with the connection string of
// its migrated postgres database. The cluster is removed when t ends.
func NewCluster(t testing.TB) (*pgtemp.Cluster, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster, err := pgtemp.Start(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Close() })
	url := cluster.URL("postgres")
	if _, _, err := database.Migrate(ctx, url); err != nil {
		t.Fatalf("dbtest: migrate the cluster: %v", err)
	}
	return cluster, url
}

// NewEmptyURL creates a fresh database with no schema at all, for migration tests.
func NewEmptyURL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mu.Lock()
	counter++
	name := fmt.Sprintf("%s_%d", runID, counter)
	mu.Unlock()
	if err := exec(ctx, "create database "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("dbtest: create database: %v", err)
	}
	t.Cleanup(func() { _ = dropDatabase(context.Background(), name) })
	return WithDatabase(AdminURL(), name)
}

// WithDatabase returns connection string u pointing at database name.
func WithDatabase(u, name string) string { return database.WithDatabaseName(u, name) }

func makeTemplate(ctx context.Context) error {
	dropAbandoned(ctx)
	name := runID + "_tmpl"
	if err := exec(ctx, "create database "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("dbtest: %v", err)
	}
	if _, _, err := database.Migrate(ctx, WithDatabase(AdminURL(), name)); err != nil {
		_ = dropDatabase(ctx, name)
		return fmt.Errorf("dbtest: migrate template: %v", err)
	}
	template = name
	return nil
}

func exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return fmt.Errorf("no PostgreSQL reachable for tests (%v); start the local one with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` or set TEST_DATABASE_URL", oneLine(err))
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func dropDatabase(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return exec(ctx, "drop database if exists "+pgx.Identifier{name}.Sanitize()+" with (force)")
}

// dropAbandoned removes databases left by test processes that died before cleaning up.
func dropAbandoned(ctx context.Context) {
	conn, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "select datname from pg_database where datname like $1", prefix+"%")
	if err != nil {
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(n, prefix), "_")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			_, _ = conn.Exec(ctx, "drop database if exists "+pgx.Identifier{n}.Sanitize()+" with (force)")
		}
	}
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
