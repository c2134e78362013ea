package config_test

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/config"
)

const (
	goodKeys    = "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	goodAPIKeys = "acme:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
	goodDB      = "postgres://u@127.0.0.1/db"
)

// load reads a configuration from env and args the way serve does.
func load(env map[string]string, args ...string) (*config.Config, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cfg config.Config
	finish := config.Settings(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, &cfg)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return &cfg, finish()
}

func minimal() map[string]string {
	return map[string]string{"DATABASE_URL": goodDB, "NODERUNTIME_ENCRYPTION_KEYS": goodKeys, "NODERUNTIME_API_KEYS": goodAPIKeys}
}

func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func TestDefaults(t *testing.T) {
	cfg, err := load(minimal())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":8080" || cfg.MetricsAddr != ":9090" || cfg.ExecutionTimeout != 10*time.Second ||
		cfg.ExecutionTimeoutMax != 60*time.Second || cfg.TokenRefreshSkew != 5*time.Minute || cfg.Pprof ||
		cfg.MaxExecutions != 1000 || cfg.MaxTenantExecutions != 0 ||
		len(cfg.EngageAllowedBases) != len(config.DefaultEngageBaseURLs()) || cfg.Webex.Enabled() {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestAFlagBeatsItsVariable(t *testing.T) {
	cfg, err := load(with(minimal(), "NODERUNTIME_ADDR", ":7000", "NODERUNTIME_EXECUTION_TIMEOUT", "3s"),
		"--addr", "127.0.0.1:7001", "--execution-timeout", "4s", "--metrics-addr=")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:7001" || cfg.ExecutionTimeout != 4*time.Second || cfg.MetricsAddr != "" {
		t.Fatalf("got addr %q timeout %v metrics %q", cfg.Addr, cfg.ExecutionTimeout, cfg.MetricsAddr)
	}
}

// An empty variable is unset (its default applies), except where empty is a value:
// NODERUNTIME_METRICS_ADDR="" serves /metrics on the main address, as --metrics-addr=
// does.
func TestAnEmptyVariableIsUnsetUnlessEmptyIsAValue(t *testing.T) {
	cfg, err := load(with(minimal(), "NODERUNTIME_METRICS_ADDR", "", "NODERUNTIME_ADDR", "", "NODERUNTIME_EXECUTION_TIMEOUT", ""))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MetricsAddr != "" || cfg.Addr != ":8080" || cfg.ExecutionTimeout != 10*time.Second {
		t.Fatalf("metrics %q addr %q timeout %v", cfg.MetricsAddr, cfg.Addr, cfg.ExecutionTimeout)
	}
	if _, err := load(with(minimal(), "DATABASE_URL", "")); err == nil || !strings.Contains(err.Error(), "DATABASE_URL: is required") {
		t.Fatalf("an empty required variable: %v", err)
	}
}

// Spaces and a newline around a value (a Secret file written with echo) are not part of
// it: a Webex client secret is sent without them, a connection string parses.
func TestSpaceAroundAValueIsNotPartOfIt(t *testing.T) {
	cfg, err := load(with(minimal(), "DATABASE_URL", goodDB+"\n", "WEBEX_CLIENT_ID", " id\n", "WEBEX_CLIENT_SECRET", "s3cret\n",
		"WEBEX_AUTHORIZE_URL", "https://webexapis.com/v1/authorize\n", "WEBEX_TOKEN_URL", "https://webexapis.com/v1/access_token",
		"NODERUNTIME_PUBLIC_URL", "https://runtime.example.com\n", "NODERUNTIME_ADDR", ":8080\n"), "--execution-timeout", "5s\n")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DatabaseURL != goodDB || cfg.Webex.ClientID != "id" || cfg.Webex.ClientSecret.Reveal() != "s3cret" || cfg.Webex.AuthorizeURL != "https://webexapis.com/v1/authorize" ||
		cfg.PublicURL != "https://runtime.example.com" || cfg.Addr != ":8080" || cfg.ExecutionTimeout != 5*time.Second {
		t.Fatalf("got %q %q %q %q %q %q %v", cfg.DatabaseURL, cfg.Webex.ClientID, cfg.Webex.ClientSecret.Reveal(), cfg.Webex.AuthorizeURL, cfg.PublicURL, cfg.Addr, cfg.ExecutionTimeout)
	}
	if _, err := load(with(minimal(), "NODERUNTIME_API_KEYS", "\n")); err == nil || !strings.Contains(err.Error(), "NODERUNTIME_API_KEYS: is required") {
		t.Fatalf("a required variable of spaces only: %v", err)
	}
}

// A cap set below the default timeout alone names both values: the variable named is
// one nobody set.
func TestACapBelowTheDefaultTimeoutSaysBothValues(t *testing.T) {
	_, err := load(with(minimal(), "NODERUNTIME_EXECUTION_TIMEOUT_MAX", "5s"))
	if err == nil || !strings.Contains(err.Error(), "NODERUNTIME_EXECUTION_TIMEOUT: 10s must not exceed NODERUNTIME_EXECUTION_TIMEOUT_MAX (5s)") {
		t.Fatalf("got %v", err)
	}
}

// An empty flag is unset as an empty variable is: its default applies (required: it is
// missing), not its zero value, except where empty is a value.
func TestAChangeToTheDefaultEngageBaseURLsOfOneCallerIsNotSeenByTheNext(t *testing.T) {
	mine := config.DefaultEngageBaseURLs()
	first := mine[0]
	mine[0] = "https://attacker.example"
	if got := config.DefaultEngageBaseURLs()[0]; got != first {
		t.Fatalf("default base URLs after a caller changed its copy: %q first, want %q", got, first)
	}
}

func TestAnEmptyFlagIsUnsetUnlessEmptyIsAValue(t *testing.T) {
	cfg, err := load(minimal(), "--addr=", "--shutdown-grace=", "--engage-allowed-base-urls=", "--execution-timeout=", "--log-level=", "--metrics-addr=")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":8080" || cfg.ShutdownGrace != 65*time.Second || len(cfg.EngageAllowedBases) != len(config.DefaultEngageBaseURLs()) ||
		cfg.ExecutionTimeout != 10*time.Second || cfg.MetricsAddr != "" {
		t.Fatalf("addr %q grace %v allowlist %v timeout %v metrics %q", cfg.Addr, cfg.ShutdownGrace, cfg.EngageAllowedBases, cfg.ExecutionTimeout, cfg.MetricsAddr)
	}
}

// Every bad setting stops start-up with an error that names its variable and never
// repeats a secret value.
func TestABadSettingIsNamed(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"database URL given as an empty flag", minimal(), []string{"--database-url="}, "DATABASE_URL"},
		{"key ring given as an empty flag", minimal(), []string{"--encryption-keys="}, "NODERUNTIME_ENCRYPTION_KEYS"},
		{"API keys given as an empty flag", minimal(), []string{"--api-keys="}, "NODERUNTIME_API_KEYS"},
		{"database URL pgx cannot parse", with(minimal(), "DATABASE_URL", "host=127.0.0.1 password=s3cret-pw sslmode=bogus"), nil, "DATABASE_URL"},
		{"database URL of another scheme", with(minimal(), "DATABASE_URL", "mysql://u:s3cret-pw@h/db"), nil, "DATABASE_URL"},
		{"pool size not a number", with(minimal(), "DATABASE_URL", "postgres://u:s3cret-pw@h/db?pool_max_conns=ten"), nil, "DATABASE_URL"},
		{"pool size zero", with(minimal(), "DATABASE_URL", "postgres://u:s3cret-pw@h/db?pool_max_conns=0"), nil, "DATABASE_URL"},
		{"pool smaller than its minimum", with(minimal(), "DATABASE_URL", "postgres://u:s3cret-pw@h/db?pool_max_conns=2&pool_min_conns=10"), nil, "DATABASE_URL"},
		{"pool smaller than its idle minimum", with(minimal(), "DATABASE_URL", "postgres://u:s3cret-pw@h/db?pool_max_conns=2&pool_min_idle_conns=3"), nil, "DATABASE_URL"},
		{"pool lifetime not a duration", with(minimal(), "DATABASE_URL", "host=h password=s3cret-pw pool_max_conn_lifetime=soon"), nil, "DATABASE_URL"},
		{"database URL that is a bare password", with(minimal(), "DATABASE_URL", "s3cret-pw"), nil, "DATABASE_URL"},
		{"statement cache not a number", with(minimal(), "DATABASE_URL", "postgres://u:s3cret-pw@h/db?statement_cache_capacity=many"), nil, "DATABASE_URL"},
		{"listen address without a port", with(minimal(), "NODERUNTIME_ADDR", "bogus"), nil, "NODERUNTIME_ADDR"},
		{"listen address with a bad port", with(minimal(), "NODERUNTIME_ADDR", ":99999"), nil, "NODERUNTIME_ADDR"},
		{"listen address with an empty port", with(minimal(), "NODERUNTIME_ADDR", "127.0.0.1:"), nil, "NODERUNTIME_ADDR"},
		{"listen address whose host has a space", with(minimal(), "NODERUNTIME_ADDR", "host with space:8080"), nil, "NODERUNTIME_ADDR"},
		{"metrics address whose host is not a name", with(minimal(), "NODERUNTIME_METRICS_ADDR", "-metrics.example.com:9090"), nil, "NODERUNTIME_METRICS_ADDR"},
		{"metrics address without a port", with(minimal(), "NODERUNTIME_METRICS_ADDR", "bogus"), nil, "NODERUNTIME_METRICS_ADDR"},
		{"pprof without a metrics listener", with(minimal(), "NODERUNTIME_PPROF", "true"), []string{"--metrics-addr="}, "NODERUNTIME_PPROF"},
		{"pprof not a boolean", with(minimal(), "NODERUNTIME_PPROF", "yes please"), nil, "NODERUNTIME_PPROF"},
		{"unknown log level", with(minimal(), "NODERUNTIME_LOG_LEVEL", "loud"), nil, "NODERUNTIME_LOG_LEVEL"},
		{"no executions at once", with(minimal(), "NODERUNTIME_MAX_CONCURRENT_EXECUTIONS", "0"), nil, "NODERUNTIME_MAX_CONCURRENT_EXECUTIONS"},
		{"executions at once past the bound", with(minimal(), "NODERUNTIME_MAX_CONCURRENT_EXECUTIONS", "1000001"), nil, "NODERUNTIME_MAX_CONCURRENT_EXECUTIONS"},
		{"executions at once not a number", with(minimal(), "NODERUNTIME_MAX_CONCURRENT_EXECUTIONS", "2k"), nil, "NODERUNTIME_MAX_CONCURRENT_EXECUTIONS"},
		{"no executions at once for a tenant", with(minimal(), "NODERUNTIME_MAX_CONCURRENT_EXECUTIONS_PER_TENANT", "0"), nil, "NODERUNTIME_MAX_CONCURRENT_EXECUTIONS_PER_TENANT"},
		{"a tenant's share above the replica's", with(minimal(), "NODERUNTIME_MAX_CONCURRENT_EXECUTIONS_PER_TENANT", "1001"), nil, "NODERUNTIME_MAX_CONCURRENT_EXECUTIONS_PER_TENANT"},
		{"public URL not absolute", with(minimal(), "NODERUNTIME_PUBLIC_URL", "/relative"), nil, "NODERUNTIME_PUBLIC_URL"},
		{"public URL with a query", with(minimal(), "NODERUNTIME_PUBLIC_URL", "https://runtime.example.com/?x=1"), nil, "NODERUNTIME_PUBLIC_URL"},
		{"public URL with an empty query", with(minimal(), "NODERUNTIME_PUBLIC_URL", "https://runtime.example.com?"), nil, "NODERUNTIME_PUBLIC_URL"},
		{"public URL with a fragment", with(minimal(), "NODERUNTIME_PUBLIC_URL", "https://runtime.example.com/#top"), nil, "NODERUNTIME_PUBLIC_URL"},
		{"public URL with credentials", with(minimal(), "NODERUNTIME_PUBLIC_URL", "https://admin:s3cret-pw@runtime.example.com"), nil, "NODERUNTIME_PUBLIC_URL"},
		{"public URL with a port out of range", with(minimal(), "NODERUNTIME_PUBLIC_URL", "https://runtime.example.com:99999"), nil, "NODERUNTIME_PUBLIC_URL"},
		{"public URL on port 0", with(minimal(), "NODERUNTIME_PUBLIC_URL", "https://runtime.example.com:0"), nil, "NODERUNTIME_PUBLIC_URL"},
		{"public URL on port 65536", with(minimal(), "NODERUNTIME_PUBLIC_URL", "https://runtime.example.com:65536"), nil, "NODERUNTIME_PUBLIC_URL"},
		{"public URL of another scheme", with(minimal(), "NODERUNTIME_PUBLIC_URL", "ftp://runtime.example.com"), nil, "NODERUNTIME_PUBLIC_URL"},
		{"public URL ending in an empty fragment", with(minimal(), "NODERUNTIME_PUBLIC_URL", "https://runtime.example.com/#"), nil, "NODERUNTIME_PUBLIC_URL"},
		{"Webex token URL of another scheme", with(minimal(), "WEBEX_TOKEN_URL", "ftp://webexapis.com/v1/access_token"), nil, "WEBEX_TOKEN_URL"},
		{"Webex authorize URL of another scheme", with(minimal(), "WEBEX_AUTHORIZE_URL", "ftp://webexapis.com/v1/authorize"), nil, "WEBEX_AUTHORIZE_URL"},
		{"public URL without a host name", with(minimal(), "NODERUNTIME_PUBLIC_URL", "https://:443"), nil, "NODERUNTIME_PUBLIC_URL"},
		{"public URL with an empty port", with(minimal(), "NODERUNTIME_PUBLIC_URL", "https://runtime.example.com:"), nil, "NODERUNTIME_PUBLIC_URL"},
		{"allowlist entry with an empty port", with(minimal(), "ENGAGE_ALLOWED_BASE_URLS", "https://engage.example.com:/api/v1"), nil, "ENGAGE_ALLOWED_BASE_URLS"},
		{"Webex token URL with an empty port", with(minimal(), "WEBEX_TOKEN_URL", "https://webexapis.com:/v1/access_token"), nil, "WEBEX_TOKEN_URL"},
		{"allowlist entry with a query", with(minimal(), "ENGAGE_ALLOWED_BASE_URLS", "https://engage.example.com/api/v1?x=1"), nil, "ENGAGE_ALLOWED_BASE_URLS"},
		{"allowlist entry with credentials", with(minimal(), "ENGAGE_ALLOWED_BASE_URLS", "https://u:s3cret-pw@engage.example.com/api/v1"), nil, "ENGAGE_ALLOWED_BASE_URLS"},
		{"allowlist entry with a token for its user name", with(minimal(), "ENGAGE_ALLOWED_BASE_URLS", "https://s3cret-pw@engage.example.com/api/v1"), nil, "ENGAGE_ALLOWED_BASE_URLS"},
		{"allowlist entry with a token for its user name and an empty password", with(minimal(), "ENGAGE_ALLOWED_BASE_URLS", "https://s3cret-pw:@engage.example.com/api/v1"), nil, "ENGAGE_ALLOWED_BASE_URLS"},
		{"allowlist entry with credentials that does not parse", with(minimal(), "ENGAGE_ALLOWED_BASE_URLS", "https://engage.example.com/api/v1,https://u:s3cret-pw@engage.example.com:port/api/v1"), nil, "ENGAGE_ALLOWED_BASE_URLS"},
		{"public URL with credentials that does not parse", with(minimal(), "NODERUNTIME_PUBLIC_URL", "https://admin:s3cret-pw@runtime.example.com:port"), nil, "NODERUNTIME_PUBLIC_URL"},
		{"default timeout over the cap", with(minimal(), "NODERUNTIME_EXECUTION_TIMEOUT", "90s"), nil, "NODERUNTIME_EXECUTION_TIMEOUT"},
		{"default timeout under a millisecond", with(minimal(), "NODERUNTIME_EXECUTION_TIMEOUT", "10ns"), nil, "NODERUNTIME_EXECUTION_TIMEOUT"},
		{"timeout cap under a millisecond alone", with(minimal(), "NODERUNTIME_EXECUTION_TIMEOUT_MAX", "60us"), []string{"--execution-timeout=1ms"}, "NODERUNTIME_EXECUTION_TIMEOUT_MAX"},
		{"timeout cap over an hour", with(minimal(), "NODERUNTIME_EXECUTION_TIMEOUT_MAX", "2562047h"), nil, "NODERUNTIME_EXECUTION_TIMEOUT_MAX"},
		{"timeout cap a millisecond over an hour", with(minimal(), "NODERUNTIME_EXECUTION_TIMEOUT_MAX", "3600001ms"), nil, "NODERUNTIME_EXECUTION_TIMEOUT_MAX"},
		{"default timeout a millisecond over the cap", with(minimal(), "NODERUNTIME_EXECUTION_TIMEOUT", "60001ms"), nil, "NODERUNTIME_EXECUTION_TIMEOUT"},
		{"shutdown grace not a duration", with(minimal(), "NODERUNTIME_SHUTDOWN_GRACE", "soon"), nil, "NODERUNTIME_SHUTDOWN_GRACE"},
		{"zero shutdown grace", with(minimal(), "NODERUNTIME_SHUTDOWN_GRACE", "0s"), nil, "NODERUNTIME_SHUTDOWN_GRACE"},
		{"zero skew", with(minimal(), "NODERUNTIME_TOKEN_REFRESH_SKEW", "0s"), nil, "NODERUNTIME_TOKEN_REFRESH_SKEW"},
		{"default timeout over an hour", with(minimal(), "NODERUNTIME_EXECUTION_TIMEOUT", "61m"), []string{"--execution-timeout-max=2h"}, "NODERUNTIME_EXECUTION_TIMEOUT"},
		{"negative skew", with(minimal(), "NODERUNTIME_TOKEN_REFRESH_SKEW", "-1s"), nil, "NODERUNTIME_TOKEN_REFRESH_SKEW"},
		{"empty allowlist", with(minimal(), "ENGAGE_ALLOWED_BASE_URLS", ","), nil, "ENGAGE_ALLOWED_BASE_URLS"},
		{"one API key hash for two tenants", with(minimal(), "NODERUNTIME_API_KEYS", goodAPIKeys+",globex"+goodAPIKeys[len("acme"):]), nil, "NODERUNTIME_API_KEYS"},
		{"Webex client secret without its ID", with(minimal(), "WEBEX_CLIENT_SECRET", "s3cret-pw"), nil, "WEBEX_CLIENT_ID"},
		{"Webex login without a public URL", with(minimal(), "WEBEX_CLIENT_ID", "id", "WEBEX_CLIENT_SECRET", "s3cret-pw", "WEBEX_AUTHORIZE_URL", "https://webexapis.com/v1/authorize",
			"WEBEX_TOKEN_URL", "https://webexapis.com/v1/access_token"), nil, "NODERUNTIME_PUBLIC_URL"},
		{"Webex login without its authorize URL", with(minimal(), "WEBEX_CLIENT_ID", "id", "WEBEX_CLIENT_SECRET", "s3cret-pw",
			"WEBEX_TOKEN_URL", "https://webexapis.com/v1/access_token", "NODERUNTIME_PUBLIC_URL", "https://runtime.example.com"), nil, "WEBEX_AUTHORIZE_URL"},
		{"Webex login without its token URL", with(minimal(), "WEBEX_CLIENT_ID", "id", "WEBEX_CLIENT_SECRET", "s3cret-pw",
			"WEBEX_AUTHORIZE_URL", "https://webexapis.com/v1/authorize", "NODERUNTIME_PUBLIC_URL", "https://runtime.example.com"), nil, "WEBEX_TOKEN_URL"},
		{"Webex client ID without its secret", with(minimal(), "WEBEX_CLIENT_ID", "id", "WEBEX_AUTHORIZE_URL", "https://webexapis.com/v1/authorize",
			"WEBEX_TOKEN_URL", "https://webexapis.com/v1/access_token", "NODERUNTIME_PUBLIC_URL", "https://runtime.example.com"), nil, "WEBEX_CLIENT_SECRET"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := load(c.env, c.args...)
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Variable != c.want {
				t.Fatalf("got %v, want an error naming %s", err, c.want)
			}
			if strings.Contains(err.Error(), "s3cret-pw") {
				t.Fatalf("the error repeats a password: %q", err)
			}
		})
	}
}

// A malformed value is answered with the values the setting takes, in the words of the
// other settings, not with the parser's (strconv's, slog's) own message.
func TestAMalformedValueSaysWhatTheSettingTakes(t *testing.T) {
	for _, c := range []struct{ env, value, want string }{
		{"NODERUNTIME_PPROF", "yes please", "true or false"},
		{"NODERUNTIME_LOG_LEVEL", "loud", "debug, info, warn or error"},
		{"NODERUNTIME_SHUTDOWN_GRACE", "65", "e.g. 10s, 500ms"},
		{"NODERUNTIME_MAX_CONCURRENT_EXECUTIONS", "2k", "whole number from 1 to 1000000"},
	} {
		_, err := load(with(minimal(), c.env, c.value))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "strconv") || strings.Contains(err.Error(), "slog") {
			t.Errorf("%s=%q: got %v, want an error saying %q", c.env, c.value, err, c.want)
		}
	}
}

func TestListenAddressesNetListenTakes(t *testing.T) {
	for _, addr := range []string{":8080", "127.0.0.1:0", "[::1]:8080", "localhost:8080", "0.0.0.0:http", "noderuntime-0.noderuntime.svc:8080", "my_host:8080", "[fe80::1%eth0]:8080", "localhost.:8080"} {
		if _, err := load(with(minimal(), "NODERUNTIME_ADDR", addr)); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
}

// The metrics listener on the main listener's port stops start-up before anything
// connects, naming NODERUNTIME_METRICS_ADDR; other hosts and port 0 (a free port each)
// do not collide.
func TestTheMetricsAddressMustNotBeTheMainOne(t *testing.T) {
	for _, c := range []struct {
		addr, metrics string
		collide       bool
	}{
		{":8080", ":8080", true},
		{"0.0.0.0:8080", "127.0.0.1:8080", true},
		{"127.0.0.1:8080", ":8080", true},
		{"[::]:9090", "127.0.0.1:9090", true},
		{"127.0.0.1:8080", "127.0.0.1:8080", true},
		{"127.0.0.1:8080", "127.0.0.2:8080", false},
		{":8080", ":9090", false},
		{"127.0.0.1:0", "127.0.0.1:0", false},
	} {
		_, err := load(with(minimal(), "NODERUNTIME_ADDR", c.addr, "NODERUNTIME_METRICS_ADDR", c.metrics))
		var ce *config.Error
		if got := errors.As(err, &ce) && ce.Variable == "NODERUNTIME_METRICS_ADDR"; got != c.collide || (!c.collide && err != nil) {
			t.Errorf("addr %s, metrics %s: got %v, want a collision: %v", c.addr, c.metrics, err, c.collide)
		}
	}
}

func TestAShutdownGraceShorterThanTheLongestExecutionIsWarnedAbout(t *testing.T) {
	for grace, warned := range map[string]bool{"5s": true, "59999ms": true, "60s": false, "65s": false} {
		cfg, err := load(with(minimal(), "NODERUNTIME_SHUTDOWN_GRACE", grace))
		if err != nil {
			t.Fatal(err)
		}
		if w := cfg.Warnings(); (len(w) == 1 && strings.Contains(w[0], "NODERUNTIME_SHUTDOWN_GRACE")) != warned {
			t.Errorf("grace %s with the default 60s maximum: warnings %q", grace, w)
		}
	}
	// The warning says both values: the cap is often its default, set by nobody.
	cfg, err := load(with(minimal(), "NODERUNTIME_SHUTDOWN_GRACE", "5s"))
	if err != nil {
		t.Fatal(err)
	}
	if w := cfg.Warnings(); len(w) != 1 || !strings.Contains(w[0], "NODERUNTIME_SHUTDOWN_GRACE (5s)") || !strings.Contains(w[0], "NODERUNTIME_EXECUTION_TIMEOUT_MAX (1m0s)") {
		t.Errorf("warnings %q, want both values", w)
	}
}

// Plain http is allowed (a mesh may encrypt below us) but warned about, unless it stays
// on this machine; the warning names the setting.
func TestPlainHTTPToAnotherHostIsWarnedAbout(t *testing.T) {
	for _, c := range []struct {
		env, value string
		warned     bool
	}{
		{"ENGAGE_ALLOWED_BASE_URLS", "https://api.example/v1,http://engage.internal/v1", true},
		{"ENGAGE_ALLOWED_BASE_URLS", "HTTP://engage.internal/v1", true},
		{"ENGAGE_ALLOWED_BASE_URLS", "http://10.0.0.7:8080/v1", true},
		{"ENGAGE_ALLOWED_BASE_URLS", "http://127.0.0.1:8090/v1,http://localhost/v1,http://[::1]:80/v1,http://[::ffff:127.0.0.1]/v1,http://127.9.9.9/v1,http://localhost./v1", false},
		{"ENGAGE_ALLOWED_BASE_URLS", "https://api.example/v1", false},
		{"NODERUNTIME_PUBLIC_URL", "http://noderuntime.example", true},
		{"NODERUNTIME_PUBLIC_URL", "http://127.0.0.1:8080", false},
		{"WEBEX_TOKEN_URL", "http://idbroker.example/token", true},
		{"WEBEX_AUTHORIZE_URL", "http://idbroker.example/authorize", true},
		{"WEBEX_TOKEN_URL", "https://idbroker.example/token", false},
	} {
		cfg, err := load(with(minimal(), c.env, c.value))
		if err != nil {
			t.Fatalf("%s=%s: %v", c.env, c.value, err)
		}
		w := cfg.Warnings()
		if got := len(w) == 1 && strings.HasPrefix(w[0], c.env+": ") && strings.Contains(w[0], "is plain http to another host"); got != c.warned || (!c.warned && len(w) != 0) {
			t.Errorf("%s=%s: warnings %q, want a warning: %v", c.env, c.value, w, c.warned)
		}
	}
}

// The public URL's scheme is read in any case ("HTTPS://" is https: the admin cookie is
// Secure) and written in lower case; a trailing slash is dropped.
func TestThePublicURLsSchemeIsWrittenInLowerCase(t *testing.T) {
	cfg, err := load(with(minimal(), "NODERUNTIME_PUBLIC_URL", "HTTPS://Runtime.example.com/"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PublicURL != "https://Runtime.example.com" {
		t.Fatalf("public URL %q", cfg.PublicURL)
	}
}

// TestTheREADMEListsEverySettingWithItsFlagAndDefault holds the README's configuration
// table to the settings serve reads: every variable with its flag and its default (as
// `noderuntime serve --help` prints it), and no variable that is not a setting.
func TestTheREADMEListsEverySettingWithItsFlagAndDefault(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ flag, def string }
	documented := map[string]row{}
	cell := regexp.MustCompile("`([^`]*)`")
	for _, line := range strings.Split(string(readme), "\n") {
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) != 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`--") {
			continue // not a row of the configuration table
		}
		vars, flags := cell.FindAllStringSubmatch(cells[0], -1), cell.FindAllStringSubmatch(cells[1], -1)
		if len(vars) != len(flags) {
			t.Errorf("README row %q: %d variables, %d flags", line, len(vars), len(flags))
			continue
		}
		def := ""
		if m := cell.FindStringSubmatch(cells[3]); m != nil && len(vars) == 1 {
			def = m[1]
		}
		for i, v := range vars {
			f, _, _ := strings.Cut(strings.TrimPrefix(flags[i][1], "--"), "=") // --pprof=true
			documented[v[1]] = row{flag: f, def: def}
		}
	}
	if len(documented) < 10 {
		t.Fatalf("found only %d settings in the README's table: is its layout still | variable | flag | meaning | default |?", len(documented))
	}

	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	config.Settings(fs, func(string) (string, bool) { return "", false }, &config.Config{})
	usage := regexp.MustCompile(`\(env ([A-Z_]+)\)(?: \(default (.*)\))?$`)
	settings := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		m := usage.FindStringSubmatch(f.Usage)
		if m == nil { // a flag of its own (--migrate): named in the README's prose
			if !strings.Contains(string(readme), "noderuntime serve --"+f.Name) {
				t.Errorf("the README does not mention serve's flag --%s", f.Name)
			}
			return
		}
		env, def := m[1], m[2]
		settings[env] = true
		doc, ok := documented[env]
		switch {
		case !ok:
			t.Errorf("the README's configuration table does not list %s", env)
		case doc.flag != f.Name:
			t.Errorf("the README gives %s the flag --%s; it is --%s", env, doc.flag, f.Name)
		case doc.def != def:
			t.Errorf("the README gives %s the default %q; serve's is %q", env, doc.def, def)
		}
	})
	for env := range documented {
		if !settings[env] {
			t.Errorf("the README's configuration table lists %s, which serve does not read", env)
		}
	}
}

// A list of base URLs may be written with a space after each comma (or a newline, in a
// YAML block), as the other lists may: each entry is read without the spaces around it,
// and an entry of spaces only is skipped.
func TestTheAllowedBaseURLsListTakesSpacesAroundItsEntries(t *testing.T) {
	cfg, err := load(with(minimal(), "ENGAGE_ALLOWED_BASE_URLS", "https://a.example/api/v1, https://b.example/api/v1/ , ,\n https://c.example"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"https://a.example/api/v1", "https://b.example/api/v1", "https://c.example"}
	if !slices.Equal(cfg.EngageAllowedBases, want) {
		t.Fatalf("allowlist %q, want %q", cfg.EngageAllowedBases, want)
	}
}

// A base URL's scheme and host are compared without case, as DNS and URLs define them,
// and its path with case: an entry written in capitals is the same URL.
func TestTheAllowedBaseURLsAreComparedWithoutTheCaseOfSchemeAndHost(t *testing.T) {
	cfg, err := load(with(minimal(), "ENGAGE_ALLOWED_BASE_URLS", "HTTPS://API-US-SITE-1.ImiEngage.IO/api/V1/,Http://127.0.0.1:8080"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"https://api-us-site-1.imiengage.io/api/V1", "http://127.0.0.1:8080"}
	if !slices.Equal(cfg.EngageAllowedBases, want) {
		t.Fatalf("allowlist %q, want %q", cfg.EngageAllowedBases, want)
	}
}

// An allowlist entry that does not parse cannot be masked, so the error names it by its
// place in the list instead of repeating it.
func TestAnAllowlistEntryThatDoesNotParseIsNamedByItsPlace(t *testing.T) {
	_, err := load(with(minimal(), "ENGAGE_ALLOWED_BASE_URLS", "https://a.example/api/v1, https://u:s3cret-pw@b.example:port/api/v1"))
	if err == nil || !strings.Contains(err.Error(), "entry 2") || strings.Contains(err.Error(), "s3cret-pw") || strings.Contains(err.Error(), "b.example") {
		t.Fatalf("got %v, want entry 2 named and not repeated", err)
	}
	// Numbered as written, blank entries counted, as the key lists number theirs.
	_, err = load(with(minimal(), "ENGAGE_ALLOWED_BASE_URLS", "https://a.example/api/v1,,https://u:s3cret-pw@b.example:port/api/v1"))
	if err == nil || !strings.Contains(err.Error(), "entry 3") {
		t.Fatalf("got %v, want entry 3 named", err)
	}
	_, err = load(with(minimal(), "ENGAGE_ALLOWED_BASE_URLS", "https://u:s3cret-pw@a.example/api/v1?x=1"))
	if err == nil || !strings.Contains(err.Error(), `entry 1, "https://u:xxxxx@a.example/api/v1?x=1"`) {
		t.Fatalf("got %v, want the parsed entry quoted with its password masked", err)
	}
}

// Every bound is inclusive where the README says "at most" or "must not exceed": a value
// right on it starts the service.
func TestAValueRightOnItsLimitIsAccepted(t *testing.T) {
	for _, c := range []struct {
		name string
		env  map[string]string
	}{
		{"default timeout equal to the cap", with(minimal(), "NODERUNTIME_EXECUTION_TIMEOUT", "60s")},
		{"timeout cap of exactly an hour", with(minimal(), "NODERUNTIME_EXECUTION_TIMEOUT_MAX", "1h", "NODERUNTIME_SHUTDOWN_GRACE", "1h")},
		{"default timeout of exactly a millisecond", with(minimal(), "NODERUNTIME_EXECUTION_TIMEOUT", "1ms")},
		{"public URL on port 65535", with(minimal(), "NODERUNTIME_PUBLIC_URL", "https://runtime.example.com:65535")},
		{"one execution at once", with(minimal(), "NODERUNTIME_MAX_CONCURRENT_EXECUTIONS", "1")},
		{"a million executions at once", with(minimal(), "NODERUNTIME_MAX_CONCURRENT_EXECUTIONS", "1000000")},
		{"a tenant's share equal to the replica's", with(minimal(), "NODERUNTIME_MAX_CONCURRENT_EXECUTIONS_PER_TENANT", "1000")},
		{"pool minimum equal to its maximum", with(minimal(), "DATABASE_URL", "postgres://u@127.0.0.1/db?pool_max_conns=4&pool_min_conns=4")},
		{"pool idle minimum equal to its maximum", with(minimal(), "DATABASE_URL", "postgres://u@127.0.0.1/db?pool_max_conns=4&pool_min_idle_conns=4")},
	} {
		if _, err := load(c.env); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// The Webex scopes may be separated by spaces, commas or both, as the README says.
func TestWebexScopesAreSeparatedBySpacesOrCommas(t *testing.T) {
	cfg, err := load(with(minimal(), "WEBEX_SCOPES", "spark:all,spark:people_read, meetings:read  cjp:config"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"spark:all", "spark:people_read", "meetings:read", "cjp:config"}
	if !slices.Equal(cfg.Webex.Scopes, want) {
		t.Fatalf("scopes %q, want %q", cfg.Webex.Scopes, want)
	}
}

// The log level is read as written, in any of its four words.
func TestTheLogLevelIsTheOneSet(t *testing.T) {
	for value, want := range map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "ERROR": slog.LevelError} {
		cfg, err := load(with(minimal(), "NODERUNTIME_LOG_LEVEL", value))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.LogLevel != want {
			t.Errorf("NODERUNTIME_LOG_LEVEL=%s: level %v, want %v", value, cfg.LogLevel, want)
		}
	}
}

// serve applies migrations only when --migrate is given: in production the migrate Job
// does, under its own lock and timeouts.
func TestServeMigratesOnlyWhenAsked(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{{nil, false}, {[]string{"--migrate"}, true}} {
		cfg, err := load(minimal(), c.args...)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Migrate != c.want {
			t.Errorf("args %q: migrate %v, want %v", c.args, cfg.Migrate, c.want)
		}
	}
}

// migrate's own check of DATABASE_URL names the variable and never repeats the value,
// as serve's does.
func TestCheckDatabaseURLNamesTheVariableWithoutRepeatingIt(t *testing.T) {
	if err := config.CheckDatabaseURL(goodDB); err != nil {
		t.Fatalf("%s: %v", goodDB, err)
	}
	for _, s := range []string{"s3cret-pw", "postgres://u:s3cret-pw@h/db?pool_max_conns=ten", "postgres://u:s3cret-pw@h/db?pool_max_conns=2&pool_min_conns=10"} {
		err := config.CheckDatabaseURL(s)
		var ce *config.Error
		if !errors.As(err, &ce) || ce.Variable != "DATABASE_URL" {
			t.Errorf("got %v, want an error naming DATABASE_URL", err)
		} else if strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("the error repeats a password: %q", err)
		}
	}
}
