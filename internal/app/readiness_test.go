package app_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
)

// waitReadyz polls /readyz?exclude=postgres until its status is want.
func waitReadyz(t *testing.T, srvURL, want string) {
	t.Helper()
	waitExcludingProbe(t, srvURL, 20*time.Second, false, func(body map[string]any) bool { return body["status"] == want })
}

// waitExcludingProbe polls /readyz?exclude=postgres until it answers 200 with a body
// done accepts, within. strict: every answer meanwhile must be 200 too, as the probe
// that excludes Postgres must be through a Postgres outage once the schema was seen.
func waitExcludingProbe(t *testing.T, srvURL string, within time.Duration, strict bool, done func(body map[string]any) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, body := get(t, srvURL+"/readyz?exclude=postgres")
		if code == 200 && done(body) {
			return
		}
		if strict && code != 200 {
			t.Fatalf("/readyz?exclude=postgres answered %d %v meanwhile, want 200 throughout", code, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz?exclude=postgres %d %v after %s, not yet what the test waits for", code, body, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The probe that excludes Postgres passes an outage once the schema has been seen
// current since the start: by the start's own check (no probe needed before the
// outage), or by a probe after a start without Postgres. noderuntime_postgres_up says
// 1 from the start when the start found Postgres.
func TestTheSchemaSeenCurrentOnceLetsTheExcludingProbePassAnOutage(t *testing.T) {
	t.Run("seen at the start", func(t *testing.T) {
		sw := dbtest.NewSwitch(t, dbtest.NewURL(t))
		a, srv := serveApp(t, testConfig(t, sw.URL), quietLogger())
		if up := postgresUp(t, a); up != 1 {
			t.Fatalf("noderuntime_postgres_up %v before any probe, after a start that found the schema current; want 1", up)
		}
		sw.Set(false) // before any probe
		if code, body := get(t, srv.URL+"/readyz?exclude=postgres"); code != 200 || body["status"] != "degraded" || body["postgres"] != "unreachable" {
			t.Fatalf("first probe, postgres gone since the start: %d %v, want 200 degraded", code, body)
		}
	})
	t.Run("seen by a probe", func(t *testing.T) {
		sw := dbtest.NewSwitch(t, dbtest.NewURL(t))
		sw.Set(false)
		_, srv := serveApp(t, testConfig(t, sw.URL), quietLogger())
		if code, body := get(t, srv.URL+"/readyz?exclude=postgres"); code != 503 {
			t.Fatalf("never reached postgres: %d %v, want 503", code, body)
		}
		sw.Set(true)
		waitReadyz(t, srv.URL, "ready")
		sw.Set(false)
		waitReadyz(t, srv.URL, "degraded")
	})
}

// A schema found behind after the start (a restore, a migration rolled back) is not an
// outage: the probe that excludes Postgres fails it too, as the pod's queries would.
func TestTheExcludingProbeFailsASchemaThatFellBehind(t *testing.T) {
	dbURL := dbtest.NewURL(t)
	_, srv := serveApp(t, testConfig(t, dbURL), quietLogger())
	waitReadyz(t, srv.URL, "ready")
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "update "+database.VersionTable+" set version = version - 1"); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, srv.URL+"/readyz?exclude=postgres")
	if detail, _ := body["detail"].(string); code != 503 || detail != "database schema is behind; run `noderuntime migrate up`" {
		t.Fatalf("schema behind after the start: %d %v, want 503 naming the schema", code, body)
	}
}

// A pool whose every connection is in use (refreshes holding theirs through a slow
// token endpoint, say) is not Postgres being unreachable: the readiness check then
// asks Postgres on a connection of its own, and /readyz stays green with
// noderuntime_postgres_up 1, so the critical NoderuntimePostgresUnreachable does not
// send the on-call to a database that answers. Postgres gone with the pool full is
// still unreachable.
func TestAFullPoolIsNotPostgresUnreachable(t *testing.T) {
	withOneConn := func(u string) string {
		if strings.Contains(u, "?") {
			return u + "&pool_max_conns=1"
		}
		return u + "?pool_max_conns=1"
	}
	t.Run("postgres answers", func(t *testing.T) {
		a, srv := serveApp(t, testConfig(t, withOneConn(dbtest.NewURL(t))), quietLogger())
		held, err := a.Pool().Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer held.Release()
		if code, body := get(t, srv.URL+"/readyz"); code != 200 || body["status"] != "ready" {
			t.Fatalf("the pool's only connection in use, postgres up: %d %v, want 200 ready", code, body)
		}
		if up := postgresUp(t, a); up != 1 {
			t.Fatalf("noderuntime_postgres_up %v with postgres up and the pool full, want 1", up)
		}
	})
	t.Run("postgres gone", func(t *testing.T) {
		sw := dbtest.NewSwitch(t, dbtest.NewURL(t))
		a, srv := serveApp(t, testConfig(t, withOneConn(sw.URL)), quietLogger())
		held, err := a.Pool().Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer held.Release()
		sw.Set(false)
		if code, body := get(t, srv.URL+"/readyz"); code != 503 || body["detail"] != "postgres is unreachable" {
			t.Fatalf("the pool full and postgres gone: %d %v, want 503 unreachable", code, body)
		}
		if up := postgresUp(t, a); up != 0 {
			t.Fatalf("noderuntime_postgres_up %v with postgres gone, want 0", up)
		}
	})
}

// A pool that is not full but has to open a connection first (after Postgres closed
// them, say) gives the readiness check the time a connect takes, up to the check's own
// deadline: a slow connect is not Postgres unreachable either.
func TestASlowConnectIsNotPostgresUnreachable(t *testing.T) {
	dbURL := dbtest.NewURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // a relay whose every new connection takes 800 ms to reach Postgres
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				time.Sleep(800 * time.Millisecond) // the fault: a slow connect
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	u.Host = ln.Addr().String()
	a, srv := serveApp(t, testConfig(t, u.String()), quietLogger())
	a.Pool().Reset() // the next check has to connect
	if code, body := get(t, srv.URL+"/readyz"); code != 200 || body["status"] != "ready" {
		t.Fatalf("a connect of 800 ms: %d %v, want 200 ready", code, body)
	}
}

// Postgres gone, then back with its schema restored from an older backup: the log says
// so too, not only "unreachable", its first reason. A pod out of its Service names the
// cause it is out for in its log (runbook: `grep '"not ready"'`); one line per change
// of reason, not per probe.
func TestANotReadyReasonThatChangesIsLoggedAgain(t *testing.T) {
	dbURL := dbtest.NewURL(t)
	sw := dbtest.NewSwitch(t, dbURL)
	var logs lockedBuffer
	_, srv := serveApp(t, testConfig(t, sw.URL), slog.New(slog.NewJSONHandler(&logs, nil)))
	if got := status(t, srv.URL+"/readyz"); got != 200 {
		t.Fatalf("before: /readyz %d", got)
	}
	sw.Set(false)
	for range 3 {
		if code, body := get(t, srv.URL+"/readyz"); code != 503 || body["detail"] != "postgres is unreachable" {
			t.Fatalf("with postgres unreachable: %d %v", code, body)
		}
	}
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "update schema_version set version = version - 1"); err != nil {
		t.Fatal(err)
	}
	sw.Set(true)
	behind := func() bool {
		_, body := get(t, srv.URL+"/readyz")
		d, _ := body["detail"].(string)
		return strings.HasPrefix(d, "database schema is behind")
	}
	for deadline := time.Now().Add(20 * time.Second); !behind(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("/readyz does not say the schema is behind 20 s after postgres came back")
		}
	}
	for range 3 {
		if !behind() {
			t.Fatal("/readyz stopped saying the schema is behind")
		}
	}
	out := logs.String()
	if n := strings.Count(out, `"msg":"not ready","reason":"postgres is unreachable"`); n != 1 {
		t.Fatalf("%d lines say not ready for postgres unreachable, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, `"msg":"not ready","reason":"database schema is behind`); n != 1 {
		t.Fatalf("%d lines say not ready for the schema behind, want 1:\n%s", n, out)
	}
}
