package idempotency_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/internal/idempotency"
)

// A Postgres restart while an execution runs does not cost its answer, nor the release
// of its key: the connection the pool hands out for the write (one used less than a
// second ago, handed out without a ping) is one the restart closed, and the write is
// made again on a new one. Otherwise the answer is lost, and the retry that is sure to
// come (its caller, most often, did not get the answer either) finds the key held, then
// abandoned: 409 for a day, for an execution that ran, or one that changed nothing.
func TestAWriteOnAConnectionARestartClosedIsMadeAgain(t *testing.T) {
	t.Parallel()
	for _, write := range []string{"complete", "release"} {
		t.Run(write, func(t *testing.T) {
			t.Parallel()
			url := dbtest.NewURL(t)
			cfg, err := pgxpool.ParseConfig(url)
			if err != nil {
				t.Fatal(err)
			}
			cfg.MaxConns = 1 // the write gets the claim's connection
			pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			admin, err := pgxpool.New(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(admin.Close)
			s := idempotency.New(pool, idempotency.Options{})
			first := claim(t, s, "a", "k", "body", time.Minute, false)
			if first.State != idempotency.Run {
				t.Fatalf("first claim: %v", first.State)
			}

			// The restart: every session but the admin's ends.
			if _, err := admin.Exec(t.Context(), `select pg_terminate_backend(pid, 5000) from pg_stat_activity
				where datname = current_database() and pid <> pg_backend_pid()`); err != nil {
				t.Fatal(err)
			}
			if write == "complete" {
				err = s.Complete(t.Context(), "t-a", "k", first.Holder, []byte(`{"outcome":"x"}`))
			} else {
				err = s.Release(t.Context(), "t-a", "k", first.Holder)
			}
			if err != nil {
				t.Fatalf("%s after the restart: %v", write, err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), waiterPatience)
			defer cancel()
			c, err := s.Claim(ctx, "t-a", "k", hash("body"), time.Minute, false)
			if err != nil {
				t.Fatal(err)
			}
			if write == "complete" && (c.State != idempotency.Replay || string(c.Response) != `{"outcome":"x"}`) {
				t.Fatalf("the retry: %v %q, want the answer replayed", c.State, c.Response)
			}
			if write == "release" && c.State != idempotency.Run {
				t.Fatalf("the retry: %v, want Run (the key released)", c.State)
			}
		})
	}
}
