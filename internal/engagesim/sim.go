package engagesim

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"
)

// User is a person who can sign in on the Webex login form; their tokens act on Domain.
type User struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Domain   string `json:"domain"`
}

// OAuthClient is an application registered for the Webex login (noderuntime is one).
// A redirect_uri must match one of RedirectURIs exactly.
type OAuthClient struct {
	ID           string   `json:"id"`
	Secret       string   `json:"secret"`
	RedirectURIs []string `json:"redirectUris"`
}

// Tenant is a client-credentials identity of standalone Engage: its tokens act on Domain.
type Tenant struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
	Domain string `json:"domain"`
}

// Config configures a Sim. Zero durations take the defaults.
type Config struct {
	Users   []User
	Clients []OAuthClient
	Tenants []Tenant

	// AccessTokenTTL is the lifetime of Webex-login access tokens (default 1 h).
	AccessTokenTTL time.Duration
	// ClientCredentialsTTL is the lifetime of client-credentials tokens (default 3600 s).
	ClientCredentialsTTL time.Duration
	// RefreshTokenTTL bounds refresh tokens; zero: they never expire on their own.
	RefreshTokenTTL time.Duration
	// NoRefreshTokenRotation makes a refresh_token grant answer without a refresh_token
	// and leave the one presented valid, as a provider that does not rotate refresh
	// tokens does. False (the default): each refresh token works once.
	NoRefreshTokenRotation bool
	// CodeTTL is the lifetime of authorization codes (default 60 s).
	CodeTTL time.Duration
	// Now is the clock for token and code expiry; nil: time.Now.
	Now func() time.Time
	// Seed seeds the generator that decides percentage faults, so runs repeat.
	Seed uint64
	// KeepMessages, when positive, bounds the messages kept per conversation to the
	// newest ones, between KeepMessages and twice that: a load test appending for
	// minutes would otherwise grow the simulator's heap, and its garbage collection,
	// without end. Zero keeps them all, as Engage does.
	KeepMessages int
}

// Defaults.
const (
	DefaultAccessTokenTTL       = time.Hour
	DefaultClientCredentialsTTL = 3600 * time.Second
	DefaultCodeTTL              = 60 * time.Second
)

// Sim is an in-memory Engage. All methods are safe for concurrent use.
type Sim struct {
	accessTTL, ccTTL, refreshTTL, codeTTL time.Duration
	now                                   func() time.Time
	noRotation                            bool

	auth     authState
	store    store
	faults   faultSet
	counters counters

	handler  http.Handler
	inflight atomic.Int64

	mu        sync.Mutex // guards url and srv
	url       string
	srv       *httptest.Server
	done      chan struct{}
	closeOnce sync.Once
}

// New returns a Sim configured by cfg. It serves nothing until StartHTTPTest or until
// its Handler is mounted.
func New(cfg Config) *Sim {
	s := &Sim{
		accessTTL:  orDefault(cfg.AccessTokenTTL, DefaultAccessTokenTTL),
		ccTTL:      orDefault(cfg.ClientCredentialsTTL, DefaultClientCredentialsTTL),
		refreshTTL: cfg.RefreshTokenTTL,
		codeTTL:    orDefault(cfg.CodeTTL, DefaultCodeTTL),
		now:        cfg.Now,
		noRotation: cfg.NoRefreshTokenRotation,
		done:       make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.auth.init()
	s.store.init()
	s.store.keep = cfg.KeepMessages
	s.faults.init(cfg.Seed)
	s.counters.init()
	for _, u := range cfg.Users {
		s.AddUser(u)
	}
	for _, c := range cfg.Clients {
		s.AddClient(c)
	}
	for _, t := range cfg.Tenants {
		s.AddTenant(t)
	}
	s.handler = s.routes()
	return s
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Handler serves the whole simulator: OAuth, the Engage API and the admin API.
func (s *Sim) Handler() http.Handler { return s.handler }

// StartHTTPTest serves the simulator on a new httptest server on 127.0.0.1 and returns s.
// Close stops it.
func (s *Sim) StartHTTPTest() *Sim {
	srv := httptest.NewServer(s.handler)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		srv.Close()
		panic("engagesim: StartHTTPTest called twice")
	}
	s.srv = srv
	s.url = srv.URL
	return s
}

// SetURL tells the simulator where it is served when something other than StartHTTPTest
// serves its Handler (cmd/engagesim, noderuntime dev). Only the URL helpers use it.
func (s *Sim) SetURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.url = u
}

// URL is the root URL of the simulator, e.g. http://127.0.0.1:41234.
func (s *Sim) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// BaseURL is the Engage base URL: URL()+"/api/v1".
func (s *Sim) BaseURL() string { return s.URL() + "/api/v1" }

// AuthorizeURL is the Webex login authorization endpoint.
func (s *Sim) AuthorizeURL() string { return s.URL() + "/oauth/authorize" }

// TokenURL is the Webex login token endpoint.
func (s *Sim) TokenURL() string { return s.URL() + "/oauth/token" }

// ClientCredentialsTokenURL is the standalone token endpoint: BaseURL()+"/oauth/token".
func (s *Sim) ClientCredentialsTokenURL() string { return s.BaseURL() + "/oauth/token" }

// AdminURL is the root of the admin API.
func (s *Sim) AdminURL() string { return s.URL() + "/_sim/" }

// Close ends injected latencies still waiting and stops the httptest server, if any.
func (s *Sim) Close() {
	s.closeOnce.Do(func() { close(s.done) })
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// CloseClientConnections closes every connection to the httptest server, as a restart of
// Engage's load balancer would.
func (s *Sim) CloseClientConnections() {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv != nil {
		srv.CloseClientConnections()
	}
}

// ErrNotFound is returned by the Go API for an unknown user, tenant or conversation.
var ErrNotFound = errors.New("engagesim: not found")

func newID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}

// expiresIn is the expires_in of a lifetime: whole seconds, rounded up, at least 1, so a
// client never reads "0" (which OAuth clients take as "never expires").
func expiresIn(d time.Duration) int64 {
	secs := int64(math.Ceil(d.Seconds()))
	if secs < 1 {
		return 1
	}
	return secs
}

func notFound(what, name string) error { return fmt.Errorf("%w: %s %q", ErrNotFound, what, name) }
