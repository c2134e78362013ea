package engagesim

import (
	"crypto/rand"
	"crypto/subtle"
	"slices"
	"sync"
	"time"
)

// authState holds identities, codes and tokens under one lock.
//
// Revocation works two ways, as real providers do: every token belongs to a family (one
// login, and every rotation of its refresh token), revoked as a whole when a refresh
// token or code is replayed; and every token records the generation of its subject (user
// or tenant), which a credential change bumps, so all their tokens die at once.
type authState struct {
	mu      sync.Mutex
	users   map[string]*user
	clients map[string]OAuthClient
	tenants map[string]*tenant
	codes   map[string]*authCode
	access  map[string]*accessToken
	refresh map[string]*refreshToken
	issued  int // tokens issued since the last sweep of expired ones
}

type user struct {
	User
	gen int
}

type tenant struct {
	Tenant
	gen int
}

type family struct{ revoked bool }

type subjectKind int

const (
	subjectUser subjectKind = iota + 1
	subjectTenant
	subjectMinted // Sim.AccessToken: no credentials behind it
)

type subject struct {
	kind subjectKind
	name string
	gen  int
}

type accessToken struct {
	sub     subject
	domain  string
	fam     *family
	expires time.Time
}

type refreshToken struct {
	sub      subject
	domain   string
	clientID string
	scope    string
	fam      *family
	expires  time.Time // zero: no expiry
	used     bool
}

type authCode struct {
	clientID    string
	redirectURI string
	challenge   string
	scope       string
	sub         subject
	domain      string
	expires     time.Time
	used        bool
	fam         *family // the family its exchange started, revoked on replay
}

func (a *authState) init() {
	a.users = map[string]*user{}
	a.clients = map[string]OAuthClient{}
	a.tenants = map[string]*tenant{}
	a.codes = map[string]*authCode{}
	a.access = map[string]*accessToken{}
	a.refresh = map[string]*refreshToken{}
}

// current reports whether sub still holds the credentials a token was issued under.
// Caller holds a.mu.
func (a *authState) current(sub subject) bool {
	switch sub.kind {
	case subjectUser:
		u, ok := a.users[sub.name]
		return ok && u.gen == sub.gen
	case subjectTenant:
		t, ok := a.tenants[sub.name]
		return ok && t.gen == sub.gen
	case subjectMinted:
		return true
	}
	return false
}

func secretEqual(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// newToken returns an opaque token value with a readable prefix.
func newToken(prefix string) string { return prefix + rand.Text() }

// AddUser adds a Webex login user, or replaces one (revoking their tokens).
func (s *Sim) AddUser(u User) {
	a := &s.auth
	a.mu.Lock()
	defer a.mu.Unlock()
	gen := 0
	if old, ok := a.users[u.Username]; ok {
		gen = old.gen + 1
	}
	a.users[u.Username] = &user{User: u, gen: gen}
}

// AddClient registers an OAuth client, or replaces one.
func (s *Sim) AddClient(c OAuthClient) {
	a := &s.auth
	a.mu.Lock()
	defer a.mu.Unlock()
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	a.clients[c.ID] = c
}

// AddTenant adds a client-credentials tenant, or replaces one (revoking its tokens).
func (s *Sim) AddTenant(t Tenant) {
	a := &s.auth
	a.mu.Lock()
	defer a.mu.Unlock()
	gen := 0
	if old, ok := a.tenants[t.ID]; ok {
		gen = old.gen + 1
	}
	a.tenants[t.ID] = &tenant{Tenant: t, gen: gen}
}

// ChangePassword sets a user's password and revokes every token they hold: their refresh
// tokens answer invalid_grant, their access tokens 401.
func (s *Sim) ChangePassword(username, newPassword string) error {
	return s.revokeUser(username, func(u *user) { u.Password = newPassword })
}

// RevokeTokens revokes every token of a user, as "sign out everywhere" would.
func (s *Sim) RevokeTokens(username string) error {
	return s.revokeUser(username, func(*user) {})
}

// revokeUser applies change to a user and starts a new generation of their tokens, which
// revokes every token issued before.
func (s *Sim) revokeUser(username string, change func(*user)) error {
	a := &s.auth
	a.mu.Lock()
	defer a.mu.Unlock()
	u, ok := a.users[username]
	if !ok {
		return notFound("user", username)
	}
	change(u)
	u.gen++
	return nil
}

// ChangeTenantSecret sets a tenant's secret and revokes every token issued to it.
func (s *Sim) ChangeTenantSecret(tenantID, newSecret string) error {
	a := &s.auth
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.tenants[tenantID]
	if !ok {
		return notFound("tenant", tenantID)
	}
	t.Secret = newSecret
	t.gen++
	return nil
}

// AccessToken mints an access token for domain with the Webex-login lifetime, without
// any OAuth flow: for tests of the conversation API. RevokeAccessToken revokes it.
func (s *Sim) AccessToken(domain string) string {
	return s.issueAccess(subject{kind: subjectMinted}, domain, &family{}, s.accessTTL)
}

// RevokeAccessToken revokes one access token (and its family).
func (s *Sim) RevokeAccessToken(token string) {
	a := &s.auth
	a.mu.Lock()
	defer a.mu.Unlock()
	if t, ok := a.access[token]; ok {
		t.fam.revoked = true
	}
}

func (s *Sim) issueAccess(sub subject, domain string, fam *family, ttl time.Duration) string {
	tok := newToken("simat_")
	a := &s.auth
	a.mu.Lock()
	defer a.mu.Unlock()
	a.access[tok] = &accessToken{sub: sub, domain: domain, fam: fam, expires: s.now().Add(ttl)}
	a.sweepLocked(s.now())
	return tok
}

// sweepLocked drops expired and revoked access tokens and expired codes now and then,
// so a long-running simulator does not grow with every token it issued. Refresh tokens
// stay: a used or revoked one must still be told apart from an unknown one (its replay
// revokes its family). Caller holds a.mu.
func (a *authState) sweepLocked(now time.Time) {
	a.issued++
	if a.issued < 4096 {
		return
	}
	a.issued = 0
	for k, t := range a.access {
		if t.fam.revoked || !now.Before(t.expires) || !a.current(t.sub) {
			delete(a.access, k)
		}
	}
	for k, c := range a.codes {
		if !now.Before(c.expires) {
			delete(a.codes, k)
		}
	}
}

// tokenCheck is the verdict on a bearer token for a domain.
type tokenCheck int

const (
	tokenOK tokenCheck = iota
	tokenMissing
	tokenInvalid // unknown, expired or revoked
	tokenWrongDomain
)

func (s *Sim) checkAccess(token, domain string) tokenCheck {
	if token == "" {
		return tokenMissing
	}
	a := &s.auth
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.access[token]
	if !ok || t.fam.revoked || !s.now().Before(t.expires) || !a.current(t.sub) {
		return tokenInvalid
	}
	if t.domain != domain {
		return tokenWrongDomain
	}
	return tokenOK
}
