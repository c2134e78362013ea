package authstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/secrets"
)

// KeyUse is a key ID the stored authorizations are sealed under, and how many.
type KeyUse struct {
	ID   string
	Rows int
}

// KeyCheck is what CheckKeys found in the stored authorizations.
type KeyCheck struct {
	// Wrong: the ring holds these IDs, but their keys open none of the rows tried (a key
	// pasted wrong, or an ID used again for another key).
	Wrong []KeyUse
	// Missing: rows are sealed under these IDs, which the ring does not hold (a key
	// dropped before rotate-keys moved every row off it).
	Missing []KeyUse
}

// keyCheckSample is how many rows per key ID CheckKeys tries: one opening is enough, and
// a few spare a right key the verdict of one damaged row.
const keyCheckSample = 5

// CheckKeys tells whether keys opens what the authorizations are sealed under, so that
// a ring with a wrong key is found when a replica starts, before it serves (and, in a
// rolling update, before the replicas with the right key are stopped). It reads a few
// rows per key ID and never reveals a secret.
func CheckKeys(ctx context.Context, pool *pgxpool.Pool, keys *secrets.KeyRing) (KeyCheck, error) {
	var check KeyCheck
	rows, err := pool.Query(ctx, `select key_id, count(*) from authorizations
		where tenant_secret is not null or access_token is not null or refresh_token is not null
		group by key_id order by key_id`)
	if err != nil {
		return check, fmt.Errorf("check keys: %w", database.Redact(err))
	}
	uses, err := pgx.CollectRows(rows, pgx.RowToStructByPos[KeyUse])
	if err != nil {
		return check, fmt.Errorf("check keys: %w", database.Redact(err))
	}
	s := &Store{keys: keys}
	for _, u := range uses {
		if !keys.Holds(u.ID) {
			check.Missing = append(check.Missing, u)
			continue
		}
		opens, err := s.opensAny(ctx, pool, u.ID)
		if err != nil {
			return check, err
		}
		if !opens {
			check.Wrong = append(check.Wrong, u)
		}
	}
	return check, nil
}

// opensAny reports whether the ring opens one of a few rows sealed under keyID.
func (s *Store) opensAny(ctx context.Context, pool *pgxpool.Pool, keyID string) (bool, error) {
	rows, err := pool.Query(ctx, `select id::text, tenant_secret, access_token, refresh_token from authorizations
		where key_id = $1 and (tenant_secret is not null or access_token is not null or refresh_token is not null)
		order by id limit $2`, keyID, keyCheckSample)
	if err != nil {
		return false, fmt.Errorf("check keys: %w", database.Redact(err))
	}
	defer rows.Close()
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.tenantSecret, &r.accessToken, &r.refreshToken); err != nil {
			return false, fmt.Errorf("check keys: %w", err)
		}
		if _, err := s.openRow(&r); err == nil {
			return true, nil
		}
	}
	return false, rows.Err()
}
