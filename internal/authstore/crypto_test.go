package authstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/outcomes"
	"github.com/noderuntime/noderuntime/internal/secrets"
)

func TestACiphertextMovedToAnotherRowOrColumnDoesNotDecrypt(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	victim := e.createCC(s, acme, "victim")
	thief := e.createCC(s, globex, "thief")
	login := e.createLogin(s, acme, "login")
	ctx := context.Background()
	for name, sql := range map[string]string{
		"another row's access token":            "update authorizations set access_token = (select access_token from authorizations where id = $1) where id = $2",
		"the refresh token as the access token": "update authorizations set access_token = (select refresh_token from authorizations where id = $1) where id = $2",
	} {
		t.Run(name, func(t *testing.T) {
			from, to := victim.ID, thief.ID
			if name == "the refresh token as the access token" {
				from, to = login.ID, login.ID
			}
			if _, err := e.pool.Exec(ctx, sql, from, to); err != nil {
				t.Fatal(err)
			}
			fresh := e.store() // nothing cached
			tenantOf := globex
			if to == login.ID {
				tenantOf = acme
			}
			_, err := fresh.Token(ctxT(t), tenantOf, to)
			if !errors.Is(err, secrets.ErrDecrypt) {
				t.Fatalf("got %v, want a decryption failure", err)
			}
			if _, ok := errors.AsType[*outcomes.AuthorizationError](err); ok {
				t.Fatal("a decryption failure must be a plain error (onError), not an authorization failure")
			}
		})
	}
	if _, err := e.store().Token(ctxT(t), acme, victim.ID); err != nil {
		t.Fatalf("the victim's own row: %v", err)
	}
}

func TestRotateKeysLeavesEveryAuthorizationUsable(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	var ids []string
	for _, name := range []string{"a", "b", "c"} {
		ids = append(ids, e.createCC(s, acme, "cc "+name).ID)
		ids = append(ids, e.createLogin(s, acme, "login "+name).ID)
	}
	pending, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{Name: "pending", Kind: authstore.KindWebexLogin, BaseURL: e.sim.BaseURL(), Domain: "acme"})
	if err != nil {
		t.Fatal(err)
	}

	// The new key goes first in the ring; the old one stays to decrypt.
	both := ringOf(t, keySpec("k2", 2)+","+keySpec("k1", 1))
	res, err := authstore.RotateKeys(ctxT(t), e.pool, both, 2, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Authorizations != 7 || res.States != 1 || res.Remaining != 0 {
		t.Fatalf("rotated %+v, want 7 authorizations, 1 state, 0 remaining", res)
	}
	rows, err := e.pool.Query(context.Background(), `select key_id, tenant_secret, access_token, refresh_token from authorizations
		union all select key_id, verifier, null, null from oauth_states`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var keyID string
		var cts [3][]byte
		if err := rows.Scan(&keyID, &cts[0], &cts[1], &cts[2]); err != nil {
			t.Fatal(err)
		}
		for _, ct := range cts {
			if id, _ := secrets.KeyID(ct); ct != nil && id != "k2" {
				t.Fatalf("a ciphertext is still under %q", id)
			}
		}
		if keyID != "k2" {
			t.Fatalf("row key_id %q", keyID)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	// With the old key gone, every authorization still works, refreshes included, and
	// the pending login still completes.
	onlyNew := e.store(func(o *authstore.Options) { o.Keys = ringOf(t, keySpec("k2", 2)) })
	for _, id := range ids {
		c, err := onlyNew.Token(ctxT(t), acme, id)
		if err == nil {
			c, err = onlyNew.Refresh(ctxT(t), acme, id, c.AccessToken)
		}
		if err != nil || e.works(c) != nil {
			t.Fatalf("authorization %s after rotation: %v", id, err)
		}
	}
	if _, err := onlyNew.CompleteLogin(ctxT(t), e.login(pending.AuthorizeURL, "login")); err != nil {
		t.Fatalf("pending login after rotation: %v", err)
	}
	again, err := authstore.RotateKeys(ctxT(t), e.pool, ringOf(t, keySpec("k2", 2)), 2, time.Second)
	if err != nil || again.Authorizations != 0 || again.States != 0 {
		t.Fatalf("a second run found work: %+v %v", again, err)
	}
}

// docs/operations.md: a row left under a key that has left the ring "would need
// re-authorizing". Re-authorizing replaces the secrets that no longer decrypt, so it
// must not need to read them first.
func TestARowUnderADroppedKeyIsRecoveredByReauthorizing(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	cc := e.createCC(s, acme, "cc")
	login := e.createLogin(s, acme, "login")

	onlyNew := e.store(func(o *authstore.Options) { o.Keys = ringOf(t, keySpec("k2", 2)) })
	if _, err := onlyNew.Token(ctxT(t), acme, cc.ID); !errors.Is(err, secrets.ErrDecrypt) {
		t.Fatalf("under a dropped key: %v, want a decryption failure", err)
	}

	// A client-credentials authorization given its secret again.
	if _, err := onlyNew.Reauthorize(ctxT(t), acme, authstore.ActorAPI, cc.ID, authstore.ReauthorizeRequest{TenantSecret: secrets.New(ccSecret)}); err != nil {
		t.Fatalf("re-authorize client credentials with the secret: %v", err)
	}
	// A Webex login signed in again.
	st, err := onlyNew.Reauthorize(ctxT(t), acme, authstore.ActorAPI, login.ID, authstore.ReauthorizeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := onlyNew.CompleteLogin(ctxT(t), e.login(st.AuthorizeURL, "login")); err != nil {
		t.Fatalf("complete the new login: %v", err)
	}
	for _, id := range []string{cc.ID, login.ID} {
		c, err := onlyNew.Token(ctxT(t), acme, id)
		if err != nil || e.works(c) != nil {
			t.Fatalf("authorization %s after re-authorizing: %v", id, err)
		}
	}
}

// One row that does not decrypt (under a key long gone, or damaged) must not keep
// rotate-keys from re-encrypting the others: it is reported by ID, and counted as
// remaining, while every other row moves to the new key.
func TestRotateKeysReencryptsEveryRowItCanAndNamesThoseItCannot(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	var good []string
	for _, name := range []string{"a", "b", "c"} {
		good = append(good, e.createCC(s, acme, name).ID)
	}
	lost := e.createCC(e.store(func(o *authstore.Options) { o.Keys = ringOf(t, keySpec("k0", 9)) }), acme, "lost")
	// First in ID order, so every batch meets it first.
	const first = "00000000-0000-4000-8000-000000000000"
	if _, err := e.pool.Exec(context.Background(), "update authorizations set id = $1 where id = $2", first, lost.ID); err != nil {
		t.Fatal(err)
	}

	res, err := authstore.RotateKeys(ctxT(t), e.pool, ringOf(t, keySpec("k2", 2)+","+keySpec("k1", 1)), 1, 0)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if res.Authorizations != 3 || res.Remaining != 1 || len(res.Unreadable) != 1 || !strings.Contains(res.Unreadable[0].Error(), first) {
		t.Fatalf("rotated %+v, want 3 authorizations, 1 remaining, %s unreadable", res, first)
	}
	onlyNew := e.store(func(o *authstore.Options) { o.Keys = ringOf(t, keySpec("k2", 2)) })
	for _, id := range good {
		if _, err := onlyNew.Token(ctxT(t), acme, id); err != nil {
			t.Fatalf("authorization %s after rotation: %v", id, err)
		}
	}
}

// Re-authorizing client credentials without a secret re-checks the stored one: when it
// does not decrypt, the caller is told to give it (a 422), not a bare internal error.
func TestReauthorizingAnUnreadableSecretAsksForItAgain(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	cc := e.createCC(e.store(), acme, "cc")
	onlyNew := e.store(func(o *authstore.Options) { o.Keys = ringOf(t, keySpec("k2", 2)) })
	_, err := onlyNew.Reauthorize(ctxT(t), acme, authstore.ActorAPI, cc.ID, authstore.ReauthorizeRequest{})
	if e := wantCode(t, err, authstore.ErrInvalid); !strings.Contains(e.Message, "tenant secret") {
		t.Fatalf("message %q does not ask for the tenant secret", e.Message)
	}
}

// A login state that does not decrypt holds back neither the other states (batches walk
// on past it) nor the run: rotate-keys reports it and returns at once, rather than
// retrying until its wait is over for a row no retry can change.
func TestRotateKeysLeavesAnUnreadableLoginStateAndReturnsWithoutWaiting(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	pending := func(s *authstore.Store, name string) { // a login started, not completed: its state is stored
		t.Helper()
		if _, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{Name: name, Kind: authstore.KindWebexLogin, BaseURL: e.sim.BaseURL(), Domain: "acme"}); err != nil {
			t.Fatal(err)
		}
	}
	s := e.store()
	for _, name := range []string{"a", "b", "c"} {
		pending(s, "login "+name)
	}
	pending(e.store(func(o *authstore.Options) { o.Keys = ringOf(t, keySpec("k0", 9)) }), "lost")
	// First in hash order, so every batch meets it first.
	if _, err := e.pool.Exec(context.Background(), `update oauth_states set state_hash = '\x00'::bytea where key_id = 'k0'`); err != nil {
		t.Fatal(err)
	}

	const wait = 20 * time.Second // within ctxT's 30 s
	start := time.Now()
	res, err := authstore.RotateKeys(ctxT(t), e.pool, ringOf(t, keySpec("k2", 2)+","+keySpec("k1", 1)), 1, wait)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if res.States != 3 || res.Remaining != 1 || len(res.Unreadable) != 1 || !strings.Contains(res.Unreadable[0].Error(), "login state") {
		t.Fatalf("rotated %+v, want 3 states, 1 remaining, 1 login state unreadable", res)
	}
	if took >= wait/2 {
		t.Fatalf("rotate-keys took %s with only an unreadable row left: it waited for the rows it cannot change", took.Round(time.Millisecond))
	}
	var left int
	if err := e.pool.QueryRow(context.Background(), `select count(*) from oauth_states where key_id <> 'k2'`).Scan(&left); err != nil || left != 1 {
		t.Fatalf("%d login states not under k2 (%v), want only the unreadable one", left, err)
	}
}

// holdRotation holds rotate-keys' first write of an authorization (its rows are read
// by then) until release is closed.
type holdRotation struct {
	once             sync.Once
	reached, release chan struct{}
}

func (h *holdRotation) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.HasPrefix(d.SQL, "update authorizations set tenant_secret") {
		h.once.Do(func() {
			close(h.reached)
			<-h.release
		})
	}
	return ctx
}

func (*holdRotation) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// rotate-keys runs while the service runs: a refresh that comes between its read of a
// row and its write must not be undone by that write. Writing back the tokens it read
// would store the refresh token the refresh just spent, and the next refresh would be a
// replay: invalid_grant, and the login lost.
func TestRotateKeysNeverWritesBackTokensARefreshReplacedMeanwhile(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	a := e.createLogin(e.store(), acme, "refreshed during a rotation")
	e.expire(a.ID)
	both := ringOf(t, keySpec("k2", 2)+","+keySpec("k1", 1))
	hold := &holdRotation{reached: make(chan struct{}), release: make(chan struct{})}
	rotated := make(chan error, 1)
	go func() {
		_, err := authstore.RotateKeys(ctxT(t), e.tracedPool(hold), both, 100, 0)
		rotated <- err
	}()
	reach(t, hold.reached, "rotate-keys reads the row")

	s := e.replica(func(o *authstore.Options) { o.Keys = both })
	refreshed := make(chan tokenResult, 1)
	go func() {
		c, err := s.Token(ctxT(t), acme, a.ID)
		refreshed <- tokenResult{c, err}
	}()
	waitFor(t, 10*time.Second, "the refresh is done or waits for the row", func() bool {
		return len(refreshed) > 0 || e.lockWaiters() > 0
	})
	close(hold.release)
	if err := <-rotated; err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if r := <-refreshed; r.err != nil {
		t.Fatalf("the refresh during the rotation: %v", r.err)
	}

	e.expire(a.ID)
	next, err := e.replica(func(o *authstore.Options) { o.Keys = both }).Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatalf("the next refresh: %v (status %s, %d invalid_grant answers)", err, e.status(a.ID), e.sim.InvalidGrants())
	}
	if err := e.works(next); err != nil {
		t.Fatal(err)
	}
	if n := e.sim.InvalidGrants(); n != 0 {
		t.Fatalf("%d invalid_grant answers: a spent refresh token was stored", n)
	}
}

// CheckKeys tells a ring that opens the stored authorizations from one whose key under
// a stored ID is another (pasted wrong), and names the IDs rows are sealed under that
// the ring does not hold; one damaged row does not make a right key wrong.
func TestCheckKeysFindsAWrongKeyAndAMissingOne(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	damaged := e.createCC(s, acme, "damaged").ID
	e.createCC(s, acme, "a")
	e.createCC(s, globex, "b")
	e.createCC(e.store(func(o *authstore.Options) { o.Keys = ringOf(t, keySpec("k0", 9)) }), acme, "old")
	// Damaged, and first in ID order, so it is the first row tried.
	if _, err := e.pool.Exec(ctxT(t), `update authorizations set tenant_secret = tenant_secret || '\x00'::bytea,
		id = '00000000-0000-4000-8000-000000000000' where id = $1`, damaged); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ring, want string
	}{
		{keySpec("k1", 1) + "," + keySpec("k0", 9), "{Wrong:[] Missing:[]}"},
		{keySpec("k2", 2) + "," + keySpec("k1", 1), "{Wrong:[] Missing:[{ID:k0 Rows:1}]}"},
		{keySpec("k1", 7) + "," + keySpec("k0", 9), "{Wrong:[{ID:k1 Rows:3}] Missing:[]}"},
		{keySpec("k2", 2), "{Wrong:[] Missing:[{ID:k0 Rows:1} {ID:k1 Rows:3}]}"},
	} {
		check, err := authstore.CheckKeys(ctxT(t), e.pool, ringOf(t, c.ring))
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%+v", check); got != c.want {
			t.Errorf("ring %s: %s, want %s", c.ring[:2], got, c.want)
		}
	}
}

// Every table and column of the schema, read as Postgres holds it (bytea as its bytes),
// holds no secret in clear at any step of authorizations' lives: created (client
// credentials, a Webex login, a login still pending with its verifier), refreshed,
// re-authorized, rotated to a new key, deleted. A table added by a later migration is
// read too.
func TestNoColumnOfAnyTableHoldsASecretInClearThroughAnAuthorizationsLife(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	ctx := ctxT(t)
	scan := func(step string) {
		t.Helper()
		cols, err := e.pool.Query(ctx, `select table_name, column_name, data_type from information_schema.columns
			where table_schema = current_schema() order by table_name, ordinal_position`)
		if err != nil {
			t.Fatal(err)
		}
		type column struct{ table, name, typ string }
		var all []column
		for cols.Next() {
			var c column
			if err := cols.Scan(&c.table, &c.name, &c.typ); err != nil {
				t.Fatal(err)
			}
			all = append(all, c)
		}
		if cols.Err() != nil || len(all) < 20 {
			t.Fatalf("read %d columns: %v", len(all), cols.Err())
		}
		for _, c := range all {
			expr := `"` + c.name + `"::text`
			if c.typ == "bytea" {
				expr = `encode("` + c.name + `", 'escape')` // printable bytes as they are
			}
			rows, err := e.pool.Query(ctx, `select `+expr+` from "`+c.table+`"`)
			if err != nil {
				t.Fatalf("%s.%s: %v", c.table, c.name, err)
			}
			for rows.Next() {
				var v *string
				if err := rows.Scan(&v); err != nil {
					t.Fatal(err)
				}
				for _, canary := range canaries {
					if v != nil && strings.Contains(*v, canary) {
						t.Errorf("%s: %s.%s holds %q in clear", step, c.table, c.name, canary)
					}
				}
			}
			if rows.Err() != nil {
				t.Fatal(rows.Err())
			}
		}
	}

	cc := e.createCC(s, acme, "cc")
	login := e.createLogin(s, acme, "login")
	if _, err := s.Create(ctx, acme, authstore.ActorAPI, authstore.CreateRequest{Name: "pending", Kind: authstore.KindWebexLogin, BaseURL: e.sim.BaseURL(), Domain: "acme"}); err != nil {
		t.Fatal(err)
	}
	scan("created")
	for _, id := range []string{cc.ID, login.ID} {
		e.expire(id)
		if _, err := s.Token(ctx, acme, id); err != nil {
			t.Fatal(err)
		}
	}
	scan("refreshed")
	if err := e.sim.ChangeTenantSecret("tenant-1", newCCSecret); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reauthorize(ctx, acme, authstore.ActorAPI, cc.ID, authstore.ReauthorizeRequest{TenantSecret: secrets.New(newCCSecret)}); err != nil {
		t.Fatal(err)
	}
	started, err := s.Reauthorize(ctx, acme, authstore.ActorAPI, login.ID, authstore.ReauthorizeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CompleteLogin(ctx, e.login(started.AuthorizeURL, "login")); err != nil {
		t.Fatal(err)
	}
	scan("re-authorized")
	if _, err := authstore.RotateKeys(ctx, e.pool, ringOf(t, keySpec("k2", 2)+","+keySpec("k1", 1)), 10, time.Second); err != nil {
		t.Fatal(err)
	}
	scan("rotated")
	for _, id := range []string{cc.ID, login.ID} {
		if err := s.Delete(ctx, acme, authstore.ActorAPI, id); err != nil {
			t.Fatal(err)
		}
	}
	scan("deleted")
}
