package app

import (
	"context"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/httpapi"
	"github.com/noderuntime/noderuntime/internal/idempotency"
	"github.com/noderuntime/noderuntime/internal/nodes"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// wireExecutions builds the node runtime on the authorization store (wire it first):
// the Engage client with its metrics and a circuit breaker per base URL, the node
// registry, the executor and the idempotency store; and adds POST /v1/executions and
// the catalog to deps.
func (a *App) wireExecutions(deps *httpapi.Deps) {
	engageMetrics := engage.NewMetrics(a.registry)
	client := engage.New(engage.Options{
		Observer: engageMetrics,
		Breaker:  &engage.BreakerOptions{Observer: engageMetrics},
	})
	reg := nodes.NewRegistry()
	exec := nodes.NewExecutor(nodes.ExecutorOptions{
		Engage:      client,
		Credentials: credentials{a.auth},
		Metrics:     nodes.NewMetrics(a.registry, reg, httpapi.LatencyBuckets),
		Logger:      a.logger,
	})
	// Executions are the hot path: V1Hot resolves them in one route lookup.
	deps.V1Hot = append(deps.V1Hot,
		httpapi.ExecutionRoutes(httpapi.Executions{
			Registry: reg, Executor: exec,
			Idempotency:    idempotency.New(a.pool, idempotency.Options{}),
			DefaultTimeout: a.cfg.ExecutionTimeout, MaxTimeout: a.cfg.ExecutionTimeoutMx,
		}))
	deps.V1 = append(deps.V1, httpapi.CatalogRoutes(reg))
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
