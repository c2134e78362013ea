package authstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/secrets"
)

// BenchmarkTokenCacheHit is the steady state of the execution path: the token comes
// from memory (TestTheSteadyStateIsACacheHitWithoutADatabaseRoundTrip asserts it costs no query).
func BenchmarkTokenCacheHit(b *testing.B) {
	sim := engagesim.Start(b, engagesim.Config{Tenants: []engagesim.Tenant{{ID: "tenant-1", Secret: ccSecret, Domain: "acme"}}})
	pool, err := pgxpool.New(context.Background(), dbtest.NewURL(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	s, err := authstore.New(authstore.Options{
		Pool: pool, Keys: ringOf(b, keySpec("k1", 1)), Registerer: prometheus.NewRegistry(),
		AllowedBaseURLs: []string{sim.BaseURL()},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	ctx := context.Background()
	a, err := s.Create(ctx, acme, authstore.ActorAPI, authstore.CreateRequest{
		Name: "bench", Kind: authstore.KindClientCredentials, BaseURL: sim.BaseURL(), Domain: "acme",
		TenantID: "tenant-1", TenantSecret: secrets.New(ccSecret),
	})
	if err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !s.Listening(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the listener did not connect")
		}
	}
	id := a.Authorization.ID
	if _, err := s.Token(ctx, acme, id); err != nil { // fills the cache
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		c, err := s.Token(ctx, acme, id)
		if err != nil || c.AccessToken.IsZero() {
			b.Fatal(err)
		}
	}
}
