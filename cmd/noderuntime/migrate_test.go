package main

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
)

// migrate status exits 1 while the schema is behind, so a deploy step can gate on it,
// and 0 once migrate up has brought it to the latest version; up says from where to
// where, and a second up changes nothing.
func TestMigrateStatusFailsWhileBehindAndUpBringsItCurrent(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"DATABASE_URL": dbtest.NewEmptyURL(t)}
	latest := database.Latest()
	for _, step := range []struct {
		args   []string
		code   int
		stdout string
	}{
		{[]string{"migrate", "status"}, exitFailed, fmt.Sprintf("applied 0, latest %d\n", latest)},
		{[]string{"migrate", "up"}, exitOK, fmt.Sprintf("schema at version %d (was 0)\n", latest)},
		{[]string{"migrate", "status"}, exitOK, fmt.Sprintf("applied %d, latest %d\n", latest, latest)},
		{[]string{"migrate", "up"}, exitOK, fmt.Sprintf("schema at version %d (was %d)\n", latest, latest)},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(step.args, env(vars), &stdout, &stderr); code != step.code || stdout.String() != step.stdout {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q; want exit %d and %q", step.args, code, stdout.String(), stderr.String(), step.code, step.stdout)
		}
	}
}

// One version behind is behind: migrate status exits 1 on a schema the last migration
// has not reached, as serve refuses it.
func TestMigrateStatusFailsOneVersionBehind(t *testing.T) {
	t.Parallel()
	dbURL := schemaMovedBy(t, -1)
	var stdout, stderr bytes.Buffer
	latest := database.Latest()
	if code := run([]string{"migrate", "status"}, env(map[string]string{"DATABASE_URL": dbURL}), &stdout, &stderr); code != exitFailed ||
		stdout.String() != fmt.Sprintf("applied %d, latest %d\n", latest-1, latest) {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and applied %d", code, stdout.String(), stderr.String(), latest-1)
	}
}

// A rollback through the overlay applies the previous release's migration Job again, on
// the newer schema: `migrate up` has nothing to apply there and exits 0, as serve
// accepts that schema, so `kubectl wait --for=condition=complete job/...` passes.
func TestMigrateUpOnASchemaAheadOfTheBuildExitsZero(t *testing.T) {
	t.Parallel()
	dbURL := schemaMovedBy(t, 1)
	var stdout, stderr bytes.Buffer
	ahead := database.Latest() + 1
	if code := run([]string{"migrate", "up"}, env(map[string]string{"DATABASE_URL": dbURL}), &stdout, &stderr); code != exitOK ||
		stdout.String() != fmt.Sprintf("schema at version %d (was %d)\n", ahead, ahead) {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 0 and version %d unchanged", code, stdout.String(), stderr.String(), ahead)
	}
}

// schemaMovedBy returns a new migrated database whose recorded schema version is moved
// by delta: behind the build's latest (negative) or ahead of it, as a newer release
// leaves it.
func schemaMovedBy(t *testing.T, delta int) string {
	t.Helper()
	dbURL := dbtest.NewURL(t)
	pool, err := database.Open(t.Context(), dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(t.Context(), "update "+database.VersionTable+" set version = version + $1", delta); err != nil {
		t.Fatal(err)
	}
	return dbURL
}
