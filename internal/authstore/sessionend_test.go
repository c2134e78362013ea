package authstore_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// sessionEndsAfterTheAnswer is a token endpoint's transport that, once the provider has
// answered (and rotated the refresh token), waits until Postgres has ended the
// refresh's session for sitting idle in its transaction (idle_in_transaction_session_timeout),
// as it does when a token endpoint is slower than a DBA's setting.
type sessionEndsAfterTheAnswer struct {
	t     *testing.T
	watch *pgxpool.Pool
	ended bool
}

func (s *sessionEndsAfterTheAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || s.ended {
		return resp, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	waitFor(s.t, 10*time.Second, "Postgres ends the refresh's idle transaction", func() bool {
		var n int
		if err := s.watch.QueryRow(context.Background(), `select count(*) from pg_stat_activity
			where datname = current_database() and application_name = 'idle-refresher' and query like '%for update'`).Scan(&n); err != nil {
			s.t.Error(err)
			return true
		}
		return n == 0
	})
	s.ended = true
	return resp, nil
}

// A refresh whose session Postgres ends while the token endpoint answers (the
// transaction sat idle past idle_in_transaction_session_timeout, SQLSTATE 25P03) has lost
// its connection as surely as one cut by a restart: the rotated pair is written again on
// a new connection, not dropped with "token refreshed but not stored" (the next refresh
// would spend the rotated-away refresh token and end the login in needs_reauthorization).
func TestARefreshWhoseIdleTransactionPostgresEndedStillStoresTheNewPair(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	a := e.createLogin(e.store(), acme, "idle in transaction")
	cfg, err := pgxpool.ParseConfig(e.url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "idle-refresher"
	cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "100"
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	ended := &sessionEndsAfterTheAnswer{t: t, watch: e.newPool()}
	s := e.store(func(o *authstore.Options) { o.Pool = pool; o.HTTPClient = &http.Client{Transport: ended} })
	spent := e.storedRefreshToken(a.ID)
	e.expire(a.ID)

	c, err := s.Token(ctxT(t), acme, a.ID)
	if !ended.ended {
		t.Fatal("the refresh did not reach the provider")
	}
	if err != nil {
		t.Fatalf("the refresh whose session Postgres ended: %v", err)
	}
	if err := e.works(c); err != nil {
		t.Fatalf("the token handed out: %v", err)
	}
	if e.storedRefreshToken(a.ID) == spent {
		t.Fatal("the row still holds the refresh token the provider rotated away")
	}
	e.expire(a.ID)
	if _, err := e.store().Token(ctxT(t), acme, a.ID); err != nil {
		t.Fatalf("the next refresh: %v (status %s)", err, e.status(a.ID))
	}
}
