package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
)

// rotate-keys reads DATABASE_URL as serve and migrate do, without a Secret file's
// newline, and exits 0 only when the rotation ran through: a query that fails midway
// exits 1 with the reason, never 0 as if every row were under the new key.
func TestRotateKeysExitsZeroOnlyWhenTheRotationRanThrough(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.NewURL(t)
	vars := map[string]string{"DATABASE_URL": dbURL + "\n", "NODERUNTIME_ENCRYPTION_KEYS": ringSpec("new", 2)}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"rotate-keys"}, env(vars), &stdout, &stderr); code != exitOK || !strings.Contains(stdout.String(), "0 rows remain") {
		t.Fatalf("nothing to rotate: exit %d, stdout %q, stderr %q; want exit 0", code, stdout.String(), stderr.String())
	}

	pool, err := database.Open(t.Context(), dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// The schema version stays current; the table the rotation reads is gone.
	if _, err := pool.Exec(context.Background(), `alter table authorizations rename to authorizations_elsewhere`); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"rotate-keys"}, env(vars), &stdout, &stderr); code != exitFailed || !strings.Contains(stderr.String(), "authorizations") {
		t.Fatalf("a failing query: exit %d, stdout %q, stderr %q; want exit 1 with the reason", code, stdout.String(), stderr.String())
	}
}
