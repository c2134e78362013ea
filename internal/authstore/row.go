package authstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// row is one authorizations row, secrets still sealed.
type row struct {
	id             string
	tenant         tenant.ID
	name           string
	kind           Kind
	status         Status
	statusReason   string
	baseURL        string
	region         string
	domain         string
	engageTenantID string
	tenantSecret   []byte
	accessToken    []byte
	refreshToken   []byte
	tokenExpiry    *time.Time
	keyID          string
	version        int64
	createdAt      time.Time
	updatedAt      time.Time
	backoffUntil   *time.Time // the token endpoint failed; no replica calls it before then
}

const rowColumns = `id::text, tenant, name, kind, status, status_reason, base_url, region, domain,
	engage_tenant_id, tenant_secret, access_token, refresh_token, token_expiry, key_id, version,
	created_at, updated_at, refresh_backoff_until`

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func scanRow(r pgx.Row) (*row, error) {
	var x row
	var t, kind, status string
	err := r.Scan(&x.id, &t, &x.name, &kind, &status, &x.statusReason, &x.baseURL, &x.region, &x.domain,
		&x.engageTenantID, &x.tenantSecret, &x.accessToken, &x.refreshToken, &x.tokenExpiry, &x.keyID, &x.version,
		&x.createdAt, &x.updatedAt, &x.backoffUntil)
	if err != nil {
		return nil, err
	}
	x.tenant, x.kind, x.status = tenant.ID(t), Kind(kind), Status(status)
	return &x, nil
}

// readRow reads t's authorization id, optionally locking it; pgx.ErrNoRows when t has
// no such authorization.
func readRow(ctx context.Context, q querier, t tenant.ID, id string, forUpdate bool) (*row, error) {
	sql := "select " + rowColumns + " from authorizations where id = $1 and tenant = $2"
	if forUpdate {
		sql += " for update"
	}
	return scanRow(q.QueryRow(ctx, sql, id, string(t)))
}

func (r *row) public() Authorization {
	return Authorization{
		ID: r.id, Name: r.name, Kind: r.kind, Status: r.status, StatusReason: r.statusReason,
		Region: r.region, BaseURL: r.baseURL, Domain: r.domain, TenantID: r.engageTenantID,
		CreatedAt: r.createdAt.UTC(), UpdatedAt: r.updatedAt.UTC(),
	}
}

// Columns holding ciphertexts, named in their associated data.
const (
	colTenantSecret = "tenant_secret"
	colAccessToken  = "access_token"
	colRefreshToken = "refresh_token"
	colVerifier     = "verifier"
)

// rowAAD binds a ciphertext to its row and column, so one copied elsewhere does not
// decrypt.
func rowAAD(id, column string) []byte { return []byte("authorizations/" + id + "/" + column) }

func stateAAD(stateHash []byte, column string) []byte {
	return []byte("oauth_states/" + hex.EncodeToString(stateHash) + "/" + column)
}

// seal encrypts v for (id, column); an empty secret is stored as NULL.
func (s *Store) seal(id, column string, v secrets.Value) ([]byte, error) {
	if v.IsZero() {
		return nil, nil
	}
	ct, err := s.keys.Encrypt([]byte(v.Reveal()), rowAAD(id, column))
	if err != nil {
		return nil, fmt.Errorf("encrypt %s: %w", column, err)
	}
	return ct, nil
}

// open decrypts the ciphertext of (id, column); NULL is the empty secret.
func (s *Store) open(id, column string, ct []byte) (secrets.Value, error) {
	if ct == nil {
		return secrets.Value{}, nil
	}
	plain, err := s.keys.Decrypt(ct, rowAAD(id, column))
	if err != nil {
		return secrets.Value{}, fmt.Errorf("decrypt %s of authorization %s: %w", column, id, err)
	}
	return secrets.New(string(plain)), nil
}

// opened is a row's secrets in clear.
type opened struct {
	tenantSecret, accessToken, refreshToken secrets.Value
}

func (s *Store) openRow(r *row) (opened, error) {
	var o opened
	var err error
	if o.tenantSecret, err = s.open(r.id, colTenantSecret, r.tenantSecret); err != nil {
		return o, err
	}
	if o.accessToken, err = s.open(r.id, colAccessToken, r.accessToken); err != nil {
		return o, err
	}
	if o.refreshToken, err = s.open(r.id, colRefreshToken, r.refreshToken); err != nil {
		return o, err
	}
	return o, nil
}

// sealed is a row's secrets, each sealed under the primary key.
type sealed struct {
	tenantSecret, accessToken, refreshToken []byte
	keyID                                   string
}

// sealRow seals every secret of a row anew, so the whole row is under one key.
func (s *Store) sealRow(id string, o opened) (sealed, error) {
	var x sealed
	var err error
	if x.tenantSecret, err = s.seal(id, colTenantSecret, o.tenantSecret); err != nil {
		return x, err
	}
	if x.accessToken, err = s.seal(id, colAccessToken, o.accessToken); err != nil {
		return x, err
	}
	if x.refreshToken, err = s.seal(id, colRefreshToken, o.refreshToken); err != nil {
		return x, err
	}
	x.keyID = s.keys.PrimaryID()
	return x, nil
}

// newID returns a random (version 4) UUID.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// normalizeID returns id in the canonical lower-case form, or false when it is not a
// UUID (such an ID is simply not found).
func normalizeID(id string) (string, bool) {
	if len(id) != 36 {
		return "", false
	}
	var out [36]byte
	lower := true // already canonical: id itself is the answer, no copy
	for i := 0; i < 36; i++ {
		c := id[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return "", false
			}
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			c += 'a' - 'A'
			lower = false
		default:
			return "", false
		}
		out[i] = c
	}
	if lower {
		return id, true
	}
	return string(out[:]), true
}
