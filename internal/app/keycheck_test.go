package app_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/noderuntime/noderuntime/internal/app"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
)

// The key check at start guards against a key pasted wrong; one that cannot run (its
// query fails, the schema being current) is no reason to keep the replica down: it
// starts, and its log says why the keys went unchecked.
func TestAStartThatCannotCheckTheKeysServesAndSaysSo(t *testing.T) {
	dbURL := dbtest.NewURL(t)
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// The schema version stays current; the table the check reads is gone.
	if _, err := conn.Exec(t.Context(), `alter table authorizations rename to authorizations_elsewhere`); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	a, err := app.New(t.Context(), testConfig(t, dbURL), slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("a start whose key check failed: %v, want it to serve", err)
	}
	a.Close()
	if out := logs.String(); !strings.Contains(out, "could not check the encryption keys at start") || !strings.Contains(out, "authorizations") {
		t.Fatalf("logs %s, want why the keys went unchecked", out)
	}
}
