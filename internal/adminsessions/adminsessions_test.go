package adminsessions_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/adminsessions"
	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestAnEndedSessionIsEndedAndOthersAreNot(t *testing.T) {
	t.Parallel()
	s := adminsessions.New(dbtest.NewPool(t))
	for _, id := range []string{"a", "a"} { // ending twice is no error
		if err := s.End(t.Context(), id, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[string]bool{"a": true, "b": false} {
		if got, err := s.Ended(t.Context(), id); err != nil || got != want {
			t.Errorf("Ended(%q) = %v, %v; want %v", id, got, err, want)
		}
	}
}

// A record whose session would have expired anyway (an hour ago, past the margin for
// clocks) is swept by a later End.
func TestExpiredRecordsAreSwept(t *testing.T) {
	t.Parallel()
	pool := dbtest.NewPool(t)
	s := adminsessions.New(pool)
	if err := s.End(t.Context(), "old", time.Now().Add(-time.Hour-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.End(t.Context(), "new", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var ids []string
	rows, err := pool.Query(t.Context(), `select id from admin_sessions_ended order by id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != "new" {
		t.Fatalf("records left: %v, want [new]", ids)
	}
}

// A record is kept a while past its session's expiry: the expiry is checked against the
// replica's clock and the sweep against Postgres's, so a replica whose clock lags would
// otherwise take a signed-out cookie again for the lag.
func TestARecordOutlivesItsSessionByAMargin(t *testing.T) {
	t.Parallel()
	s := adminsessions.New(dbtest.NewPool(t))
	if err := s.End(t.Context(), "just-expired", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Well inside the margin of an hour, for a clock that lags by most of it.
	if err := s.End(t.Context(), "expired-50m-ago", time.Now().Add(-50*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.End(t.Context(), "sweeper", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"just-expired", "expired-50m-ago"} {
		if ended, err := s.Ended(t.Context(), id); err != nil || !ended {
			t.Errorf("Ended(%s) = %v, %v after a sweep; want true", id, ended, err)
		}
	}
}

// An End sweeps at most a hundred expired records: a sign-out after a long quiet spell
// does not wait on one large delete, and the next sign-outs sweep the rest.
func TestAnEndSweepsAtMostAHundredRecords(t *testing.T) {
	t.Parallel()
	pool := dbtest.NewPool(t)
	s := adminsessions.New(pool)
	if _, err := pool.Exec(t.Context(), `insert into admin_sessions_ended (id, expires_at)
		select 'old-' || g, now() - interval '2 hours' from generate_series(1, 150) g`); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{50, 0} {
		if err := s.End(t.Context(), fmt.Sprintf("new-%d", i), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		var left int
		if err := pool.QueryRow(t.Context(), `select count(*) from admin_sessions_ended where id like 'old-%'`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left != want {
			t.Fatalf("after End %d: %d expired records left, want %d", i+1, left, want)
		}
	}
}

// Postgres out of reach is an error from both calls, never "not ended" (a signed-out
// cookie would open the admin pages again): one line, without the connection details.
func TestAnUnreachableDatabaseIsAnErrorWithoutConnectionDetails(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	pool, err := database.Open(t.Context(), "postgres://secret_user_x@"+addr+"/secret_db_x?connect_timeout=5", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s := adminsessions.New(pool)
	ended, endedErr := s.Ended(t.Context(), "a")
	if ended {
		t.Error("a session reads as ended on an unreachable database")
	}
	for name, err := range map[string]error{"End": s.End(t.Context(), "a", time.Now().Add(time.Hour)), "Ended": endedErr} {
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		if msg := err.Error(); strings.Contains(msg, "\n") || strings.Contains(msg, "secret_user_x") || strings.Contains(msg, "secret_db_x") ||
			!strings.Contains(msg, "cannot reach Postgres") {
			t.Errorf("%s: %q", name, msg)
		}
	}
}
