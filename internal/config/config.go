// Package config reads the service's configuration from the environment, each setting
// also a flag, and validates it at start-up so a bad setting stops the process with one
// line that names the variable.
//
// It checks each value as written and never connects or listens: whether Postgres
// answers or a port is free is found out by what uses them (internal/app). What a
// setting means at run time is its user's business, not this package's.
package config

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// DefaultEngageBaseURLs returns the documented Engage regions (ENGAGE.md §4), a fresh
// slice each call: a caller may append to it or change it without changing anyone else's.
func DefaultEngageBaseURLs() []string { return slices.Clone(defaultEngageBaseURLs) }

var defaultEngageBaseURLs = []string{
	"https://api-us-site-1.imiengage.io/api/v1",
	"https://api-uk-site-1.imiengage.io/api/v1",
	"https://api-eu-site-1.imiengage.io/api/v1",
	"https://api-ca-site-1.imiengage.io/api/v1",
	"https://api-syd-site-1.imiengage.com.au/api/v1",
	"https://api-ind-site-1.imiengage.io/api/v1",
}

// Config is everything `serve` needs.
type Config struct {
	Addr                string
	MetricsAddr         string // empty: /metrics on Addr
	DatabaseURL         string
	EncryptionKeys      *secrets.KeyRing
	APIKeys             tenant.Keys
	PublicURL           string
	Webex               Webex
	EngageAllowedBases  []string
	ExecutionTimeout    time.Duration // default for a request without timeoutMs
	ExecutionTimeoutMax time.Duration // cap on timeoutMs
	ShutdownGrace       time.Duration
	TokenRefreshSkew    time.Duration
	MaxExecutions       int // executions run at once, past it 503; 0: DefaultMaxExecutions
	MaxTenantExecutions int // one tenant's executions at once; 0: no cap of its own
	LogLevel            slog.Level
	Migrate             bool // apply migrations before serving (development)
	Pprof               bool // serve /debug/pprof/ on the metrics listener
}

// Webex is the Webex login integration (OAuth 2.0 authorization code).
type Webex struct {
	AuthorizeURL string
	TokenURL     string
	ClientID     string
	ClientSecret secrets.Value
	Scopes       []string
}

// Enabled reports whether the Webex login kind is configured.
func (w Webex) Enabled() bool { return w.ClientID != "" }

// Error names the setting that is wrong. Its message is the one line start-up prints.
type Error struct {
	Variable string
	Problem  string
}

func (e *Error) Error() string { return e.Variable + ": " + e.Problem }

// setting is one configuration value: its variable, its flag, and how to read it.
type setting struct {
	env, flag, usage, def string
	required              bool
	emptyMeans            bool // an empty value says something ("" is not the default)
	parse                 func(string) error
}

// Settings binds every setting to fs and returns a function that, after fs.Parse, fills
// cfg from flags (when given) or the environment (lookupEnv, as os.LookupEnv), and
// validates it.
func Settings(fs *flag.FlagSet, lookupEnv func(string) (string, bool), cfg *Config) func() error {
	var webexSecret string
	list := []setting{
		{env: "NODERUNTIME_ADDR", flag: "addr", def: ":8080", usage: "listen address",
			parse: func(s string) error { cfg.Addr = s; return validateListenAddr(s) }},
		{env: "NODERUNTIME_METRICS_ADDR", flag: "metrics-addr", def: ":9090", usage: "listen address of /metrics; empty serves it on the main address", emptyMeans: true,
			parse: func(s string) error { cfg.MetricsAddr = s; return validateListenAddr(s) }},
		{env: "DATABASE_URL", flag: "database-url", required: true, usage: "Postgres connection string",
			parse: func(s string) error { cfg.DatabaseURL = s; return validateDatabaseURL(s) }},
		{env: "NODERUNTIME_ENCRYPTION_KEYS", flag: "encryption-keys", required: true, usage: "key ring id:base64key,...; the first encrypts, all decrypt",
			parse: func(s string) (err error) { cfg.EncryptionKeys, err = secrets.ParseKeyRing(s); return err }},
		{env: "NODERUNTIME_API_KEYS", flag: "api-keys", required: true, usage: "tenant:sha256hex,... (SHA-256 of each API key)",
			parse: func(s string) (err error) { cfg.APIKeys, err = tenant.ParseKeys(s); return err }},
		{env: "NODERUNTIME_PUBLIC_URL", flag: "public-url", usage: "external base URL, for the OAuth redirect URI",
			parse: func(s string) error {
				if err := validateBaseURL(s); err != nil {
					return err
				}
				// Written in lower case: its scheme decides whether the admin cookie is
				// Secure, and "HTTPS://" is https too.
				scheme, rest, _ := strings.Cut(s, ":")
				cfg.PublicURL = strings.ToLower(scheme) + ":" + strings.TrimRight(rest, "/")
				return nil
			}},
		{env: "WEBEX_AUTHORIZE_URL", flag: "webex-authorize-url", usage: "Webex login authorization endpoint",
			parse: func(s string) error { cfg.Webex.AuthorizeURL = s; return validateHTTPURL(s) }},
		{env: "WEBEX_TOKEN_URL", flag: "webex-token-url", usage: "Webex login token endpoint",
			parse: func(s string) error { cfg.Webex.TokenURL = s; return validateHTTPURL(s) }},
		{env: "WEBEX_CLIENT_ID", flag: "webex-client-id", usage: "OAuth client ID of the Webex login integration",
			parse: func(s string) error { cfg.Webex.ClientID = s; return nil }},
		{env: "WEBEX_CLIENT_SECRET", flag: "webex-client-secret", usage: "OAuth client secret of the Webex login integration",
			parse: func(s string) error { webexSecret = s; return nil }},
		{env: "WEBEX_SCOPES", flag: "webex-scopes", usage: "space- or comma-separated OAuth scopes",
			parse: func(s string) error { cfg.Webex.Scopes = splitList(s, " ,"); return nil }},
		{env: "ENGAGE_ALLOWED_BASE_URLS", flag: "engage-allowed-base-urls", def: strings.Join(defaultEngageBaseURLs, ","), usage: "comma-separated Engage base URLs an authorization may use",
			parse: func(s string) error {
				cfg.EngageAllowedBases = nil
				// Split, not splitList: an entry is numbered as written, blank ones counted,
				// as the key lists number theirs.
				for i, u := range strings.Split(s, ",") {
					// "a, b" or a YAML block: the spaces around an entry are not part of it.
					if u = strings.TrimSpace(u); u == "" {
						continue
					}
					if err := validateBaseURL(u); err != nil {
						return fmt.Errorf("entry %d, %s: %w", i+1, quoteRedacted(u), err)
					}
					cfg.EngageAllowedBases = append(cfg.EngageAllowedBases, CanonicalBaseURL(u))
				}
				if len(cfg.EngageAllowedBases) == 0 {
					return errors.New("no base URL given")
				}
				return nil
			}},
		{env: "NODERUNTIME_EXECUTION_TIMEOUT", flag: "execution-timeout", def: "10s", usage: "deadline of an execution that gives no timeoutMs",
			parse: millisecondsInto(&cfg.ExecutionTimeout)},
		{env: "NODERUNTIME_EXECUTION_TIMEOUT_MAX", flag: "execution-timeout-max", def: "60s", usage: "cap on an execution's timeoutMs",
			parse: millisecondsInto(&cfg.ExecutionTimeoutMax)},
		{env: "NODERUNTIME_MAX_CONCURRENT_EXECUTIONS", flag: "max-concurrent-executions", def: strconv.Itoa(DefaultMaxExecutions), usage: "executions one replica runs at once; past it a request is refused with 503 before it runs (each holds ~55 KiB: size it to the memory limit)",
			parse: executionsInto(&cfg.MaxExecutions)},
		{env: "NODERUNTIME_MAX_CONCURRENT_EXECUTIONS_PER_TENANT", flag: "max-concurrent-executions-per-tenant", def: "", usage: "executions one tenant runs at once on a replica, so one tenant's flood cannot take every slot (at most NODERUNTIME_MAX_CONCURRENT_EXECUTIONS; empty: no cap of its own)",
			parse: executionsInto(&cfg.MaxTenantExecutions)},
		{env: "NODERUNTIME_SHUTDOWN_GRACE", flag: "shutdown-grace", def: "65s", usage: "how long in-flight requests may finish after SIGTERM (at least NODERUNTIME_EXECUTION_TIMEOUT_MAX, or a long execution is cut off, perhaps after Engage acted)",
			parse: durationInto(&cfg.ShutdownGrace)},
		{env: "NODERUNTIME_TOKEN_REFRESH_SKEW", flag: "token-refresh-skew", def: "5m", usage: "refresh an access token this long before it expires (at most half its life)",
			parse: durationInto(&cfg.TokenRefreshSkew)},
		{env: "NODERUNTIME_LOG_LEVEL", flag: "log-level", def: "info", usage: "debug, info, warn or error",
			parse: func(s string) error {
				if cfg.LogLevel.UnmarshalText([]byte(s)) != nil {
					return fmt.Errorf("%q is not a level (want debug, info, warn or error)", s)
				}
				return nil
			}},
		{env: "NODERUNTIME_PPROF", flag: "pprof", def: "false", usage: "serve /debug/pprof/ on the metrics listener (needs NODERUNTIME_METRICS_ADDR)",
			parse: func(s string) (err error) {
				if cfg.Pprof, err = strconv.ParseBool(s); err != nil {
					return fmt.Errorf("%q is not a boolean (want true or false)", s)
				}
				return nil
			}},
	}
	values := make([]*string, len(list))
	for i, s := range list {
		values[i] = fs.String(s.flag, "", fmt.Sprintf("%s (env %s)", s.usage, s.env)+defaultNote(s.def))
	}
	fs.BoolVar(&cfg.Migrate, "migrate", false, "apply pending migrations before serving (development)")

	return func() error {
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		for i, s := range list {
			v, set := lookupEnv(s.env)
			if given[s.flag] {
				v, set = *values[i], true
			}
			// A value read from a file keeps the file's last newline (a Secret written
			// with echo): no setting means anything by spaces around it, and a client
			// secret sent with its newline would only fail at a login's code exchange.
			v = strings.TrimSpace(v)
			if v == "" && !s.emptyMeans {
				// An empty variable or flag is unset, unless empty is a value of its own:
				// its default applies (--addr= on a random port, --shutdown-grace= of 0s
				// would be nobody's intent).
				set = false
			}
			if !set {
				v = s.def
			}
			if v == "" {
				if s.required { // unset, or a flag given empty
					return &Error{Variable: s.env, Problem: "is required (or --" + s.flag + ")"}
				}
				continue // optional and empty: the zero value means "not configured"
			}
			if err := s.parse(v); err != nil {
				return &Error{Variable: s.env, Problem: err.Error()}
			}
		}
		cfg.Webex.ClientSecret = secrets.New(webexSecret)
		return cfg.validate()
	}
}

// Warnings lists what is allowed but probably not meant, for serve to log at start.
func (c *Config) Warnings() []string {
	var w []string
	if c.ShutdownGrace < c.ExecutionTimeoutMax {
		w = append(w, fmt.Sprintf("NODERUNTIME_SHUTDOWN_GRACE (%v) is shorter than NODERUNTIME_EXECUTION_TIMEOUT_MAX (%v): a stop may cut executions short, and one with an Idempotency-Key is then never run again", c.ShutdownGrace, c.ExecutionTimeoutMax))
	}
	// Allowed, since a mesh or an egress proxy may encrypt below us, but what these
	// URLs carry (tenant secrets, tokens, login codes) goes in the clear otherwise.
	for _, s := range []struct {
		env  string
		urls []string
	}{
		{"NODERUNTIME_PUBLIC_URL", []string{c.PublicURL}},
		{"WEBEX_AUTHORIZE_URL", []string{c.Webex.AuthorizeURL}},
		{"WEBEX_TOKEN_URL", []string{c.Webex.TokenURL}},
		{"ENGAGE_ALLOWED_BASE_URLS", c.EngageAllowedBases},
	} {
		for _, u := range s.urls {
			if plainHTTPToAnotherHost(u) {
				w = append(w, fmt.Sprintf("%s: %s is plain http to another host: the secrets, tokens and login codes it carries cross the network unencrypted unless something below encrypts them", s.env, quoteRedacted(u)))
			}
		}
	}
	return w
}

// plainHTTPToAnotherHost reports an http URL whose host is not this machine's loopback.
func plainHTTPToAnotherHost(s string) bool {
	u, err := url.Parse(s)
	if err != nil || !strings.EqualFold(u.Scheme, "http") {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err != nil || !ip.Unmap().IsLoopback()
}

func (c *Config) validate() error {
	if c.Webex.Enabled() {
		for _, req := range []struct{ env, v string }{
			{"WEBEX_AUTHORIZE_URL", c.Webex.AuthorizeURL},
			{"WEBEX_TOKEN_URL", c.Webex.TokenURL},
			{"NODERUNTIME_PUBLIC_URL", c.PublicURL},
		} {
			if req.v == "" {
				return &Error{Variable: req.env, Problem: "is required when WEBEX_CLIENT_ID is set"}
			}
		}
		if c.Webex.ClientSecret.IsZero() {
			// Every login would end at the code exchange (invalid_client), after the
			// person signed in: a Secret whose optional key is missing, say.
			return &Error{Variable: "WEBEX_CLIENT_SECRET", Problem: "is required when WEBEX_CLIENT_ID is set: the Webex login exchanges its codes with it"}
		}
	}
	if !c.Webex.Enabled() && !c.Webex.ClientSecret.IsZero() {
		// A secret alone would leave the Webex login silently off.
		return &Error{Variable: "WEBEX_CLIENT_ID", Problem: "is required when WEBEX_CLIENT_SECRET is set (unset the secret to turn the Webex login off)"}
	}
	if c.Pprof && c.MetricsAddr == "" {
		// Never on the main listener, which callers reach.
		return &Error{Variable: "NODERUNTIME_PPROF", Problem: "needs NODERUNTIME_METRICS_ADDR: the profiler is served on the metrics listener only"}
	}
	if c.MetricsAddr != "" && sameListener(c.Addr, c.MetricsAddr) {
		// Caught here, before anything connects; the second listen would fail only
		// after the pool and the schema check.
		return &Error{Variable: "NODERUNTIME_METRICS_ADDR", Problem: fmt.Sprintf("%q listens where NODERUNTIME_ADDR (%q) does; give it another port, or set it empty to serve /metrics on the main address", c.MetricsAddr, c.Addr)}
	}
	if c.MaxTenantExecutions > c.MaxExecutions {
		return &Error{Variable: "NODERUNTIME_MAX_CONCURRENT_EXECUTIONS_PER_TENANT", Problem: fmt.Sprintf("%d must not exceed NODERUNTIME_MAX_CONCURRENT_EXECUTIONS (%d): a tenant's share is part of the replica's", c.MaxTenantExecutions, c.MaxExecutions)}
	}
	if c.ExecutionTimeout > c.ExecutionTimeoutMax {
		// Say both values: the default (10s) is often not the one that was set.
		return &Error{Variable: "NODERUNTIME_EXECUTION_TIMEOUT", Problem: fmt.Sprintf("%v must not exceed NODERUNTIME_EXECUTION_TIMEOUT_MAX (%v); lower it too (default 10s)", c.ExecutionTimeout, c.ExecutionTimeoutMax)}
	}
	return nil
}

func defaultNote(def string) string {
	if def == "" || len(def) > 40 {
		return ""
	}
	return " (default " + def + ")"
}

func durationInto(d *time.Duration) func(string) error {
	return func(s string) error {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration (e.g. 10s, 500ms)", s)
		}
		if v <= 0 {
			return errors.New("must be positive")
		}
		*d = v
		return nil
	}
}

// DefaultMaxExecutions is NODERUNTIME_MAX_CONCURRENT_EXECUTIONS unset: ~55 MiB of
// executions, which a 128 MiB container holds beside the rest of the process.
const DefaultMaxExecutions = 1000

// maxExecutionsCap bounds NODERUNTIME_MAX_CONCURRENT_EXECUTIONS: a million executions
// at ~55 KiB each is over 50 GiB, more than any replica is given.
const maxExecutionsCap = 1_000_000

// executionsInto parses a count of executions at once.
func executionsInto(n *int) func(string) error {
	return func(s string) error {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > maxExecutionsCap {
			return fmt.Errorf("%q is not a whole number from 1 to %d", s, maxExecutionsCap)
		}
		*n = v
		return nil
	}
}

// maxExecutionDeadline bounds the execution timeout settings.
const maxExecutionDeadline = time.Hour

// millisecondsInto is durationInto for an execution's deadline, which timeoutMs gives in
// whole milliseconds: less than one is a unit mistaken (ns, us), and would end every
// execution in onTimeout and every token refresh (given half of it) at once.
func millisecondsInto(d *time.Duration) func(string) error {
	parse := durationInto(d)
	return func(s string) error {
		if err := parse(s); err != nil {
			return err
		}
		if *d < time.Millisecond {
			return fmt.Errorf("%q is less than a millisecond (timeoutMs counts milliseconds; e.g. 10s, 500ms)", s)
		}
		if *d > maxExecutionDeadline {
			// A flow waits on its node for that long, holding a connection; the server's
			// write timeout, set past the cap, would overflow near the largest duration.
			return fmt.Errorf("%q is over %v: no flow waits that long on a node", s, maxExecutionDeadline)
		}
		return nil
	}
}

func splitList(s, seps string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(seps, r) })
}

// validateListenAddr wants host:port (the host may be empty, the port a number or a
// service name), what net.Listen takes.
func validateListenAddr(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err == nil {
		_, err = net.LookupPort("tcp", port)
	}
	if err != nil || port == "" || !listenHost(host) {
		return fmt.Errorf("%q is not a listen address (want host:port, e.g. :8080 or 127.0.0.1:8080)", s)
	}
	return nil
}

// listenHost reports whether host can be listened on as written: empty (every
// interface), an IP address or a host name (DNS labels, with the '_' /etc/hosts takes).
// Anything else would pass start-up's other steps (the pool, the schema check) and fail
// only at listen.
func listenHost(host string) bool {
	if ip, _, _ := strings.Cut(host, "%"); host == "" || net.ParseIP(ip) != nil { // an IPv6 zone too
		return true
	}
	for _, label := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return len(host) <= 253
}

// sameListener reports whether listening on a and then on b must fail: the same port
// (not 0, which picks a free one) on the same host, or on a host and every interface.
func sameListener(a, b string) bool {
	hostA, portA, _ := net.SplitHostPort(a)
	hostB, portB, _ := net.SplitHostPort(b)
	pa, errA := net.LookupPort("tcp", portA)
	pb, errB := net.LookupPort("tcp", portB)
	if errA != nil || errB != nil || pa != pb || pa == 0 {
		return false
	}
	every := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return hostA == hostB || every(hostA) || every(hostB)
}

func validateHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return errors.New("want an absolute http(s) URL")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %s is not a port (1-65535)", p)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		// "https://host:" parses, and would go on as written: a redirect URI the provider
		// does not know, an allowlist entry no base URL matches.
		return errors.New("want a port after the host's colon, or no colon")
	}
	return nil
}

// validateBaseURL is validateHTTPURL for a URL that paths are appended to (the public
// URL, an Engage base URL): a query or a fragment would come before the path, and
// credentials would go with every request and show wherever the URL is shown.
func validateBaseURL(s string) error {
	if err := validateHTTPURL(s); err != nil {
		return err
	}
	u, _ := url.Parse(s)
	switch {
	case u.User != nil:
		return errors.New("want no user or password in it")
	case u.RawQuery != "" || u.ForceQuery:
		return errors.New("want no query (?...) in it: paths are appended to it")
	case strings.Contains(s, "#"):
		return errors.New("want no fragment (#...) in it: paths are appended to it")
	}
	return nil
}

// CanonicalBaseURL is an Engage base URL as the allowlist compares it: its scheme and
// host in lower case (DNS names are case-insensitive, so "HTTPS://API-US-SITE-1…" is the
// documented URL) and no trailing slash. The path keeps its case: a server may tell
// /API from /api.
func CanonicalBaseURL(s string) string {
	s = strings.TrimRight(s, "/")
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	host, path, hasPath := strings.Cut(rest, "/")
	if hasPath {
		path = "/" + path
	}
	return strings.ToLower(scheme) + "://" + strings.ToLower(host) + path
}

// quoteRedacted is s quoted with any password masked, for an error that names it. What
// does not parse cannot be masked, and may still hold a password: it is not repeated.
func quoteRedacted(s string) string {
	if u, err := url.Parse(s); err == nil {
		if pw, _ := u.User.Password(); u.User != nil && pw == "" {
			// A user name without a password is most often a token (https://TOKEN@host).
			u.User = url.User("xxxxx")
		}
		return strconv.Quote(u.Redacted())
	}
	return "a value that does not parse as a URL (not repeated here)"
}

// CheckDatabaseURL is DATABASE_URL's check for commands that read it alone (migrate).
func CheckDatabaseURL(s string) error {
	if err := validateDatabaseURL(s); err != nil {
		return &Error{Variable: "DATABASE_URL", Problem: err.Error()}
	}
	return nil
}

// validateDatabaseURL checks that pgx accepts the connection string (a URL or the
// key=value form) as the service's pool reads it, its pool_* and cache settings
// included, without connecting. The error never repeats the value, which may hold a
// password.
func validateDatabaseURL(s string) error {
	c, err := pgxpool.ParseConfig(s)
	if err != nil {
		return errors.New("pgx cannot parse it (want postgres://user@host:port/db or the key=value form, and pool_max_conns and the like numbers or durations as pgx reads them; the value is not repeated here)")
	}
	if c.MinConns > c.MaxConns {
		return fmt.Errorf("pool_min_conns (%d) exceeds pool_max_conns (%d)", c.MinConns, c.MaxConns)
	}
	if c.MinIdleConns > c.MaxConns {
		// pgx would take it, and hold every connection the pool may open idle for ever.
		return fmt.Errorf("pool_min_idle_conns (%d) exceeds pool_max_conns (%d)", c.MinIdleConns, c.MaxConns)
	}
	return nil
}
