package database_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
)

// A connection string that does not parse is never echoed, not even the part of a
// password pgx's own message leaves unmasked (one with an '@' in it): the error says
// only that DATABASE_URL does not parse.
func TestOpenAndMigrateNeverEchoAConnectionStringThatDoesNotParse(t *testing.T) {
	const bad = "postgres://u:Sup3r@Secret@127.0.0.1:5432/db?sslmode=bogus"
	_, openErr := database.Open(t.Context(), bad, nil)
	_, _, migrateErr := database.Migrate(t.Context(), bad)
	for name, err := range map[string]error{"Open": openErr, "Migrate": migrateErr} {
		if err == nil || !strings.Contains(err.Error(), "DATABASE_URL does not parse") ||
			strings.Contains(err.Error(), "Sup3r") || strings.Contains(err.Error(), "Secret") {
			t.Errorf("%s: %v, want that DATABASE_URL does not parse and no part of the password", name, err)
		}
	}
}

// A schema one migration behind the build is as behind as an empty one: the build's
// queries need the last migration too.
func TestASchemaOneVersionBehindIsReported(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbtest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "update "+database.VersionTable+" set version = $1", database.Latest()-1); err != nil {
		t.Fatal(err)
	}
	if err := database.CheckSchema(ctx, pool); !errors.Is(err, database.ErrSchemaBehind) {
		t.Fatalf("a schema one version behind: got %v, want ErrSchemaBehind", err)
	}
}

// Only a missing version table is version 0 (never migrated): a version table that
// cannot be read is an error, not a database to migrate from the start.
func TestAVersionTableThatCannotBeReadIsAnErrorNotVersionZero(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbtest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "alter table "+database.VersionTable+" rename column version to v"); err != nil {
		t.Fatal(err)
	}
	if v, err := database.SchemaVersion(ctx, pool); err == nil {
		t.Fatalf("version %d and no error from a version table without its column", v)
	}
}

// A database that does not exist, or a user the server does not know, is a refusal no
// retry fixes; a query's own error (division by zero, SQLSTATE 22012) is not one.
func TestAMissingDatabaseOrUnknownUserIsRefusedAndAQueryErrorIsNot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := dbtest.AdminURL()
	unknownUser, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	unknownUser.User = url.UserPassword("no_such_user_x", "s3cret-pw")
	for name, u := range map[string]string{
		"a missing database": dbtest.WithDatabase(admin, "no_such_database_x"),
		"an unknown user":    unknownUser.String(),
	} {
		conn, err := pgx.Connect(ctx, u)
		if err == nil {
			conn.Close(ctx)
			t.Fatalf("%s: connected", name)
		}
		if !database.Refused(err) {
			t.Errorf("%s: %v is not a refusal", name, err)
		}
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, "select 1/0").Scan(&n)
	if err == nil || database.Refused(err) {
		t.Fatalf("a division by zero: %v, refused %v", err, database.Refused(err))
	}
}

// A connect error, as Migrate and the logs give it, is one line without the connection
// details pgx puts in it (user, database), and never the password; its cause stays.
func TestAConnectErrorIsOneLineWithoutTheConnectionDetails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Two ports nobody listens on, each tried twice (sslmode=prefer): pgx makes several
	// attempts, one cause each, two of them different.
	var ports []string
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, "127.0.0.1:"+strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
		_ = l.Close()
	}
	closed := "postgres://secret_user_x:s3cret-pw@" + strings.Join(ports, ",") + "/secret_db_x?connect_timeout=5"
	missing := dbtest.WithDatabase(dbtest.AdminURL(), "secret_db_x")
	_, err := pgx.Connect(ctx, closed)
	if err == nil {
		t.Fatal("connected to a closed port")
	}
	_, _, migrateErr := database.Migrate(ctx, missing)
	for name, e := range map[string]error{"Redact": database.Redact(err), "Migrate": migrateErr} {
		if e == nil {
			t.Fatalf("%s: no error", name)
		}
		msg := e.Error()
		if strings.Contains(msg, "\n") || strings.Contains(msg, "s3cret-pw") || strings.Contains(msg, "secret_user_x") ||
			strings.Contains(msg, "user=") || !strings.Contains(msg, "cannot reach Postgres") {
			t.Errorf("%s: %q", name, msg)
		}
		// Each port is tried twice: the same cause is said once.
		_, causes, _ := strings.Cut(msg, "cannot reach Postgres: ")
		seen := map[string]bool{}
		for _, c := range strings.Split(causes, "; ") {
			if seen[c] {
				t.Errorf("%s: cause %q repeated in %q", name, c, msg)
			}
			seen[c] = true
		}
	}
}

// The key=value form gets the database name as a later key, which wins; a URL gets it
// as its path.
func TestWithDatabaseNamePointsEitherFormAtTheDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, err := url.Parse(dbtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	keyValue := "host=" + u.Hostname() + " port=" + u.Port() + " user=" + u.User.Username() + " dbname=postgres sslmode=disable"
	for _, s := range []string{dbtest.AdminURL(), keyValue} {
		conn, err := pgx.Connect(ctx, database.WithDatabaseName(s, "template1"))
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		var name string
		err = conn.QueryRow(ctx, "select current_database()").Scan(&name)
		conn.Close(ctx)
		if err != nil || name != "template1" {
			t.Errorf("%q: connected to %q, %v", s, name, err)
		}
	}
}

// ConnectionLost tells a lost connection (worth sending the statement again on another)
// from a statement that failed, a refusal and a context that ended.
func TestConnectionLostTellsALostSessionFromAFailedStatement(t *testing.T) {
	for _, c := range []struct {
		err  error
		lost bool
	}{
		{errors.New("unexpected EOF"), true},
		{&pgconn.PgError{Severity: "FATAL", Code: "57P01"}, true},  // admin_shutdown: a restart
		{&pgconn.PgError{Severity: "FATAL", Code: "08006"}, true},  // connection_failure
		{&pgconn.PgError{Severity: "FATAL", Code: "25P03"}, true},  // idle_in_transaction_session_timeout
		{&pgconn.PgError{Severity: "FATAL", Code: "25P04"}, true},  // transaction_timeout
		{&pgconn.PgError{Severity: "FATAL", Code: "28P01"}, false}, // a wrong password
		{&pgconn.PgError{Severity: "FATAL", Code: "3D000"}, false}, // no such database
		{&pgconn.PgError{Severity: "ERROR", Code: "22012"}, false}, // division by zero
		{&pgconn.PgError{Severity: "ERROR", Code: "23505"}, false}, // unique_violation
		{fmt.Errorf("read: %w", pgx.ErrNoRows), false},
		{fmt.Errorf("query: %w", context.Canceled), false},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), false},
		{nil, false},
	} {
		if got := database.ConnectionLost(c.err); got != c.lost {
			t.Errorf("ConnectionLost(%v) = %v, want %v", c.err, got, c.lost)
		}
	}
}
