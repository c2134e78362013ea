package authstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noderuntime/noderuntime/internal/secrets"
)

// RotateResult counts what RotateKeys re-encrypted.
type RotateResult struct {
	Authorizations int // rows re-encrypted
	States         int // login states re-encrypted
	Remaining      int // rows still under an older key (locked for longer than the wait, or unreadable)
	// Unreadable says why each row that does not decrypt with the ring (sealed under a
	// key it does not hold, or damaged) was left as it is; they count in Remaining.
	Unreadable []error
}

// RotateKeys re-encrypts every authorization and login state that is not under the key
// ring's primary key, in batches of batchSize rows, each batch one short transaction.
// Rows another replica holds locked (a refresh in progress) are skipped and retried
// until wait has passed. A row that does not decrypt is left as it is and reported, so
// that it cannot hold back the others. Plaintexts do not change, so caches and version
// counters stay as they are; it is safe while the service runs, once every replica
// encrypts with the same primary key (see docs/authorizations.md).
func RotateKeys(ctx context.Context, pool *pgxpool.Pool, keys *secrets.KeyRing, batchSize int, wait time.Duration) (RotateResult, error) {
	if batchSize <= 0 {
		batchSize = 100
	}
	s := &Store{keys: keys}
	var res RotateResult
	deadline := time.Now().Add(wait)
	for {
		// Each pass walks the rows in key order from the start, so rows it skips (locked,
		// or unreadable) do not come back within the pass, and come back in the next.
		var unreadable []error
		after := ""
		for {
			n, last, err := s.rotateAuthorizations(ctx, pool, batchSize, after, &unreadable)
			if err != nil {
				return res, err
			}
			res.Authorizations += n
			if last == "" {
				break
			}
			after = last
		}
		var afterState []byte
		for {
			n, last, err := s.rotateStates(ctx, pool, batchSize, afterState, &unreadable)
			if err != nil {
				return res, err
			}
			res.States += n
			if last == nil {
				break
			}
			afterState = last
		}
		res.Unreadable = unreadable
		var left int
		err := pool.QueryRow(ctx, `select (select count(*) from authorizations where key_id <> $1)
			+ (select count(*) from oauth_states where key_id <> $1)`, keys.PrimaryID()).Scan(&left)
		if err != nil {
			return res, fmt.Errorf("rotate keys: count remaining: %w", err)
		}
		res.Remaining = left
		if left <= len(unreadable) || time.Now().After(deadline) {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// rotateAuthorizations re-encrypts one batch of the rows after the ID after (all when
// empty) and returns how many it re-encrypted and the last ID it saw ("" when none was
// left). Rows that do not decrypt are left as they are, and added to unreadable.
func (s *Store) rotateAuthorizations(ctx context.Context, pool *pgxpool.Pool, batch int, after string, unreadable *[]error) (int, string, error) {
	n, last := 0, ""
	var bad []error
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		n, last, bad = 0, "", nil
		var from *string // null: from the first row
		if after != "" {
			from = &after
		}
		rows, err := tx.Query(ctx, "select "+rowColumns+" from authorizations where key_id <> $1 and ($3::uuid is null or id > $3::uuid) order by id limit $2 for update skip locked",
			s.keys.PrimaryID(), batch, from)
		if err != nil {
			return err
		}
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*row, error) { return scanRow(r) })
		if err != nil {
			return err
		}
		for _, r := range list {
			last = r.id
			o, err := s.openRow(r)
			if errors.Is(err, secrets.ErrDecrypt) {
				bad = append(bad, err)
				continue
			}
			if err != nil {
				return err
			}
			sl, err := s.sealRow(r.id, o)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `update authorizations set tenant_secret = $2, access_token = $3, refresh_token = $4, key_id = $5
				where id = $1`, r.id, sl.tenantSecret, sl.accessToken, sl.refreshToken, sl.keyID); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, "", fmt.Errorf("rotate keys: authorizations: %w", err)
	}
	*unreadable = append(*unreadable, bad...)
	return n, last, nil
}

// rotateStates is rotateAuthorizations for login states, by state hash (after nil: from
// the first).
func (s *Store) rotateStates(ctx context.Context, pool *pgxpool.Pool, batch int, after []byte, unreadable *[]error) (int, []byte, error) {
	n := 0
	var last []byte
	var bad []error
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		n, last, bad = 0, nil, nil
		rows, err := tx.Query(ctx, "select state_hash, verifier from oauth_states where key_id <> $1 and state_hash > $3 order by state_hash limit $2 for update skip locked",
			s.keys.PrimaryID(), batch, append([]byte{}, after...))
		if err != nil {
			return err
		}
		type st struct{ hash, verifier []byte }
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (st, error) {
			var x st
			return x, r.Scan(&x.hash, &x.verifier)
		})
		if err != nil {
			return err
		}
		for _, x := range list {
			last = x.hash
			plain, err := s.keys.Decrypt(x.verifier, stateAAD(x.hash, colVerifier))
			if errors.Is(err, secrets.ErrDecrypt) {
				bad = append(bad, fmt.Errorf("a login state's verifier does not decrypt with this key ring: %w", err))
				continue
			}
			if err != nil {
				return err
			}
			ct, err := s.keys.Encrypt(plain, stateAAD(x.hash, colVerifier))
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "update oauth_states set verifier = $2, key_id = $3 where state_hash = $1", x.hash, ct, s.keys.PrimaryID()); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("rotate keys: login states: %w", err)
	}
	*unreadable = append(*unreadable, bad...)
	return n, last, nil
}
