package pgtemp

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestClusterStartsStopsAndRestartsOnTheSamePort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	ping := func() error {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		return conn.Ping(ctx)
	}
	if err := ping(); err != nil {
		t.Fatalf("fresh cluster: %v", err)
	}
	port := c.Port
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err == nil {
		t.Fatal("stopped cluster still answers")
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Port != port {
		t.Fatalf("restarted on port %d, want %d", c.Port, port)
	}
	if err := ping(); err != nil {
		t.Fatalf("restarted cluster: %v", err)
	}
}
