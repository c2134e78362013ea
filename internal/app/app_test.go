package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/noderuntime/noderuntime/internal/app"
	"github.com/noderuntime/noderuntime/internal/config"
	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func testConfig(t *testing.T, dbURL string) config.Config {
	t.Helper()
	ring, err := secrets.ParseKeyRing("k1:" + base64.StdEncoding.EncodeToString(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := tenant.ParseKeys("acme:" + tenant.HashKey("key"))
	if err != nil {
		t.Fatal(err)
	}
	return config.Config{
		Addr: "127.0.0.1:0", DatabaseURL: dbURL, EncryptionKeys: ring, APIKeys: keys,
		EngageAllowedBases: config.DefaultEngageBaseURLs(),
		ExecutionTimeout:   10 * time.Second, ExecutionTimeoutMax: time.Minute,
		ShutdownGrace: 5 * time.Second, TokenRefreshSkew: 5 * time.Minute,
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

// serveApp builds the service as serve does and serves its handler on loopback until
// the test ends.
func serveApp(t *testing.T, cfg config.Config, logger *slog.Logger) (*app.App, *httptest.Server) {
	t.Helper()
	a, err := app.New(t.Context(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return a, srv
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// get answers the status and the JSON body of a GET.
func get(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: %d, body not JSON: %v", url, resp.StatusCode, err)
	}
	return resp.StatusCode, body
}

// postgresUp reads noderuntime_postgres_up from the app's registry.
func postgresUp(t *testing.T, a *app.App) float64 {
	t.Helper()
	families, err := a.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "noderuntime_postgres_up" {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("noderuntime_postgres_up is not registered")
	return 0
}

// The probe the Deployment uses, /readyz?exclude=postgres, stays green through the
// outage (every replica still serves its cached executions), saying it is degraded;
// /readyz, the log and noderuntime_postgres_up follow the full check.
func TestReadyzIsRedWhilePostgresIsDownAndGreenWhenItIsBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster, url := dbtest.NewCluster(t)
	var logs lockedBuffer
	a, srv := serveApp(t, testConfig(t, url), slog.New(slog.NewJSONHandler(&logs, nil)))

	if got := status(t, srv.URL+"/readyz"); got != 200 {
		t.Fatalf("with postgres up: %d", got)
	}
	if code, body := get(t, srv.URL+"/readyz?exclude=postgres"); code != 200 || body["status"] != "ready" {
		t.Fatalf("?exclude=postgres with postgres up: %d %v", code, body)
	}
	if up := postgresUp(t, a); up != 1 {
		t.Fatalf("noderuntime_postgres_up %v with postgres up, want 1", up)
	}
	if err := cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Only the probe that excludes Postgres first: the log and the gauge follow the
	// full check whichever variant is asked.
	for range 3 {
		if code, body := get(t, srv.URL+"/readyz?exclude=postgres"); code != 200 || body["status"] != "degraded" || body["postgres"] != "unreachable" {
			t.Fatalf("?exclude=postgres with postgres down: %d %v, want 200 degraded", code, body)
		}
	}
	if !strings.Contains(logs.String(), `"msg":"not ready","reason":"postgres is unreachable"`) {
		t.Fatalf("the probe excluding postgres logged no change:\n%s", logs.String())
	}
	if up := postgresUp(t, a); up != 0 {
		t.Fatalf("noderuntime_postgres_up %v with postgres down, want 0", up)
	}
	if got := status(t, srv.URL+"/readyz"); got != 503 {
		t.Fatalf("with postgres down: %d, want 503", got)
	}
	if got := status(t, srv.URL+"/healthz"); got != 200 {
		t.Fatalf("liveness must not follow postgres: %d", got)
	}
	if err := cluster.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The pool reconnects by itself; wait for the condition, not a fixed time. Again
	// on the excluding probe only: its body tells degraded from ready.
	waitExcludingProbe(t, srv.URL, 30*time.Second, true, func(body map[string]any) bool { return body["status"] == "ready" })
	if up := postgresUp(t, a); up != 1 {
		t.Fatalf("noderuntime_postgres_up %v after postgres came back, want 1", up)
	}
	if got := status(t, srv.URL+"/readyz"); got != 200 {
		t.Fatalf("/readyz %d after postgres came back", got)
	}
	out := logs.String()
	down, back := strings.Index(out, `"msg":"not ready"`), strings.Index(out, `"msg":"ready again"`)
	if down < 0 || back < down || strings.Count(out, `"msg":"not ready"`) != 1 {
		t.Fatalf("want one not ready, then ready again, in the log:\n%s", out)
	}
}

// A Postgres that refuses the pod after it started (here: its database is gone, 3D000)
// is an outage for the probe that excludes Postgres too: the pod still serves its caches.
func TestReadyzExcludingPostgresPassesARefusalAfterStart(t *testing.T) {
	dbURL := dbtest.NewURL(t)
	a, srv := serveApp(t, testConfig(t, dbURL), quietLogger())
	if code, body := get(t, srv.URL+"/readyz?exclude=postgres"); code != 200 || body["status"] != "ready" {
		t.Fatalf("before: %d %v", code, body)
	}
	u, err := neturl.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(t.Context(), dbtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(t.Context(), "drop database "+pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()+" with (force)"); err != nil {
		t.Fatal(err)
	}
	// The pool first meets its closed connections, then the refusal.
	waitExcludingProbe(t, srv.URL, 10*time.Second, true, func(body map[string]any) bool { return body["postgres"] == "refused" })
	if code, body := get(t, srv.URL+"/readyz"); code != 503 || !strings.HasPrefix(body["detail"].(string), "postgres refuses the connection") {
		t.Fatalf("/readyz after the refusal: %d %v", code, body)
	}
	if up := postgresUp(t, a); up != 0 {
		t.Fatalf("noderuntime_postgres_up %v, want 0", up)
	}
}

// A refused start leaves no connection open on the database: New closes its pool.
func TestServeRefusesASchemaThatIsBehind(t *testing.T) {
	url := dbtest.NewEmptyURL(t)
	_, err := app.New(context.Background(), testConfig(t, url), quietLogger())
	if !errors.Is(err, database.ErrSchemaBehind) {
		t.Fatalf("got %v, want ErrSchemaBehind", err)
	}
	waitNoConnectionsLeft(t, url)
}

// waitNoConnectionsLeft waits until no session but its own is connected to url's
// database, and fails if one is still there after 10 s.
func waitNoConnectionsLeft(t *testing.T, url string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var n int
		if err := conn.QueryRow(t.Context(), `select count(*) from pg_stat_activity
			where datname = current_database() and pid <> pg_backend_pid()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open on the database 10 s after the start was refused", n)
		}
	}
}

func TestAppStartsWhenPostgresIsUnreachableAndReportsNotReady(t *testing.T) {
	var logs lockedBuffer
	a, srv := serveApp(t, testConfig(t, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=1"), slog.New(slog.NewJSONHandler(&logs, nil)))
	// Nor does the probe that excludes Postgres pass: this pod has never seen the
	// schema, and on a rollout it must not take traffic.
	for range 3 {
		if got := status(t, srv.URL+"/readyz"); got != 503 {
			t.Fatalf("readyz %d, want 503", got)
		}
		if code, body := get(t, srv.URL+"/readyz?exclude=postgres"); code != 503 || body["detail"] != "postgres is unreachable" {
			t.Fatalf("readyz?exclude=postgres %d %v, want 503", code, body)
		}
	}
	if up := postgresUp(t, a); up != 0 {
		t.Fatalf("noderuntime_postgres_up %v, want 0", up)
	}
	// The start names the cause; the probes log the change once, not each probe.
	out := logs.String()
	if !strings.Contains(out, "connection refused") || strings.Count(out, `"msg":"not ready","reason":"postgres is unreachable"`) != 1 {
		t.Fatalf("logs:\n%s", out)
	}
}

func TestReadyzIsGreenOnAMigratedDatabase(t *testing.T) {
	_, srv := serveApp(t, testConfig(t, dbtest.NewURL(t)), quietLogger())
	if got := status(t, srv.URL+"/readyz"); got != 200 {
		t.Fatalf("readyz %d", got)
	}
}

func TestMetricsListenerServesMetricsAndTheProfilerOnlyWhenAskedNeverTheCommandLine(t *testing.T) {
	for _, pprofOn := range []bool{false, true} {
		cfg := testConfig(t, dbtest.NewURL(t))
		cfg.MetricsAddr = freeAddr(t)
		cfg.Pprof = pprofOn
		a, err := app.New(context.Background(), cfg, quietLogger())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		up := make(chan struct{})
		go func() { done <- a.Run(ctx, func(net.Addr) { close(up) }) }()
		<-up
		if got := status(t, "http://"+cfg.MetricsAddr+"/metrics"); got != 200 {
			t.Errorf("pprof %v: /metrics %d", pprofOn, got)
		}
		want := 404
		if pprofOn {
			want = 200
		}
		if got := status(t, "http://"+cfg.MetricsAddr+"/debug/pprof/"); got != want {
			t.Errorf("pprof %v: /debug/pprof/ %d, want %d", pprofOn, got, want)
		}
		if pprofOn {
			if got := status(t, "http://"+cfg.MetricsAddr+"/debug/pprof/heap"); got != 200 {
				t.Errorf("/debug/pprof/heap %d", got)
			}
			// Never the process's command line: every setting is also a flag, so
			// --encryption-keys, --webex-client-secret or a --database-url with a
			// password would go to whoever reaches the metrics listener.
			resp, err := http.Get("http://" + cfg.MetricsAddr + "/debug/pprof/cmdline")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), os.Args[0]) {
				t.Errorf("/debug/pprof/cmdline: %d %q, want a 404 without the command line", resp.StatusCode, body)
			}
		}
		// Like the main listener: a request ID on every answer, a problem document for
		// what is not there.
		for path, want := range map[string]int{"/metrics": 200, "/nope": 404} {
			resp, err := http.Get("http://" + cfg.MetricsAddr + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want || resp.Header.Get("X-Request-Id") == "" {
				t.Errorf("%s: %d with X-Request-Id %q, want %d with one", path, resp.StatusCode, resp.Header.Get("X-Request-Id"), want)
			}
			if ct := resp.Header.Get("Content-Type"); want == 404 && ct != "application/problem+json" {
				t.Errorf("%s: Content-Type %q, want a problem document", path, ct)
			}
		}
		resp, err := http.Post("http://"+cfg.MetricsAddr+"/metrics", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("POST /metrics: %d %q, want 405 as a problem document", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// A busy port stops the start with the setting that named it, and releases what New
// opened, as a Run that stopped does: the authorization listener's connection and the
// pool, and the main address when the metrics one is busy.
func TestABusyPortIsNamedByItsSetting(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	url := dbtest.NewURL(t)
	for setting, cfg := range map[string]func(*config.Config){
		"NODERUNTIME_ADDR":         func(c *config.Config) { c.Addr = busy.Addr().String() },
		"NODERUNTIME_METRICS_ADDR": func(c *config.Config) { c.Addr, c.MetricsAddr = freeAddr(t), busy.Addr().String() },
	} {
		c := testConfig(t, url)
		cfg(&c)
		a, err := app.New(t.Context(), c, quietLogger())
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); !a.Authorizations().Listening(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the authorization listener never connected")
			}
		}
		if err := a.Run(t.Context(), nil); err == nil || !strings.HasPrefix(err.Error(), setting+": listen on "+busy.Addr().String()) {
			t.Errorf("%s busy: %v", setting, err)
		}
		if a.Authorizations().Listening() {
			t.Errorf("%s busy: the authorization listener still holds its connection after Run returned", setting)
		}
		if err := a.Pool().Ping(t.Context()); err == nil {
			t.Errorf("%s busy: the pool is still open after Run returned", setting)
		}
		if setting == "NODERUNTIME_METRICS_ADDR" { // the main listener, opened first, is closed again
			ln, err := net.Listen("tcp", c.Addr)
			if err != nil {
				t.Errorf("%s busy: NODERUNTIME_ADDR %s still taken after Run returned: %v", setting, c.Addr, err)
			} else {
				ln.Close()
			}
		}
	}
}

// The log says which version serves, and when a stop starts draining (which may take
// the whole grace), not only when it has stopped.
func TestTheLogSaysTheVersionAndWhenADrainStarts(t *testing.T) {
	var logs lockedBuffer
	a, err := app.New(t.Context(), testConfig(t, dbtest.NewURL(t)), slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, func(net.Addr) { cancel() }) }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	serving, stopping, stopped := strings.Index(out, `"msg":"serving","addr"`), strings.Index(out, `"msg":"stopping: no new connections`), strings.Index(out, `"msg":"stopped"`)
	if serving < 0 || !strings.Contains(out, `"version":"`) || stopping < serving || stopped < stopping {
		t.Fatalf("want serving (with the version), stopping, stopped in that order:\n%s", out)
	}
}

// The cap on executions at once is the setting's; /metrics says which applies.
func TestTheCapOnExecutionsAtOnceIsTheSetting(t *testing.T) {
	cfg := testConfig(t, dbtest.NewURL(t))
	cfg.MaxExecutions = 7
	_, srv := serveApp(t, cfg, quietLogger())
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "\nnoderuntime_executions_max_in_flight 7\n") {
		t.Fatalf("/metrics does not give the cap of 7:\n%s", raw)
	}
}
