package app_test

import (
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/engagesim"
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
