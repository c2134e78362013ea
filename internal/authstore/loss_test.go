package authstore_test

import (
	"context"
	"testing"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// failNextUpdate makes the next update of an authorization fail as a canceled statement
// does (SQLSTATE 57014: pg_cancel_backend, a statement_timeout), on a connection that
// stays up. The count is a sequence, which the failed statement's rollback does not undo:
// the update after it goes through.
func (e *env) failNextUpdate() {
	e.t.Helper()
	_, err := e.pool.Exec(context.Background(), `
		create sequence fail_next_update;
		create function fail_next_update() returns trigger language plpgsql as $$
		begin
			if nextval('fail_next_update') = 1 then
				raise exception 'canceling statement due to user request' using errcode = 'query_canceled';
			end if;
			return new;
		end $$;
		create trigger fail_next_update before update on authorizations for each row execute function fail_next_update();`)
	if err != nil {
		e.t.Fatal(err)
	}
}

// A refresh whose write is refused once after the provider answered, for another reason
// than a lost connection (the statement canceled), still stores the rotated pair: the
// provider has spent the stored refresh token, so dropping the pair would have the next
// refresh replay it (invalid_grant, the login lost).
func TestARefreshWhoseWriteIsCanceledAfterTheProviderAnsweredStillStoresTheNewPair(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	a := e.createLogin(s, acme, "write canceled during a refresh")
	spent := e.storedRefreshToken(a.ID)
	e.expire(a.ID)
	e.failNextUpdate()

	c, err := s.Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatalf("the refresh whose write was canceled: %v", err)
	}
	e.wantRotatedPairStored(t, c, a.ID, spent)

	e.expire(a.ID)
	next, err := e.store().Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatalf("the next refresh: %v (status %s, %d invalid_grant answers)", err, e.status(a.ID), e.sim.InvalidGrants())
	}
	if err := e.works(next); err != nil {
		t.Fatal(err)
	}
	if n := e.sim.InvalidGrants(); n != 0 || e.status(a.ID) != string(authstore.StatusActive) {
		t.Fatalf("%d invalid_grant answers, status %s: want 0, active", n, e.status(a.ID))
	}
}
