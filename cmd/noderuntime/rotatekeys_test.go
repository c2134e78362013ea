package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/secrets"
)

func ringSpec(id string, b byte) string {
	return id + ":" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32))
}

func TestRotateKeysReencryptsUnderTheNewKeyAndEveryAuthorizationStillWorks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dbURL := dbtest.NewEmptyURL(t)
	if _, _, err := database.Migrate(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	pool, err := database.Open(ctx, dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	sim := engagesim.Start(t, engagesim.Config{Tenants: []engagesim.Tenant{{ID: "t1", Secret: "s1", Domain: "acme"}}})
	open := func(spec string) *authstore.Store {
		ring, err := secrets.ParseKeyRing(spec)
		if err != nil {
			t.Fatal(err)
		}
		s, err := authstore.New(authstore.Options{Pool: pool, Keys: ring, AllowedBaseURLs: []string{sim.BaseURL()}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	old := open(ringSpec("old", 1))
	a, err := old.Create(ctx, "acme", authstore.ActorAPI, authstore.CreateRequest{Name: "cc", Kind: authstore.KindClientCredentials,
		BaseURL: sim.BaseURL(), Domain: "acme", TenantID: "t1", TenantSecret: secrets.New("s1")})
	if err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	env := env(map[string]string{"DATABASE_URL": dbURL, "NODERUNTIME_ENCRYPTION_KEYS": ringSpec("new", 2)})
	if code := run([]string{"rotate-keys"}, env, &stdout, &stderr); code != exitFailed || !strings.Contains(stderr.String(), "decrypt") ||
		!strings.Contains(stderr.String(), a.ID) || !strings.Contains(stderr.String(), `key "old"`) ||
		!strings.Contains(stderr.String(), "NODERUNTIME_ENCRYPTION_KEYS") || !strings.Contains(stdout.String(), "1 rows remain") {
		t.Fatalf("without the old key: exit %d, %q %q", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	env = envWith(env, "NODERUNTIME_ENCRYPTION_KEYS", ringSpec("new", 2)+","+ringSpec("old", 1))
	if code := run([]string{"rotate-keys", "--batch-size", "1"}, env, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), `re-encrypted 1 authorizations and 0 login states under key "new"; 0 rows remain`) {
		t.Fatalf("stdout %q", stdout.String())
	}
	c, err := open(ringSpec("new", 2)).Token(ctx, "acme", a.ID)
	if err != nil || c.AccessToken.IsZero() {
		t.Fatalf("with only the new key: %v", err)
	}
}

func TestRotateKeysNamesAMissingSetting(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"rotate-keys"}, env(map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1/db"}), &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "NODERUNTIME_ENCRYPTION_KEYS") {
		t.Fatalf("exit %d %q", code, stderr.String())
	}
	stderr.Reset()
	bad := env(map[string]string{"DATABASE_URL": "postgres://u:Sup3r@Secret@127.0.0.1:5432/db?sslmode=bogus", "NODERUNTIME_ENCRYPTION_KEYS": ringSpec("k", 1)})
	if code := run([]string{"rotate-keys"}, bad, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "configuration: DATABASE_URL") || strings.Contains(stderr.String(), "Sup3r") {
		t.Fatalf("an unparsable DATABASE_URL: exit %d %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"rotate-keys", "now"}, env(map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1/db", "NODERUNTIME_ENCRYPTION_KEYS": ringSpec("k", 1)}), &stdout, &stderr); code != exitUsage {
		t.Fatalf("an argument: exit %d %q", code, stderr.String())
	}
	for _, flag := range []string{"--batch-size=0", "--batch-size=-1", "--wait=-1s"} {
		stderr.Reset()
		// A database that refuses at once, should the command get that far.
		good := env(map[string]string{"DATABASE_URL": "postgres://noderuntime_no_such_role@127.0.0.1:5432/db?connect_timeout=3", "NODERUNTIME_ENCRYPTION_KEYS": ringSpec("k", 1)})
		name, _, _ := strings.Cut(flag, "=")
		if code := run([]string{"rotate-keys", flag}, good, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "configuration: "+name) {
			t.Errorf("%s: exit %d %q, want 2 naming %s", flag, code, stderr.String(), name)
		}
	}
}

// underTheOldKey is a database whose authorizations are encrypted under the key "old";
// create adds a client-credentials one (on a simulator tenant) and returns its ID.
func underTheOldKey(t *testing.T) (dbURL string, pool *pgxpool.Pool, create func(name string) string) {
	t.Helper()
	dbURL = dbtest.NewURL(t)
	pool, err := database.Open(t.Context(), dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	sim := engagesim.Start(t, engagesim.Config{Tenants: []engagesim.Tenant{{ID: "t1", Secret: "s1", Domain: "acme"}}})
	ring, err := secrets.ParseKeyRing(ringSpec("old", 1))
	if err != nil {
		t.Fatal(err)
	}
	old, err := authstore.New(authstore.Options{Pool: pool, Keys: ring, AllowedBaseURLs: []string{sim.BaseURL()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(old.Close)
	return dbURL, pool, func(name string) string {
		a, err := old.Create(t.Context(), "acme", authstore.ActorAPI, authstore.CreateRequest{Name: name,
			Kind: authstore.KindClientCredentials, BaseURL: sim.BaseURL(), Domain: "acme", TenantID: "t1", TenantSecret: secrets.New("s1")})
		if err != nil {
			t.Fatal(err)
		}
		return a.ID
	}
}

func envWith(base lookupEnv, k, v string) lookupEnv {
	return func(key string) (string, bool) {
		if key == k {
			return v, true
		}
		return base(key)
	}
}

// rotate-keys re-encrypts --batch-size rows per transaction, 100 without it, as
// docs/authorizations.md says: the rows one transaction updated share its ID (xmin), so
// 101 rows are re-encrypted in a transaction of 100 and one of the last row.
func TestRotateKeysReencryptsAHundredRowsPerTransactionByDefault(t *testing.T) {
	t.Parallel()
	dbURL, pool, create := underTheOldKey(t)
	const rows = 101
	for i := range rows {
		create(fmt.Sprintf("cc-%d", i))
	}

	// rowsPerTransaction rotates to the ring's first key and returns how many rows each
	// transaction re-encrypted, most first.
	rowsPerTransaction := func(ring string, args ...string) []int {
		t.Helper()
		var stdout, stderr bytes.Buffer
		vars := env(map[string]string{"DATABASE_URL": dbURL, "NODERUNTIME_ENCRYPTION_KEYS": ring})
		if code := run(append([]string{"rotate-keys"}, args...), vars, &stdout, &stderr); code != exitOK ||
			!strings.Contains(stdout.String(), fmt.Sprintf("re-encrypted %d authorizations", rows)) {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q", args, code, stdout.String(), stderr.String())
		}
		primary, _, _ := strings.Cut(ring, ":")
		perTx, err := pool.Query(t.Context(), `select count(*)::int from authorizations where key_id = $1 group by xmin::text order by 1 desc`, primary)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(perTx, pgx.RowTo[int])
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got, want := rowsPerTransaction(ringSpec("new", 2)+","+ringSpec("old", 1)), []int{100, 1}; !slices.Equal(got, want) {
		t.Fatalf("by default: rows per transaction %v, want %v", got, want)
	}
	if got, want := rowsPerTransaction(ringSpec("newer", 3)+","+ringSpec("new", 2), "--batch-size=40"), []int{40, 40, 21}; !slices.Equal(got, want) {
		t.Fatalf("with --batch-size=40: rows per transaction %v, want %v", got, want)
	}
}

// rotate-keys retries a row a refresh holds locked for --wait, 30 s without it (as
// docs/authorizations.md says), rather than reporting it left behind after one pass.
func TestRotateKeysWaitsForARowARefreshHoldsLocked(t *testing.T) {
	t.Parallel()
	dbURL, pool, create := underTheOldKey(t)
	ids := []string{create("locked"), create("free")}
	refresh, err := pool.Begin(t.Context()) // a refresh holding the first row
	if err != nil {
		t.Fatal(err)
	}
	defer refresh.Rollback(context.Background())
	if _, err := refresh.Exec(t.Context(), "select 1 from authorizations where id = $1 for update", ids[0]); err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	vars := env(map[string]string{"DATABASE_URL": dbURL, "NODERUNTIME_ENCRYPTION_KEYS": ringSpec("new", 2) + "," + ringSpec("old", 1)})
	go func() { done <- run([]string{"rotate-keys"}, vars, &stdout, &stderr) }()
	// The first pass has re-encrypted the free row and skipped the locked one.
	for rotated := false; !rotated; time.Sleep(10 * time.Millisecond) {
		if err := pool.QueryRow(t.Context(), "select key_id = 'new' from authorizations where id = $1", ids[1]).Scan(&rotated); err != nil {
			t.Fatal(err)
		}
	}
	if err := refresh.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != exitOK || !strings.Contains(stdout.String(), "re-encrypted 2 authorizations") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want both rows re-encrypted once the lock was released", code, stdout.String(), stderr.String())
	}
}
