// Package app wires the service together from its configuration: the pool, the stores,
// the Engage client, the node registry and the HTTP edge. `serve`, `dev` and the
// end-to-end tests build the service through it, so they run the same thing.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/buildinfo"
	"github.com/noderuntime/noderuntime/internal/config"
	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/httpapi"
)

// App is one running instance of the service.
type App struct {
	cfg         config.Config
	logger      *slog.Logger
	pool        *pgxpool.Pool
	registry    *prometheus.Registry
	httpMetrics *httpapi.Metrics // both listeners'
	handler     chi.Router
	auth        *authstore.Store
	// notReady: why the last readiness probe failed, nil when it passed.
	notReady atomic.Pointer[string]
	// schemaSeen: the schema was found current since the start. Migrations only move
	// forward, so it stays current while Postgres is out of reach.
	schemaSeen atomic.Bool
	// keysChecked: the key ring was checked against the stored authorizations (at start,
	// or, when Postgres did not answer then, by a readiness check); keysWrong, what that
	// check refused, which keeps the pod unready.
	keysChecked atomic.Bool
	keysWrong   atomic.Pointer[config.Error]
	postgresUp  prometheus.Gauge // noderuntime_postgres_up, set by each readiness check
	listen      func(network, address string) (net.Listener, error)
}

// New builds the service. It fails if the schema is behind; an unreachable Postgres is
// not an error here (the service starts, and /readyz stays red until it is back; so does
// /readyz?exclude=postgres until the schema has been seen current).
func New(ctx context.Context, cfg config.Config, logger *slog.Logger) (*App, error) {
	queries := &database.QueryCounter{}
	pool, err := database.Open(ctx, cfg.DatabaseURL, queries)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, logger: logger, pool: pool, registry: prometheus.NewRegistry(), listen: net.Listen}
	a.postgresUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "noderuntime_postgres_up",
		Help: "1 when the last readiness check reached Postgres and found the schema current, else 0.",
	})
	if err := a.checkSchemaAtStart(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := a.checkKeysAtStart(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	a.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		database.NewPoolCollector(pool, queries),
		a.postgresUp,
	)
	a.httpMetrics = httpapi.NewMetrics(a.registry)
	deps := httpapi.Deps{
		Logger:  logger,
		Metrics: a.httpMetrics,
		APIKeys: cfg.APIKeys,
		Ready:   a.ready,
	}
	if cfg.MetricsAddr == "" {
		deps.Gatherer = a.registry
	}
	mountAuthorizationPages, err := a.wireAuthorizations(&deps)
	if err != nil {
		pool.Close()
		return nil, err
	}
	a.wireExecutions(&deps)
	a.handler = httpapi.NewRouter(deps)
	mountAuthorizationPages(a.handler)
	return a, nil
}

// checkSchemaAtStart refuses a schema that is behind, so a new binary never runs on an
// old schema. If Postgres does not answer, start anyway and let /readyz tell.
func (a *App) checkSchemaAtStart(parent context.Context) error {
	ctx, cancel := context.WithTimeout(parent, 10*time.Second)
	defer cancel()
	err := database.CheckSchema(ctx, a.pool)
	switch {
	case parent.Err() != nil:
		return parent.Err() // stopped (SIGTERM) while waiting: not an answer from Postgres
	case err == nil:
		a.schemaSeen.Store(true)
		a.postgresUp.Set(1)
		return nil
	case errors.Is(err, database.ErrSchemaBehind):
		return err
	case database.Refused(err):
		// Not an outage to wait out: the settings are wrong. Failing the start makes it
		// visible (CrashLoopBackOff, one line in the logs) instead of a pod never ready.
		return &config.Error{Variable: "DATABASE_URL", Problem: "Postgres refused the connection: " + database.Redact(err).Error() + "; check the user, the password and the database name"}
	default:
		a.logger.Warn("postgres not reachable at start; serving, not ready until it is", slog.String("error", database.Redact(err).Error()))
		return nil
	}
}

// checkKeysAtStart refuses a key ring whose key under a stored key ID opens none of the
// authorizations sealed under it (a key pasted wrong): such a replica would fail every
// execution on them, and a rolling update would stop the replicas that hold the right
// key to make room for it. Rows under a key the ring no longer holds are logged, not
// refused: they fail until re-authorized, as docs/operations.md says, and the others
// serve. Without Postgres at start (or when the check cannot run), the readiness check
// does it once Postgres answers (checkKeysWhenReady).
func (a *App) checkKeysAtStart(parent context.Context) error {
	if !a.schemaSeen.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(parent, 10*time.Second)
	defer cancel()
	check, err := authstore.CheckKeys(ctx, a.pool, a.cfg.EncryptionKeys)
	if err != nil {
		if parent.Err() != nil {
			return parent.Err()
		}
		a.logger.Warn("could not check the encryption keys at start", slog.String("error", err.Error()))
		return nil
	}
	a.keysChecked.Store(true)
	return a.keyRingVerdict(check)
}

// checkKeysWhenReady is the start's key check for a replica that started without it:
// run by a readiness check that found Postgres and the schema current, until it has run
// once. A wrong key keeps the replica unready for good (a restart with the right ring
// is the way out), as the start would have refused it; a check that cannot run does not
// hold the replica back and is tried again at the next readiness check.
func (a *App) checkKeysWhenReady(ctx context.Context) error {
	if e := a.keysWrong.Load(); e != nil {
		return e
	}
	if a.keysChecked.Load() {
		return nil
	}
	check, err := authstore.CheckKeys(ctx, a.pool, a.cfg.EncryptionKeys)
	if err != nil {
		return nil
	}
	a.keysChecked.Store(true)
	if err := a.keyRingVerdict(check); err != nil {
		e, _ := errors.AsType[*config.Error](err)
		a.keysWrong.Store(e)
		a.logger.Error("not ready until restarted with the right key ring", slog.String("error", err.Error()))
		return err
	}
	return nil
}

// keyRingVerdict logs the key IDs the ring lacks and refuses one whose key is wrong.
func (a *App) keyRingVerdict(check authstore.KeyCheck) error {
	for _, m := range check.Missing {
		a.logger.Warn("authorizations are sealed under a key NODERUNTIME_ENCRYPTION_KEYS does not hold: they fail until re-authorized, or until the key is given back",
			slog.String("keyId", m.ID), slog.Int("authorizations", m.Rows))
	}
	if len(check.Wrong) == 0 {
		return nil
	}
	var ids []string
	for _, w := range check.Wrong {
		ids = append(ids, strconv.Quote(w.ID))
	}
	return &config.Error{Variable: "NODERUNTIME_ENCRYPTION_KEYS", Problem: "the key under ID " + strings.Join(ids, ", ") +
		" opens none of the stored authorizations sealed under that ID: check that entry of the ring (a key pasted wrong, or the ID given to another key)"}
}

// ready is /readyz (readiness), logging each change: a failed probe is otherwise logged
// at debug only, and a pod out of its Service with nothing in its log is hard to read.
// A change of reason while not ready is a change too: Postgres gone, then back with a
// schema restored from an older backup, must not leave "unreachable" as the last word.
// The log and noderuntime_postgres_up follow the full check, also when the probe
// excludes Postgres and so still answers 200.
func (a *App) ready(ctx context.Context) httpapi.Readiness {
	res, postgresUp := a.readiness(ctx)
	err := res.Err
	if postgresUp {
		a.postgresUp.Set(1)
	} else {
		a.postgresUp.Set(0)
	}
	var reason *string
	if err != nil {
		r := err.Error()
		reason = &r
	}
	switch was := a.notReady.Swap(reason); {
	case reason != nil && (was == nil || *was != *reason):
		a.logger.Warn("not ready", slog.String("reason", *reason))
	case reason == nil && was != nil:
		a.logger.Info("ready again")
	}
	return res
}

// readiness: Postgres answers, the schema is current and the key ring opens what is
// stored (checked once). postgresUp: Postgres answered and the schema is current. The
// message never carries connection details.
func (a *App) readiness(ctx context.Context) (res httpapi.Readiness, postgresUp bool) {
	ctx, cancel := context.WithTimeout(ctx, readinessCheckTimeout)
	defer cancel()
	conn, release, err := a.checkConn(ctx)
	if err == nil {
		defer release()
		err = conn.Ping(ctx)
	}
	if err != nil {
		if database.Refused(err) {
			return a.postgresDown("refused", "postgres refuses the connection; check DATABASE_URL's user, password and database"), false
		}
		return a.postgresDown("unreachable", "postgres is unreachable"), false
	}
	if err := database.CheckSchema(ctx, conn); err != nil {
		if errors.Is(err, database.ErrSchemaBehind) {
			return httpapi.Readiness{Err: errors.New("database schema is behind; run `noderuntime migrate up`")}, false
		}
		return a.postgresDown("unreachable", "postgres is unreachable"), false
	}
	if err := a.checkKeysWhenReady(ctx); err != nil {
		return httpapi.Readiness{Err: err}, true
	}
	a.schemaSeen.Store(true)
	return httpapi.Readiness{}, true
}

// readinessCheckTimeout bounds the readiness check's questions to Postgres, so /readyz
// answers within it however Postgres fails. The Deployment's readiness probe must wait
// longer (its timeoutSeconds; deploy/ checks it): a probe that gave up first would fail
// /readyz?exclude=postgres, which is to pass a Postgres that hangs, on every replica.
const readinessCheckTimeout = 2 * time.Second

// checkQuerier is what the readiness check asks Postgres on: a pool's connection or one
// of its own.
type checkQuerier interface {
	database.Querier
	Ping(ctx context.Context) error
}

// poolWaitForCheck is how long the readiness check waits for one of the pool's
// connections before it asks on a connection of its own.
const poolWaitForCheck = 500 * time.Millisecond

// checkConn returns a connection for the readiness check and how to give it back: one
// of the pool's, or, when every one of those is in use (refreshes holding theirs
// through a slow token endpoint, a burst of token misses), a connection of its own,
// closed after the check. A full pool is not Postgres unreachable, and
// noderuntime_postgres_up must not say so; a Postgres that hangs hangs that connection
// too.
func (a *App) checkConn(ctx context.Context) (checkQuerier, func(), error) {
	waitCtx, cancel := context.WithTimeout(ctx, poolWaitForCheck)
	conn, err := a.pool.Acquire(waitCtx)
	cancel()
	if err == nil {
		return conn, conn.Release, nil
	}
	if ctx.Err() != nil || waitCtx.Err() == nil {
		return nil, nil, err // not a wait for a free connection: connecting failed
	}
	if st := a.pool.Stat(); st.AcquiredConns() < st.MaxConns() {
		// Not full: a connection is being made (a slow connect), wait for it as long as
		// the check may.
		if conn, err = a.pool.Acquire(ctx); err != nil {
			return nil, nil, err
		}
		return conn, conn.Release, nil
	}
	own, err := pgx.ConnectConfig(ctx, a.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, nil, err
	}
	return own, func() { own.Close(context.WithoutCancel(ctx)) }, nil
}

// postgresDown is a check that failed only on Postgres. /readyz?exclude=postgres may
// pass it once the schema has been seen current: a pod that never reached Postgres
// must not take traffic on a rollout, nor one whose key ring was found wrong.
func (a *App) postgresDown(how, msg string) httpapi.Readiness {
	res := httpapi.Readiness{Err: errors.New(msg)}
	if a.schemaSeen.Load() && a.keysWrong.Load() == nil {
		res.PostgresDown = how
	}
	return res
}

// Handler is the service's HTTP handler.
func (a *App) Handler() http.Handler { return a.handler }

// Routes lists the service's routes (for the OpenAPI check).
func (a *App) Routes() chi.Routes { return a.handler }

// Registry is the service's metrics registry.
func (a *App) Registry() *prometheus.Registry { return a.registry }

// Pool is the service's Postgres pool.
func (a *App) Pool() *pgxpool.Pool { return a.pool }

// Run serves until ctx is done, then drains within the shutdown grace and closes the
// pool. ready, when non-nil, receives the bound address once the listener is open.
// A Run that cannot listen closes the pool too: either way the App is done.
func (a *App) Run(ctx context.Context, ready func(addr net.Addr)) error {
	if ctx.Err() != nil { // stopped before serving: take no port, not for a moment
		a.Close()
		a.logger.Info("stopped before serving")
		return nil
	}
	ln, err := a.listen("tcp", a.cfg.Addr)
	if err != nil {
		a.Close()
		return fmt.Errorf("NODERUNTIME_ADDR: listen on %s: %w", a.cfg.Addr, err)
	}
	srv := httpapi.NewServer(a.handler, a.cfg.ExecutionTimeoutMax+15*time.Second)
	// Either server ending ends both: a process serving only /metrics, or only the
	// API without its metrics, is worse than one that stops and is restarted. The
	// metrics listener outlives the main one's drain (up to the shutdown grace): the
	// executions that finish then are counted where Prometheus still reads them.
	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()
	metricsCtx, stopMetrics := context.WithCancel(context.Background())
	defer stopMetrics()
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	if a.cfg.MetricsAddr != "" {
		mln, err := a.listen("tcp", a.cfg.MetricsAddr)
		if err != nil {
			ln.Close()
			a.Close()
			return fmt.Errorf("NODERUNTIME_METRICS_ADDR: listen on %s: %w", a.cfg.MetricsAddr, err)
		}
		msrv := httpapi.NewServer(a.metricsHandler(), 30*time.Second)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := httpapi.Serve(metricsCtx, msrv, mln, time.Second); err != nil {
				a.logger.Error("the metrics listener failed; stopping", slog.String("error", err.Error()))
				errs <- fmt.Errorf("NODERUNTIME_METRICS_ADDR: serve: %w", err)
			}
			stopServing()
		}()
		a.logger.Info("serving metrics", slog.String("addr", mln.Addr().String()))
	}
	a.logger.Info("serving", slog.String("addr", ln.Addr().String()), slog.String("version", buildinfo.Version))
	if ready != nil {
		ready(ln.Addr())
	}
	// The drain may take the whole grace: say it starts (before it does), or the log is
	// silent meanwhile.
	go func() {
		select {
		case <-ctx.Done():
			a.logger.Info("stopping: no new connections, in-flight requests finish", slog.String("grace", a.cfg.ShutdownGrace.String()))
			stopServing()
		case <-serveCtx.Done():
		}
	}()
	err = httpapi.Serve(serveCtx, srv, ln, a.cfg.ShutdownGrace)
	stopServing()
	stopMetrics()
	wg.Wait()
	close(errs)
	for e := range errs {
		if err == nil {
			err = e
		}
	}
	a.Close()
	a.logger.Info("stopped")
	return err
}

// metricsHandler serves /metrics and, when configured, the profiler. Both stay on the
// metrics listener, which only Prometheus reaches. The profiler's /debug/pprof/cmdline
// is not served: every setting is also a flag, so the command line may hold the
// encryption keys, the Webex client secret or the Postgres password (pprof.Index
// answers it 404, an unknown profile).
func (a *App) metricsHandler() http.Handler {
	return httpapi.NewOperationsRouter(a.logger, a.httpMetrics, func(r chi.Router) {
		r.Method(http.MethodGet, "/metrics", httpapi.MetricsHandler(a.registry))
		if a.cfg.Pprof {
			r.HandleFunc("/debug/pprof/*", pprof.Index) // the named profiles: heap, goroutine, ...
			r.HandleFunc("/debug/pprof/profile", pprof.Profile)
			r.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			r.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
	})
}

// Close stops the authorization listener and releases the pool.
func (a *App) Close() {
	if a.auth != nil {
		a.auth.Close()
	}
	a.pool.Close()
}
