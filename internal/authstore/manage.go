package authstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/oauth2"
	"golang.org/x/text/unicode/norm"

	"github.com/noderuntime/noderuntime/internal/names"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

const maxNameLength = 100

// validateName returns the name as stored: trimmed, every run of space within it one
// U+0020 (so "a\u00a0b" or "a  b", which HTML shows as "a b", is "a b"), and in Unicode
// normalization form C (so "cafe\u0301" is "caf\u00e9"). Names that look the same are
// then the same name, and unique in the tenant.
func validateName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case strings.IndexFunc(name, unicode.IsControl) >= 0 || !utf8.ValidString(name):
		return "", errorf(ErrInvalid, "name must be printable text")
	case strings.IndexFunc(name, isBidiControl) >= 0:
		// The login confirmation page shows the name to someone who may be of another
		// organisation: a name must not reorder the text around it.
		return "", errorf(ErrInvalid, "name must not hold bidirectional control characters")
	case hasInvisibleFormat(name):
		// Nor look like another name: "acme\u200b" would be a second "acme".
		return "", errorf(ErrInvalid, "name must not hold invisible characters (zero-width space, soft hyphen, byte order mark)")
	}
	name = norm.NFC.String(strings.Join(strings.FieldsFunc(name, unicode.IsSpace), " "))
	switch {
	case name == "":
		return "", errorf(ErrInvalid, "name is required")
	case utf8.RuneCountInString(name) > maxNameLength:
		return "", errorf(ErrInvalid, fmt.Sprintf("name is longer than %d characters", maxNameLength))
	}
	return name, nil
}

// hasInvisibleFormat reports a format character (Unicode category Cf: zero-width
// spaces, soft hyphen, byte order mark, word joiner...) in name, but for the two joiners
// where they shape text: U+200C and U+200D between two characters beyond ASCII (Persian
// and Indic words, emoji sequences such as a family), never at either end or beside
// ASCII, where they only hide.
func hasInvisibleFormat(name string) bool {
	prev := rune(-1)
	for i, r := range name {
		if unicode.Is(unicode.Cf, r) {
			if r != '\u200c' && r != '\u200d' {
				return true
			}
			next, _ := utf8.DecodeRuneInString(name[i+utf8.RuneLen(r):])
			if prev < utf8.RuneSelf || next == utf8.RuneError || next < utf8.RuneSelf || unicode.IsSpace(prev) || unicode.IsSpace(next) ||
				unicode.Is(unicode.Cf, prev) || unicode.Is(unicode.Cf, next) {
				return true
			}
		}
		prev = r
	}
	return false
}

// isBidiControl reports the characters that change the display order of text (Unicode
// UAX #9: embeddings, overrides, isolates and the implicit marks).
func isBidiControl(r rune) bool {
	switch {
	case r == '\u061c', r == '\u200e', r == '\u200f':
		return true
	case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}

// Create adds an authorization for t. A Webex login starts pending and answers the URL
// the user must visit; client credentials are checked at the token endpoint at once,
// and nothing is stored when they are refused.
func (s *Store) Create(ctx context.Context, t tenant.ID, actor Actor, req CreateRequest) (Started, error) {
	// First: the checks below quote what they refuse.
	if err := secretInShownField(req.TenantSecret, "name", req.Name, "domain", req.Domain, "tenantId", req.TenantID,
		"baseUrl", req.BaseURL, "region", req.Region); err != nil {
		return Started{}, err
	}
	name, err := validateName(req.Name)
	if err != nil {
		return Started{}, err
	}
	domain := strings.TrimSpace(req.Domain)
	if domain == "" {
		return Started{}, errorf(ErrInvalid, "domain is required: the Engage domain (letters, digits, '.', '_' or '-')")
	}
	if !names.ValidLead(domain, 128) {
		return Started{}, errorf(ErrInvalid, "domain "+quote(domain)+" is not an Engage domain: at most 128 letters, digits, '.', '_' or '-', the first a letter or digit")
	}
	switch req.Kind {
	case KindWebexLogin:
		if !s.webex.Enabled() {
			return Started{}, errorf(ErrWebexDisabled, "the webex-login kind is not configured on this service (WEBEX_CLIENT_ID and friends); use client-credentials")
		}
	case KindClientCredentials:
		if strings.TrimSpace(req.TenantID) == "" || req.TenantSecret.IsZero() {
			return Started{}, errorf(ErrInvalid, "client-credentials needs tenantId and tenantSecret")
		}
		if !validTenantID(req.TenantID) {
			return Started{}, errTenantID
		}
		if len(req.TenantSecret.Reveal()) > maxTenantSecretLength {
			return Started{}, errTenantSecretLength
		}
	default:
		return Started{}, errorf(ErrInvalid, `kind must be "webex-login" or "client-credentials"`)
	}
	base, region, err := s.resolveBase(req.Region, req.BaseURL)
	if err != nil {
		return Started{}, err
	}
	if req.Kind == KindWebexLogin && (strings.TrimSpace(req.TenantID) != "" || !req.TenantSecret.IsZero()) {
		// Dropping them would store something other than what was asked for.
		return Started{}, errWebexCredentials
	}
	if taken, err := s.nameTaken(ctx, t, name); err != nil {
		return Started{}, err
	} else if taken {
		return Started{}, conflict(name)
	}

	id := newID()
	r := &row{id: id, tenant: t, name: name, kind: req.Kind, status: StatusPending, baseURL: base, region: region, domain: domain}
	var o opened
	var got tokens
	if req.Kind == KindClientCredentials {
		r.engageTenantID = strings.TrimSpace(req.TenantID)
		o.tenantSecret = req.TenantSecret
		if got, err = s.fetchClientCredentials(ctx, base, r.engageTenantID, o.tenantSecret); err != nil {
			return Started{}, providerRefusal(err)
		}
		o.accessToken = got.access
		r.status = StatusActive
	} else {
		r.statusReason = "waiting for the Webex login to complete"
	}

	sl, err := s.sealRow(id, o)
	if err != nil {
		return Started{}, err
	}
	var out Started
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var expiry *time.Time
		if !got.expiry.IsZero() {
			expiry = &got.expiry
		}
		err := tx.QueryRow(ctx, `insert into authorizations (id, tenant, name, kind, status, status_reason, base_url, region, domain,
			engage_tenant_id, tenant_secret, access_token, token_expiry, key_id)
			values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
			returning created_at, updated_at`,
			id, string(t), name, string(r.kind), string(r.status), r.statusReason, base, region, domain,
			r.engageTenantID, sl.tenantSecret, sl.accessToken, expiry, sl.keyID).Scan(&r.createdAt, &r.updatedAt)
		if err != nil {
			return err
		}
		if err := audit(ctx, tx, t, id, "created", actor, map[string]any{"name": name, "kind": r.kind, "baseUrl": base, "domain": domain}); err != nil {
			return err
		}
		out.Authorization = r.public()
		if r.kind == KindClientCredentials {
			return audit(ctx, tx, t, id, "authorized", actor, nil)
		}
		out.AuthorizeURL, err = s.startLogin(ctx, tx, t, id)
		return err
	})
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "23505" { // unique_violation
		return Started{}, conflict(name)
	}
	if err != nil {
		return Started{}, fmt.Errorf("create authorization: %w", err)
	}
	s.logger.InfoContext(ctx, "authorization created", slog.String("authorizationId", id), slog.String("tenant", string(t)),
		slog.String("kind", string(r.kind)), slog.String("status", string(r.status)), slog.String("actor", string(actor)))
	return out, nil
}

// maxTenantIDLength bounds an Engage tenant ID: it is stored in the row and sent to the
// token endpoint.
const maxTenantIDLength = 256

// validTenantID reports whether an Engage tenant ID (trimmed) is printable text of at
// most maxTenantIDLength bytes: a control character (NUL, which Postgres text cannot
// hold) would fail only after the token endpoint granted a token, a 500 for a typo.
func validTenantID(id string) bool {
	id = strings.TrimSpace(id)
	return id != "" && len(id) <= maxTenantIDLength && utf8.ValidString(id) && strings.IndexFunc(id, unicode.IsControl) < 0
}

var errTenantID = errorf(ErrInvalid, fmt.Sprintf("tenantId must be printable text of at most %d bytes", maxTenantIDLength))

// maxTenantSecretLength bounds a tenant secret, far above any real one: a longer one
// would go to the token endpoint in a header its server refuses (431), which reads as
// the provider refusing the credentials.
const maxTenantSecretLength = 4096

var errTenantSecretLength = errorf(ErrInvalid, fmt.Sprintf("tenantSecret is over %d bytes", maxTenantSecretLength))

// HoldsSecret reports whether v, a value the service stores in clear and shows back
// (a name, a domain, a tenant ID, a base URL), holds the tenant secret: a paste into the
// wrong field, or a password manager that filled two. A secret shorter than
// minSecretRedactedInPlace is found inside ordinary words, so only a field that is the
// secret counts then.
func HoldsSecret(v string, secret secrets.Value) bool {
	sv := strings.TrimSpace(secret.Reveal())
	if sv == "" {
		return false
	}
	if len(sv) < minSecretRedactedInPlace {
		return strings.TrimSpace(v) == sv
	}
	return strings.Contains(v, sv)
}

// secretInShownField refuses a request whose tenant secret was also typed into one of
// fields (name, then value): stored in clear, listed, audited and shown back, the field
// would hand the secret to anyone who can read them. The error names the field, never
// what it holds.
func secretInShownField(secret secrets.Value, fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if HoldsSecret(fields[i+1], secret) {
			e := errorf(ErrInvalid, "the tenantSecret was also given in "+fields[i]+", which is stored in clear and shown back: give the secret only as tenantSecret")
			e.SecretIn = fields[i]
			return e
		}
	}
	return nil
}

// errWebexCredentials refuses a tenant ID or secret given for a Webex login, whose
// tokens come from the login: the caller may have meant client-credentials.
var errWebexCredentials = errorf(ErrInvalid, "tenantId and tenantSecret are for client-credentials; a webex-login gets its tokens from the Webex login, so leave them out")

func conflict(name string) error {
	return errorf(ErrConflict, "an authorization named "+quote(name)+" already exists")
}

func (s *Store) nameTaken(ctx context.Context, t tenant.ID, name string) (bool, error) {
	var taken bool
	err := s.pool.QueryRow(ctx, "select exists (select 1 from authorizations where tenant = $1 and name = $2)", string(t), name).Scan(&taken)
	if err != nil {
		return false, fmt.Errorf("check name: %w", err)
	}
	return taken, nil
}

// providerRefusal turns a failed client-credentials check into the caller's answer.
func providerRefusal(err error) error {
	pe, ok := errors.AsType[*providerError](err)
	if !ok {
		return err
	}
	if pe.final || (pe.status >= 400 && pe.status < 500 && pe.status != 429) {
		msg := "the token endpoint refused the credentials"
		if pe.code != "" {
			msg += ": " + pe.code
		}
		if pe.desc != "" {
			msg += " (" + pe.desc + ")"
		}
		return &Error{Code: ErrProviderRejected, Message: msg, ProviderError: pe.code, ProviderDescription: pe.desc}
	}
	return &Error{Code: ErrProviderUnavailable, Message: "the token endpoint did not grant a token: " + strings.TrimPrefix(pe.Error(), "token endpoint: ") + "; try again"}
}

// startLogin records a fresh single-use state with its PKCE verifier and returns the
// provider's authorization URL. Only the state's hash is stored.
func (s *Store) startLogin(ctx context.Context, q querier, t tenant.ID, id string) (string, error) {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	state := base64.RawURLEncoding.EncodeToString(raw)
	hash := sha256.Sum256([]byte(state))
	verifier := oauth2.GenerateVerifier()
	ct, err := s.keys.Encrypt([]byte(verifier), stateAAD(hash[:], colVerifier))
	if err != nil {
		return "", fmt.Errorf("encrypt verifier: %w", err)
	}
	// Housekeeping: states long past use (kept a day so an expired one still reads as
	// expired rather than unknown).
	if _, err := q.Exec(ctx, "delete from oauth_states where expires_at < now() - interval '1 day'"); err != nil {
		return "", err
	}
	_, err = q.Exec(ctx, `insert into oauth_states (state_hash, authorization_id, tenant, verifier, key_id, expires_at)
		values ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))`,
		hash[:], id, string(t), ct, s.keys.PrimaryID(), s.stateTTL.Seconds())
	if err != nil {
		return "", fmt.Errorf("store login state: %w", err)
	}
	return s.webexConfig().AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), nil
}

// List returns t's authorizations by name, ignoring case (then as written). Sorted here,
// not by the database, whose collation may put every capital letter first.
func (s *Store) List(ctx context.Context, t tenant.ID) ([]Authorization, error) {
	rows, err := s.pool.Query(ctx, "select "+rowColumns+" from authorizations where tenant = $1", string(t))
	if err != nil {
		return nil, fmt.Errorf("list authorizations: %w", err)
	}
	defer rows.Close()
	out := []Authorization{}
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return nil, fmt.Errorf("list authorizations: %w", err)
		}
		out = append(out, r.public())
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list authorizations: %w", err)
	}
	slices.SortFunc(out, func(a, b Authorization) int {
		return cmp.Or(cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Get returns one of t's authorizations; a missing, malformed or foreign ID is
// ErrNotFound.
func (s *Store) Get(ctx context.Context, t tenant.ID, authorizationID string) (Authorization, error) {
	id, ok := normalizeID(authorizationID)
	if !ok {
		return Authorization{}, errNotFound
	}
	r, err := readRow(ctx, s.pool, t, id, false)
	if errors.Is(err, pgx.ErrNoRows) {
		return Authorization{}, errNotFound
	}
	if err != nil {
		return Authorization{}, fmt.Errorf("read authorization: %w", err)
	}
	return r.public(), nil
}

// Delete removes one of t's authorizations. Every replica forgets it within a second
// (NOTIFY); its audit trail stays.
func (s *Store) Delete(ctx context.Context, t tenant.ID, actor Actor, authorizationID string) error {
	id, ok := normalizeID(authorizationID)
	if !ok {
		return errNotFound
	}
	var name string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "delete from authorizations where id = $1 and tenant = $2 returning name", id, string(t)).Scan(&name); err != nil {
			return err
		}
		if err := audit(ctx, tx, t, id, "deleted", actor, map[string]any{"name": name}); err != nil {
			return err
		}
		return notify(ctx, tx, id)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return errNotFound
	}
	if err != nil {
		return fmt.Errorf("delete authorization: %w", err)
	}
	s.cache.invalidate(id)
	s.logger.InfoContext(ctx, "authorization deleted", slog.String("authorizationId", id), slog.String("tenant", string(t)), slog.String("actor", string(actor)))
	return nil
}

// Reauthorize starts a new Webex login for an authorization (it stays as it is until
// the login completes), or checks client credentials again, new ones if given: on
// success the authorization is active with a fresh token; on refusal nothing changes.
func (s *Store) Reauthorize(ctx context.Context, t tenant.ID, actor Actor, authorizationID string, req ReauthorizeRequest) (Started, error) {
	id, ok := normalizeID(authorizationID)
	if !ok {
		return Started{}, errNotFound
	}
	r, err := readRow(ctx, s.pool, t, id, false)
	if errors.Is(err, pgx.ErrNoRows) {
		return Started{}, errNotFound
	}
	if err != nil {
		return Started{}, fmt.Errorf("read authorization: %w", err)
	}
	if err := secretInShownField(req.TenantSecret, "tenantId", req.TenantID); err != nil {
		return Started{}, err
	}
	if !s.allowedBase(r.baseURL) {
		return Started{}, errorf(ErrBaseURLNotAllowed, "the authorization's Engage base URL "+quote(r.baseURL)+" is not on the allowlist (ENGAGE_ALLOWED_BASE_URLS); delete it and add it again with an allowed one")
	}
	if r.kind == KindWebexLogin {
		if !s.webex.Enabled() {
			return Started{}, errorf(ErrWebexDisabled, "the webex-login kind is not configured on this service")
		}
		if req.CredentialsGiven || strings.TrimSpace(req.TenantID) != "" || !req.TenantSecret.IsZero() {
			return Started{}, errWebexCredentials
		}
		var out Started
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var err error
			if out.AuthorizeURL, err = s.startLogin(ctx, tx, t, id); err != nil {
				return err
			}
			return audit(ctx, tx, t, id, "reauthorize_started", actor, nil)
		})
		if errors.Is(err, pgx.ErrNoRows) || isForeignKeyViolation(err) {
			return Started{}, errNotFound // deleted meanwhile
		}
		if err != nil {
			return Started{}, fmt.Errorf("reauthorize: %w", err)
		}
		out.Authorization = r.public()
		return out, nil
	}

	// The tokens are replaced and a secret given replaces the stored one: read only what
	// is kept, so a row under a key that has left the ring is recovered by giving the
	// secret again.
	var o opened
	var storedSecret secrets.Value
	if req.TenantSecret.IsZero() {
		storedSecret, err = s.open(r.id, colTenantSecret, r.tenantSecret)
		if errors.Is(err, secrets.ErrDecrypt) {
			// Under a key that has left the ring (or damaged): only the caller can help.
			s.logger.WarnContext(ctx, "re-authorization refused: the stored tenant secret does not decrypt", slog.String("authorizationId", id),
				slog.String("tenant", string(t)), slog.String("error", err.Error()))
			return Started{}, errorf(ErrInvalid, "the stored tenant secret cannot be decrypted with this service's encryption keys; re-authorize with the tenant secret")
		}
		if err != nil {
			return Started{}, err
		}
		// The stored secret typed as the tenant ID, the secret field left empty to keep it.
		if err := secretInShownField(storedSecret, "tenantId", req.TenantID); err != nil {
			return Started{}, err
		}
		o.tenantSecret = storedSecret
	} else {
		if len(req.TenantSecret.Reveal()) > maxTenantSecretLength {
			return Started{}, errTenantSecretLength
		}
		o.tenantSecret = req.TenantSecret
	}
	if strings.TrimSpace(req.TenantID) != "" && !validTenantID(req.TenantID) {
		return Started{}, errTenantID
	}
	tenantID := r.engageTenantID
	if v := strings.TrimSpace(req.TenantID); v != "" {
		tenantID = v
	}
	got, err := s.fetchClientCredentials(ctx, r.baseURL, tenantID, o.tenantSecret)
	if err != nil {
		return Started{}, providerRefusal(err)
	}
	o.accessToken, o.refreshToken = got.access, secrets.Value{}
	sl, err := s.sealRow(id, o)
	if err != nil {
		return Started{}, err
	}
	var expiry *time.Time
	if !got.expiry.IsZero() {
		expiry = &got.expiry
	}
	var updated *row
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The grant was asked for with credentials read without a lock. If what this
		// request kept of them changed meanwhile (another re-authorization stored a new
		// secret), writing them back would undo that change: refuse instead. A refresh
		// changes only the token, and does not conflict.
		cur, err := readRow(ctx, tx, t, id, true)
		if err != nil {
			return err
		}
		if err := s.credentialsKept(cur, r.engageTenantID, storedSecret, req); err != nil {
			return err
		}
		updated, err = scanRow(tx.QueryRow(ctx, `update authorizations set engage_tenant_id = $3, tenant_secret = $4, access_token = $5,
			refresh_token = null, token_expiry = $6, key_id = $7, status = 'active', status_reason = '', version = version + 1, updated_at = now(),
			refresh_backoff_until = null
			where id = $1 and tenant = $2 returning `+rowColumns, id, string(t), tenantID, sl.tenantSecret, sl.accessToken, expiry, sl.keyID))
		if err != nil {
			return err
		}
		if err := audit(ctx, tx, t, id, "authorized", actor, map[string]any{"reauthorized": true}); err != nil {
			return err
		}
		return notify(ctx, tx, id)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Started{}, errNotFound
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return Started{}, e
	}
	if err != nil {
		return Started{}, fmt.Errorf("reauthorize: %w", err)
	}
	s.cache.invalidate(id)
	s.logger.InfoContext(ctx, "authorization re-authorized", slog.String("authorizationId", id), slog.String("tenant", string(t)), slog.String("actor", string(actor)))
	return Started{Authorization: updated.public()}, nil
}

// credentialsKept answers a conflict when cur, the row as locked for the write, no
// longer holds the stored credentials (tenant ID, secret) that a re-authorization read
// and did not replace with its own.
func (s *Store) credentialsKept(cur *row, tenantID string, secret secrets.Value, req ReauthorizeRequest) error {
	changed := strings.TrimSpace(req.TenantID) == "" && cur.engageTenantID != tenantID
	if !changed && req.TenantSecret.IsZero() {
		o, err := s.openRow(cur)
		if err != nil {
			return err
		}
		changed = subtle.ConstantTimeCompare([]byte(o.tenantSecret.Reveal()), []byte(secret.Reveal())) != 1
	}
	if changed {
		return errorf(ErrConflict, "the authorization's credentials changed while it was being re-authorized; check it and try again")
	}
	return nil
}

func isForeignKeyViolation(err error) bool {
	pgErr, ok := errors.AsType[*pgconn.PgError](err)
	return ok && pgErr.Code == "23503"
}

// CompleteLogin finishes a Webex login from the callback's query (code and state, or
// the provider's error and state). The state is spent whatever happens. Every failure
// is an *Error and leaves the authorization as it was.
func (s *Store) CompleteLogin(ctx context.Context, query url.Values) (Completed, error) {
	// The state, then the code, are spent on the way: a caller that leaves meanwhile (a
	// double-clicked confirm, a closed tab) must not cut the login short, or nothing
	// could store it again. Bounded as a refresh is: the exchange, the row lock, and
	// the reads and writes around them.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.lockTimeout+s.refreshTimeout+storeTimeout)
	defer cancel()
	state := query.Get("state")
	var st *loginState
	if state != "" && len(state) <= 512 {
		var err error
		if st, err = s.takeState(ctx, state); err != nil {
			return Completed{}, err
		}
	}
	if st == nil {
		// Before the provider's error: a refusal or a cancel of a login that does not
		// exist (or was spent already) denied nothing.
		return Completed{}, errorf(ErrStateUnknown, "this login link is unknown or was already used; start the authorization again")
	}
	if code := query.Get("error"); code != "" {
		desc := shorten(query.Get("error_description"), nil)
		if !validCode(code) {
			code = "invalid_error_code"
		}
		// The message, which the callback page shows, names the code only: these are
		// query parameters anyone can write into a login link, and the description is
		// free text (a tenant could put its own words on the service's page). The
		// description goes to the log.
		s.logger.InfoContext(ctx, "login refused at the provider or canceled", slog.String("authorizationId", st.authorizationID),
			slog.String("tenant", string(st.tenant)), slog.String("providerError", code), slog.String("providerDescription", desc))
		return Completed{}, &Error{Code: ErrLoginDenied, Message: "the login was not completed: the provider answered " + code,
			ProviderError: code, ProviderDescription: desc}
	}
	if !st.fresh {
		return Completed{}, errorf(ErrStateExpired, "this login took too long and expired; start the authorization again")
	}
	code := query.Get("code")
	if code == "" {
		return Completed{}, errorf(ErrExchangeFailed, "the provider sent no authorization code")
	}
	if !s.webex.Enabled() {
		return Completed{}, errorf(ErrExchangeFailed, "the Webex login is not configured on this service")
	}
	verifier, err := s.keys.Decrypt(st.verifier, stateAAD(st.hash, colVerifier))
	if err != nil {
		return Completed{}, fmt.Errorf("decrypt login verifier: %w", err)
	}
	got, err := s.exchangeCode(ctx, code, secrets.New(string(verifier)))
	if err != nil {
		pe, _ := errors.AsType[*providerError](err)
		msg := "the provider did not exchange the login code"
		e := &Error{Code: ErrExchangeFailed}
		if pe != nil {
			msg += ": " + strings.TrimPrefix(pe.Error(), "token endpoint: ")
			e.ProviderError, e.ProviderDescription = pe.code, pe.desc
		}
		e.Message = msg + "; start the authorization again"
		s.logger.WarnContext(ctx, "login code exchange failed", slog.String("authorizationId", st.authorizationID), slog.String("tenant", string(st.tenant)), slog.String("error", err.Error()))
		return Completed{}, e
	}

	updated, previous, err := s.storeLogin(ctx, st, got, false)
	var lost error // the last connection lost, the cause if the bound passes
	refused := false
	again := func(err error) bool {
		if err == nil || ctx.Err() != nil || errors.Is(err, secrets.ErrDecrypt) || errors.Is(err, pgx.ErrNoRows) {
			return false
		}
		if connectionLost(err) {
			return true
		}
		// A statement Postgres refused on a live connection (canceled by
		// pg_cancel_backend or a statement_timeout, a deadlock) is tried again once: a
		// refusal that lasts fails that try too, without holding the browser until the
		// bound.
		if _, ok := errors.AsType[*pgconn.PgError](err); ok && !refused {
			refused = true
			return true
		}
		return false
	}
	for wait := 50 * time.Millisecond; again(err); wait = min(2*wait, time.Second) {
		// Postgres restarted or failed over during the write, or refused it: the state
		// and the code are spent, so the login is stored again on a new connection or
		// never.
		lost = err
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		if ctx.Err() != nil {
			break // a try now could only fail on the bound, hiding why
		}
		s.pool.Reset() // it hands out connections the restart closed without a ping (load)
		var replaced Status
		updated, replaced, err = s.storeLogin(ctx, st, got, true)
		if replaced != "" {
			previous = replaced
		}
	}
	if err != nil && lost != nil && ctx.Err() != nil && !errors.Is(err, pgx.ErrNoRows) {
		err = fmt.Errorf("%w (still lost when the login's time ran out)", lost)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return Completed{}, errorf(ErrStateUnknown, "the authorization of this login was deleted")
	}
	if err != nil {
		return Completed{}, fmt.Errorf("complete login: %w", err)
	}
	s.cache.invalidate(updated.id)
	s.cache.recovered(updated.id)
	s.logger.InfoContext(ctx, "authorization logged in", slog.String("authorizationId", updated.id), slog.String("tenant", string(updated.tenant)))
	return Completed{Authorization: updated.public(), Reauthorized: previous != StatusPending}, nil
}

// storeLogin stores a login's tokens in its authorization, under the row lock, with an
// audit event and a notification to every replica; again says an earlier attempt lost
// its connection. It returns the row as stored and the status the login replaced.
func (s *Store) storeLogin(ctx context.Context, st *loginState, got tokens, again bool) (*row, Status, error) {
	var (
		updated  *row
		previous Status
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		r, err := readRow(ctx, tx, st.tenant, st.authorizationID, true)
		if err != nil {
			return err
		}
		previous = r.status
		if again {
			// The first write may have committed with only its answer lost: then the row
			// holds this login's token already, and storing it twice would audit it twice.
			if at, err := s.open(r.id, colAccessToken, r.accessToken); err == nil && !at.IsZero() && at.Reveal() == got.access.Reveal() {
				updated, previous = r, "" // what it replaced is the first attempt's to say
				return nil
			}
		}
		// Only the tenant secret is kept: the old tokens need not decrypt (a login is
		// how a row under a key that has left the ring is recovered).
		ts, err := s.open(r.id, colTenantSecret, r.tenantSecret)
		if err != nil {
			return err
		}
		sl, err := s.sealRow(r.id, opened{tenantSecret: ts, accessToken: got.access, refreshToken: got.refresh})
		if err != nil {
			return err
		}
		var expiry *time.Time
		if !got.expiry.IsZero() {
			expiry = &got.expiry
		}
		updated, err = scanRow(tx.QueryRow(ctx, `update authorizations set access_token = $2, refresh_token = $3, tenant_secret = $4,
			token_expiry = $5, key_id = $6, status = 'active', status_reason = '', version = version + 1, updated_at = now(),
			refresh_backoff_until = null
			where id = $1 returning `+rowColumns, r.id, sl.accessToken, sl.refreshToken, sl.tenantSecret, expiry, sl.keyID))
		if err != nil {
			return err
		}
		// The same detail as a client-credentials re-authorization, plus where it came from.
		detail := map[string]any{"previousStatus": r.status}
		if r.status != StatusPending {
			detail["reauthorized"] = true
		}
		if err := audit(ctx, tx, r.tenant, r.id, "authorized", ActorLogin, detail); err != nil {
			return err
		}
		return notify(ctx, tx, r.id)
	})
	return updated, previous, err
}

// Completed is a finished Webex login.
type Completed struct {
	Authorization
	// Reauthorized: the authorization had been active before (this login renewed it).
	Reauthorized bool
}

// LoginToConfirm is whose authorization a Webex login completes: what the person who
// signed in sees before it is stored.
type LoginToConfirm struct {
	Tenant          tenant.ID
	Name, Domain    string
	Reauthorization bool // the authorization was active or needed re-authorization
}

// PendingLogin reads the login the provider sent back, without spending its state. One
// tenant could send its login link to someone of another organisation, whose sign-in
// would then give that tenant their credentials; the callback shows this first, and
// CompleteLogin stores it only once the person confirms. Its errors are CompleteLogin's
// for a state that is unknown, already used or expired.
func (s *Store) PendingLogin(ctx context.Context, state string) (LoginToConfirm, error) {
	if state == "" || len(state) > 512 {
		return LoginToConfirm{}, errorf(ErrStateUnknown, "this login link is unknown or was already used; start the authorization again")
	}
	hash := sha256.Sum256([]byte(state))
	var (
		c         LoginToConfirm
		t, status string
		fresh     bool
	)
	err := s.pool.QueryRow(ctx, `select a.tenant, a.name, a.domain, a.status, o.expires_at > now()
		from oauth_states o join authorizations a on a.id = o.authorization_id
		where o.state_hash = $1`, hash[:]).Scan(&t, &c.Name, &c.Domain, &status, &fresh)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return LoginToConfirm{}, errorf(ErrStateUnknown, "this login link is unknown or was already used; start the authorization again")
	case err != nil:
		return LoginToConfirm{}, fmt.Errorf("read login state: %w", err)
	case !fresh:
		return LoginToConfirm{}, errorf(ErrStateExpired, "this login took too long and expired; start the authorization again")
	}
	c.Tenant, c.Reauthorization = tenant.ID(t), Status(status) != StatusPending
	return c, nil
}

type loginState struct {
	hash            []byte
	authorizationID string
	tenant          tenant.ID
	verifier        []byte
	fresh           bool
}

// takeState spends a state: it is deleted whether or not the login then succeeds.
func (s *Store) takeState(ctx context.Context, state string) (*loginState, error) {
	hash := sha256.Sum256([]byte(state))
	st := &loginState{hash: hash[:]}
	var t string
	err := s.pool.QueryRow(ctx, `delete from oauth_states where state_hash = $1
		returning authorization_id::text, tenant, verifier, expires_at > now()`, hash[:]).Scan(&st.authorizationID, &t, &st.verifier, &st.fresh)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read login state: %w", err)
	}
	st.tenant = tenant.ID(t)
	return st, nil
}
