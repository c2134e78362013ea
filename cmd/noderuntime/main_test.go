package main

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
)

func env(m map[string]string) lookupEnv {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

const goodKeys = "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
const goodAPIKeys = "acme:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"

func TestServeStopsWithOneLineNamingTheBadSetting(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no database URL", map[string]string{"NODERUNTIME_ENCRYPTION_KEYS": goodKeys, "NODERUNTIME_API_KEYS": goodAPIKeys}, nil, "DATABASE_URL"},
		{"bad key ring", map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1/db", "NODERUNTIME_ENCRYPTION_KEYS": "k1:short", "NODERUNTIME_API_KEYS": goodAPIKeys}, nil, "NODERUNTIME_ENCRYPTION_KEYS"},
		{"key of the wrong size", map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1/db", "NODERUNTIME_ENCRYPTION_KEYS": "k1:AAAA", "NODERUNTIME_API_KEYS": goodAPIKeys}, nil, "NODERUNTIME_ENCRYPTION_KEYS"},
		{"no API keys", map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1/db", "NODERUNTIME_ENCRYPTION_KEYS": goodKeys}, nil, "NODERUNTIME_API_KEYS"},
		{"API key not hashed", map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1/db", "NODERUNTIME_ENCRYPTION_KEYS": goodKeys, "NODERUNTIME_API_KEYS": "acme:plainkey"}, nil, "NODERUNTIME_API_KEYS"},
		{"bad duration", map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1/db", "NODERUNTIME_ENCRYPTION_KEYS": goodKeys, "NODERUNTIME_API_KEYS": goodAPIKeys, "NODERUNTIME_SHUTDOWN_GRACE": "soon"}, nil, "NODERUNTIME_SHUTDOWN_GRACE"},
		{"bad allowlist entry", map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1/db", "NODERUNTIME_ENCRYPTION_KEYS": goodKeys, "NODERUNTIME_API_KEYS": goodAPIKeys, "ENGAGE_ALLOWED_BASE_URLS": "ftp://x"}, nil, "ENGAGE_ALLOWED_BASE_URLS"},
		{"webex half configured", map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1/db", "NODERUNTIME_ENCRYPTION_KEYS": goodKeys, "NODERUNTIME_API_KEYS": goodAPIKeys, "WEBEX_CLIENT_ID": "id"}, nil, "WEBEX_AUTHORIZE_URL"},
		{"API keys given as an empty flag", map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1/db", "NODERUNTIME_ENCRYPTION_KEYS": goodKeys, "NODERUNTIME_API_KEYS": goodAPIKeys}, []string{"--api-keys="}, "NODERUNTIME_API_KEYS"},
		{"listen address without a port", map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1/db", "NODERUNTIME_ENCRYPTION_KEYS": goodKeys, "NODERUNTIME_API_KEYS": goodAPIKeys, "NODERUNTIME_ADDR": "bogus"}, nil, "NODERUNTIME_ADDR"},
		{"flag overrides a good env with a bad value", map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1/db", "NODERUNTIME_ENCRYPTION_KEYS": goodKeys, "NODERUNTIME_API_KEYS": goodAPIKeys}, []string{"--encryption-keys", "nope"}, "NODERUNTIME_ENCRYPTION_KEYS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"serve"}, c.args...), env(c.env), &stdout, &stderr)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr %q", code, stderr.String())
			}
			out := strings.TrimRight(stderr.String(), "\n")
			if strings.Count(out, "\n") != 0 || !strings.Contains(out, c.want) {
				t.Fatalf("want one line naming %s, got %q", c.want, out)
			}
			if strings.Contains(out, "AAAAAAAA") || strings.Contains(out, "plainkey") {
				t.Fatalf("the line repeats a secret value: %q", out)
			}
		})
	}
}

func TestMigrateWithoutDatabaseURLStopsWithOneLine(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"migrate", "up"}, env(nil), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "DATABASE_URL") {
		t.Fatalf("exit %d stderr %q", code, stderr.String())
	}
}

// Flags after the subcommand count (flag stops at "up"): the database named by the flag
// is migrated, not the environment's.
func TestMigrateReadsFlagsAfterTheSubcommand(t *testing.T) {
	target := dbtest.NewEmptyURL(t)
	elsewhere := database.WithDatabaseName(target, "noderuntime_no_such_database")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"migrate", "up", "--database-url", target}, env(map[string]string{"DATABASE_URL": elsewhere}), &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "schema at version") {
		t.Fatalf("exit %d stdout %q stderr %q", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	if code := run([]string{"migrate", "status", "--database-url", target}, env(nil), &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "applied ") {
		t.Fatalf("status: exit %d stdout %q stderr %q", code, stdout.String(), stderr.String())
	}
	for _, args := range [][]string{{"migrate"}, {"migrate", "sideways"}, {"migrate", "up", "extra"}} {
		stderr.Reset()
		if code := run(args, env(map[string]string{"DATABASE_URL": target}), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "up|status") {
			t.Errorf("%v: exit %d stderr %q, want 2 and the usage", args, code, stderr.String())
		}
	}
	if code := run([]string{"migrate", "up", "--help"}, env(nil), &stdout, &stderr); code != 0 {
		t.Errorf("migrate up --help: exit %d", code)
	}
}

// DATABASE_URL from a Secret file written with echo ends with a newline: migrate reads
// it without, as serve does.
func TestMigrateReadsADatabaseURLWithoutTheNewlineAroundIt(t *testing.T) {
	target := dbtest.NewEmptyURL(t)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"migrate", "up"}, env(map[string]string{"DATABASE_URL": target + "\n"}), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d stderr %q", code, stderr.String())
	}
}

// A URL pgx cannot parse never reaches it: its parse errors mask a password containing
// an unescaped "@" only in part.
func TestMigrateWithAnUnparsableDatabaseURLNamesItWithoutThePassword(t *testing.T) {
	for _, sub := range []string{"up", "status"} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"migrate", sub}, env(map[string]string{"DATABASE_URL": "postgres://u:Sup3r@Secret@127.0.0.1:5432/db?sslmode=bogus"}), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "DATABASE_URL") || strings.Contains(stderr.String(), "Secret") || strings.Contains(stderr.String(), "Sup3r") {
			t.Fatalf("migrate %s: exit %d stderr %q", sub, code, stderr.String())
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"version"}, env(nil), &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "noderuntime ") {
		t.Fatalf("version: %d %q", code, stdout.String())
	}
	stderr.Reset()
	if code := run([]string{"serve", "--help"}, env(nil), &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "DATABASE_URL") {
		t.Fatalf("serve --help: %d %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"bogus"}, env(nil), &stdout, &stderr); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
}

// A connection Postgres refuses (no such database, no such user, a wrong password) is
// a setting to fix, not an outage to wait out: serve stops with one line naming
// DATABASE_URL and Postgres' reason, and no password.
func TestServeStopsWhenPostgresRefusesTheConnection(t *testing.T) {
	base := dbtest.NewEmptyURL(t)
	noUser, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	noUser.User = url.UserPassword("noderuntime_no_such_role", "pw-secret-4711")
	// pgx's default sslmode (prefer) tries twice, TLS then not: one cause per attempt.
	tryTwice := *noUser
	q := tryTwice.Query()
	q.Del("sslmode")
	tryTwice.RawQuery = q.Encode()
	for name, u := range map[string]string{
		"no such database":                   database.WithDatabaseName(base, "noderuntime_no_such_database"),
		"no such user":                       noUser.String(),
		"no such user, refused once per try": tryTwice.String(),
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr lockedBuffer
			done := make(chan int, 1)
			go func() {
				done <- run([]string{"serve", "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}, env(map[string]string{
					"DATABASE_URL": u, "NODERUNTIME_ENCRYPTION_KEYS": goodKeys, "NODERUNTIME_API_KEYS": goodAPIKeys,
				}), &stdout, &stderr)
			}()
			var code int
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("serve still runs, not ready, on a connection Postgres refuses:\n%s", stderr.String())
			}
			out := strings.TrimRight(stderr.String(), "\n")
			if code != 2 || strings.Contains(out, "\n") || !strings.Contains(out, "DATABASE_URL") || !strings.Contains(out, "SQLSTATE") {
				t.Fatalf("exit %d, want 2 with one line naming DATABASE_URL and the SQLSTATE:\n%s", code, stderr.String())
			}
			if strings.Contains(stderr.String(), "pw-secret-4711") {
				t.Fatalf("the password is printed:\n%s", stderr.String())
			}
		})
	}
}

// A command that takes flags only refuses a word flag left unread, before it does
// anything: `serve --migrate false` would otherwise migrate (the boolean flag takes no
// separate value) and drop "false".
func TestCommandsThatTakeFlagsOnlyRefuseOtherArguments(t *testing.T) {
	// A database that refuses at once, should a command get that far.
	good := env(map[string]string{"DATABASE_URL": "postgres://noderuntime_no_such_role@127.0.0.1:5432/db?connect_timeout=3", "NODERUNTIME_ENCRYPTION_KEYS": goodKeys, "NODERUNTIME_API_KEYS": goodAPIKeys})
	for _, args := range [][]string{
		{"serve", "--migrate", "false"},
		{"serve", "--addr=127.0.0.1:0", "--metrics-addr=", "extra"},
		{"dev", "extra"},
		{"rotate-keys", "extra"},
		{"version", "extra"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(args, good, &stdout, &stderr)
		if out := strings.TrimRight(stderr.String(), "\n"); code != 2 || strings.Count(out, "\n") != 0 || !strings.Contains(out, "takes flags only, not \""+args[len(args)-1]+"\"") {
			t.Errorf("%v: exit %d stderr %q, want 2 and one line naming the argument", args, code, stderr.String())
		}
		if stdout.Len() != 0 {
			t.Errorf("%v: ran anyway: %q", args, stdout.String())
		}
	}
}

// The commands that only reach Postgres say why they could not in one line, without
// the connection details pgx adds (user, database).
func TestMigrateAndRotateKeysSayInOneLineWhyPostgresRefused(t *testing.T) {
	u := "postgres://noderuntime_no_such_role@127.0.0.1:5432/noderuntime_db_name?connect_timeout=3" // sslmode=prefer: two attempts
	for _, args := range [][]string{{"migrate", "up"}, {"migrate", "status"}, {"rotate-keys"}} {
		var stdout, stderr bytes.Buffer
		code := run(args, env(map[string]string{"DATABASE_URL": u, "NODERUNTIME_ENCRYPTION_KEYS": goodKeys}), &stdout, &stderr)
		out := strings.TrimRight(stderr.String(), "\n")
		if code != 1 || strings.Contains(out, "\n") || !strings.Contains(out, "SQLSTATE 28000") || strings.Contains(out, "noderuntime_db_name") {
			t.Errorf("%v: exit %d, want 1 and one line with the SQLSTATE and no database name:\n%s", args, code, out)
		}
	}
}

// dev checks a DATABASE_URL it is given as serve does: one configuration line, exit 2,
// no password.
func TestDevNamesAnUnparsableDatabaseURLWithoutThePassword(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"dev"}, env(map[string]string{"DATABASE_URL": "postgres://u:Sup3r@Secret@127.0.0.1:5432/db?pool_max_conns=many"}), &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "configuration: DATABASE_URL") || strings.Contains(stderr.String(), "Sup3r") {
		t.Fatalf("exit %d stderr %q", code, stderr.String())
	}
}

// dev reads NODERUNTIME_LOG_LEVEL as serve does (it used to log at info whatever it said).
func TestDevReadsTheLogLevel(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"dev"}, env(map[string]string{"NODERUNTIME_LOG_LEVEL": "loud"}), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "NODERUNTIME_LOG_LEVEL: \"loud\" is not a level (want debug, info, warn or error)") {
		t.Fatalf("exit %d stderr %q", code, stderr.String())
	}
}
