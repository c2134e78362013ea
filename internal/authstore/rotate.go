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
	Remaining      int // rows still under an older key (locked for longer than the wait)
}

// RotateKeys re-encrypts every authorization and login state that is not under the key
// ring's primary key, in batches of batchSize rows, each batch one short transaction.
// Rows another replica holds locked (a refresh in progress) are skipped and retried
// until wait has passed. Plaintexts do not change, so caches and version counters stay
// as they are; it is safe while the service runs, once every replica encrypts with the
// same primary key (see docs/authorizations.md).
func RotateKeys(ctx context.Context, pool *pgxpool.Pool, keys *secrets.KeyRing, batchSize int, wait time.Duration) (RotateResult, error) {
	if batchSize <= 0 {
		batchSize = 100
	}
	s := &Store{keys: keys}
	var res RotateResult
	deadline := time.Now().Add(wait)
	for {
		for {
			n, err := s.rotateAuthorizations(ctx, pool, batchSize)
			if err != nil {
				return res, err
			}
			res.Authorizations += n
			if n == 0 {
				break
			}
		}
		for {
			n, err := s.rotateStates(ctx, pool, batchSize)
			if err != nil {
				return res, err
			}
			res.States += n
			if n == 0 {
				break
			}
		}
		var left int
		err := pool.QueryRow(ctx, `select (select count(*) from authorizations where key_id <> $1)
			+ (select count(*) from oauth_states where key_id <> $1)`, keys.PrimaryID()).Scan(&left)
		if err != nil {
			return res, fmt.Errorf("rotate keys: count remaining: %w", err)
		}
		res.Remaining = left
		if left == 0 || time.Now().After(deadline) {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *Store) rotateAuthorizations(ctx context.Context, pool *pgxpool.Pool, batch int) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "select "+rowColumns+" from authorizations where key_id <> $1 order by id limit $2 for update skip locked",
			s.keys.PrimaryID(), batch)
		if err != nil {
			return err
		}
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*row, error) { return scanRow(r) })
		if err != nil {
			return err
		}
		for _, r := range list {
			o, err := s.openRow(r)
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
		}
		n = len(list)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("rotate keys: authorizations: %w", err)
	}
	return n, nil
}

func (s *Store) rotateStates(ctx context.Context, pool *pgxpool.Pool, batch int) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "select state_hash, verifier from oauth_states where key_id <> $1 limit $2 for update skip locked",
			s.keys.PrimaryID(), batch)
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
			plain, err := s.keys.Decrypt(x.verifier, stateAAD(x.hash, colVerifier))
			if errors.Is(err, secrets.ErrDecrypt) {
				return fmt.Errorf("a login state's verifier does not decrypt with this key ring: %w", err)
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
		}
		n = len(list)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("rotate keys: login states: %w", err)
	}
	return n, nil
}
