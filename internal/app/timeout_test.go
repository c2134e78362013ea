package app_test

import (
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/config"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// An execution that names no timeoutMs runs under NODERUNTIME_EXECUTION_TIMEOUT, not
// under the maximum a caller may ask for: a slow Engage answers the caller at the
// default deadline.
func TestAnExecutionWithoutATimeoutStopsAtTheConfiguredDefault(t *testing.T) {
	t.Parallel()
	e := startE2E(t) // default 5 s, maximum 1 min
	cc := e.authorize("cc", map[string]any{"kind": "client-credentials", "baseUrl": e.sim.BaseURL(), "domain": e2eDomain,
		"tenantId": "acme-engage", "tenantSecret": e2eCCSecret}, "")
	spec := e2eNodes["search-conversation"]
	input := spec.input(e.sim)
	e.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Latency: 30 * time.Second})
	start := time.Now()
	a := e.execute(e2eKey, "search-conversation", "1.0", cc, input)
	took := time.Since(start)
	if took > 20*time.Second || a.Outcome == spec.success || a.Error == nil {
		t.Fatalf("after %v: outcome %s, error %+v; want a failure at about the 5 s default", took, a.Outcome, a.Error)
	}
	if took < 4*time.Second {
		t.Fatalf("the execution failed after %v, before its deadline: %s %+v", took, a.Outcome, a.Error)
	}
}

// A token refresh gets at most half of NODERUNTIME_EXECUTION_TIMEOUT: a token endpoint
// that hangs fails the refresh inside the execution's deadline, and the flow learns
// that the token was unavailable (token_unavailable), not merely that time ran out.
func TestARefreshThatHangsFailsInsideTheExecutionsDeadline(t *testing.T) {
	t.Parallel()
	e := startE2EWith(t, func(c *config.Config) { c.ExecutionTimeout = 4 * time.Second }) // refreshes get 2 s
	cc := e.authorize("cc", map[string]any{"kind": "client-credentials", "baseUrl": e.sim.BaseURL(), "domain": e2eDomain,
		"tenantId": "acme-engage", "tenantSecret": e2eCCSecret}, "")
	input := e2eNodes["search-conversation"].input(e.sim)
	e.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: 401, Times: 1}) // the token is refused: refresh it
	e.sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Latency: 30 * time.Second})
	if a := e.execute(e2eKey, "search-conversation", "1.0", cc, input); a.Error == nil || a.Error.Code != outcomes.CodeTokenUnavailable {
		t.Fatalf("outcome %s, error %+v; want %s", a.Outcome, a.Error, outcomes.CodeTokenUnavailable)
	}
}
