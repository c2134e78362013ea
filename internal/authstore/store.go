package authstore

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/noderuntime/noderuntime/internal/config"
	"github.com/noderuntime/noderuntime/internal/secrets"
)

// Webex is the Webex login integration: an OAuth client registered with the provider.
type Webex struct {
	AuthorizeURL string
	TokenURL     string
	ClientID     string
	ClientSecret secrets.Value
	Scopes       []string
	// RedirectURL is where the provider sends the user back: the public URL of
	// GET /oauth/callback.
	RedirectURL string
}

// Enabled reports whether the Webex login kind can be used.
func (w Webex) Enabled() bool { return w.ClientID != "" && w.AuthorizeURL != "" && w.TokenURL != "" }

// Options configure a Store. Pool and Keys are required; zero durations take the
// defaults below.
type Options struct {
	Pool   *pgxpool.Pool
	Keys   *secrets.KeyRing
	Logger *slog.Logger
	// Registerer receives the store's metrics; nil keeps them on a private registry.
	Registerer prometheus.Registerer
	// AllowedBaseURLs are the Engage base URLs an authorization may use
	// (ENGAGE_ALLOWED_BASE_URLS); no request is ever sent to another.
	AllowedBaseURLs []string
	Webex           Webex

	// RefreshSkew: an access token this close to its expiry is refreshed before use.
	RefreshSkew time.Duration
	// RefreshTimeout bounds one call of a token endpoint; keep it shorter than the
	// execution deadline so a refresh fails inside it.
	RefreshTimeout time.Duration
	// LockTimeout bounds the wait for the row lock that another replica's refresh holds.
	LockTimeout time.Duration
	// FailureBackoff is how long a token endpoint that failed (5xx, 429, timeout) is
	// left alone for an authorization: the negative cache.
	FailureBackoff time.Duration
	// CacheMaxAge bounds how long a token stays in the memory cache, whatever its expiry.
	CacheMaxAge time.Duration
	// StateTTL is the lifetime of a login's state.
	StateTTL time.Duration
	// HTTPClient calls the token endpoints. The default follows no redirects, so the
	// allowlist cannot be sidestepped.
	HTTPClient *http.Client
}

// Defaults of Options.
const (
	DefaultRefreshSkew    = 5 * time.Minute
	DefaultRefreshTimeout = 5 * time.Second
	DefaultFailureBackoff = 5 * time.Second
	DefaultCacheMaxAge    = 10 * time.Minute
	DefaultStateTTL       = 10 * time.Minute
)

// Store is the authorization store. It is safe for concurrent use; one per process.
type Store struct {
	pool    *pgxpool.Pool
	keys    *secrets.KeyRing
	logger  *slog.Logger
	allowed []string
	webex   Webex
	hc      *http.Client

	skew, refreshTimeout, lockTimeout, backoff, maxAge, stateTTL time.Duration

	cache    cache
	unstored unstoredTokens
	flight   singleflight.Group
	metrics  *metrics

	listening atomic.Bool
	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// New returns a Store and starts its LISTEN/NOTIFY listener, which connects (and
// reconnects) in the background: an unreachable Postgres is not an error here.
func New(opts Options) (*Store, error) {
	if opts.Pool == nil || opts.Keys == nil {
		return nil, errors.New("authstore: Pool and Keys are required")
	}
	s := &Store{
		pool:           opts.Pool,
		keys:           opts.Keys,
		logger:         opts.Logger,
		webex:          opts.Webex,
		hc:             opts.HTTPClient,
		skew:           orDefault(opts.RefreshSkew, DefaultRefreshSkew),
		refreshTimeout: orDefault(opts.RefreshTimeout, DefaultRefreshTimeout),
		backoff:        orDefault(opts.FailureBackoff, DefaultFailureBackoff),
		maxAge:         orDefault(opts.CacheMaxAge, DefaultCacheMaxAge),
		stateTTL:       orDefault(opts.StateTTL, DefaultStateTTL),
		done:           make(chan struct{}),
	}
	s.lockTimeout = orDefault(opts.LockTimeout, s.refreshTimeout+2*time.Second)
	if s.logger == nil {
		s.logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	for _, u := range opts.AllowedBaseURLs {
		s.allowed = append(s.allowed, config.CanonicalBaseURL(u))
	}
	s.allowed = slices.Compact(s.allowed)
	if s.hc == nil {
		s.hc = &http.Client{
			Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	s.cache.init()
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.metrics = newMetrics(reg, s.pool)

	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go func() {
		defer close(s.done)
		s.listen(ctx)
	}()
	return s, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Close stops the listener. It does not close the pool, which the caller owns.
func (s *Store) Close() {
	s.closeOnce.Do(func() {
		s.stop()
		<-s.done
	})
}

// Listening reports whether the LISTEN/NOTIFY listener is connected. Only then does
// Token answer from the memory cache: a replica that could miss a deletion reads
// Postgres instead.
func (s *Store) Listening() bool { return s.listening.Load() }

func (s *Store) now() time.Time { return time.Now() }
