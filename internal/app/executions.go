package app

import (
	"context"
	"log/slog"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/config"
	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/httpapi"
	"github.com/noderuntime/noderuntime/internal/idempotency"
	"github.com/noderuntime/noderuntime/internal/nodes"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// wireExecutions builds the node runtime on the authorization store (wire it first):
// the Engage client with its metrics and a circuit breaker per base URL, the node
// registry, the executor, the idempotency store and the cap on executions at once; and
// adds POST /v1/executions and the catalog to deps.
func (a *App) wireExecutions(deps *httpapi.Deps) {
	engageMetrics := engage.NewMetrics(a.registry)
	client := engage.New(engage.Options{
		Observer: engageMetrics,
		Breaker:  &engage.BreakerOptions{Observer: breakerLog{engageMetrics, a.logger}},
	})
	reg := nodes.NewRegistry()
	exec := nodes.NewExecutor(nodes.ExecutorOptions{
		Engage:      client,
		Credentials: credentials{a.auth},
		Metrics:     nodes.NewMetrics(a.registry, reg, httpapi.LatencyBuckets),
		Logger:      a.belowRequests(),
	})
	maxExecutions := a.cfg.MaxExecutions
	if maxExecutions == 0 { // a Config built in code, not from the settings
		maxExecutions = config.DefaultMaxExecutions
	}
	// Executions are the hot path: V1Hot resolves them in one route lookup.
	deps.V1Hot = append(deps.V1Hot,
		httpapi.ExecutionRoutes(httpapi.Executions{
			Registry:       reg,
			Executor:       exec,
			Idempotency:    idempotency.New(a.pool, idempotency.Options{}),
			DefaultTimeout: a.cfg.ExecutionTimeout,
			MaxTimeout:     a.cfg.ExecutionTimeoutMax,
			Admission: httpapi.NewAdmission(httpapi.AdmissionOptions{
				Max: maxExecutions, PerTenant: a.cfg.MaxTenantExecutions, Tenants: a.cfg.APIKeys.Tenants(),
			}, a.registry),
		}))
	deps.V1 = append(deps.V1, httpapi.CatalogRoutes(reg))
}

// belowRequests is the logger of the packages a request calls into (the authorization
// store, the nodes): their lines name the request's ID, as its access-log line does.
func (a *App) belowRequests() *slog.Logger {
	return slog.New(httpapi.LogRequestIDs(a.logger.Handler()))
}

// breakerLog logs each state change of a circuit breaker with its Engage domain, which
// the metric leaves out (a label per domain would grow without bound): the metric says
// how many breakers of a base URL are open, the log says whose.
type breakerLog struct {
	metrics *engage.Metrics
	logger  *slog.Logger
}

func (b breakerLog) ObserveBreakerChange(target, domain string, from, to int) {
	b.metrics.ObserveBreakerChange(target, domain, from, to)
	if from == engage.BreakerNone || to == engage.BreakerNone {
		return // a new breaker, closed, or a closed one forgotten: nothing happened to calls
	}
	level := slog.LevelInfo
	if to == engage.BreakerOpen {
		level = slog.LevelWarn
	}
	b.logger.LogAttrs(context.Background(), level, "circuit breaker "+engage.BreakerStates()[to],
		slog.String("target", target), slog.String("domain", domain),
		slog.String("from", engage.BreakerStates()[from]))
}

// credentials is the authorization store as the nodes' token source; nodes never see
// the store itself.
type credentials struct{ store *authstore.Store }

func (c credentials) Token(ctx context.Context, t tenant.ID, authorizationID string) (nodes.Credential, error) {
	cr, err := c.store.Token(ctx, t, authorizationID)
	return credential(cr), err
}

func (c credentials) Refresh(ctx context.Context, t tenant.ID, authorizationID string, rejected secrets.Value) (nodes.Credential, error) {
	cr, err := c.store.Refresh(ctx, t, authorizationID, rejected)
	return credential(cr), err
}

func credential(c authstore.Credential) nodes.Credential {
	return nodes.Credential{
		AuthorizationID: c.AuthorizationID, BaseURL: c.BaseURL, Domain: c.Domain,
		AccessToken: c.AccessToken, ExpiresAt: c.ExpiresAt,
	}
}
