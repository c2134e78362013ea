package app_test

import (
	"bytes"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/noderuntime/noderuntime/internal/config"
	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// TestMetricsAfterAHandfulOfExecutions checks what an operator's dashboards and alerts
// read: executions counted per node, version and outcome, their latency histograms, the
// Engage calls by operation and status, the token cache, and that promtool accepts the
// live exposition.
func TestMetricsAfterAHandfulOfExecutions(t *testing.T) {
	e, auth, search := startWithActiveConversation(t, "metrics")
	nobody := map[string]any{"channel": "sms", "bizAddress": "+15559999", "customerAddress": "+19990000"}
	for range 3 {
		e.execute(e2eKey, "search-conversation", "1.3", auth, search)
	}
	e.execute(e2eKey, "search-conversation", "v1.1", auth, nobody)
	e.execute(e2eKey, "search-conversation", "1.0", auth, map[string]any{"channel": "sms"})
	e.sim.InjectFault(engagesim.Fault{Op: engagesim.OpAppend, Status: 503, Times: 1})
	e.execute(e2eKey, "append-message", "1.4", auth, map[string]any{"conversationId": seed(e.sim, "active"), "channel": "sms",
		"direction": "outbound", "messageType": "text", "timestamp": "2026-03-01T12:00:00Z", "text": "hi"})

	status, raw := e.do(http.MethodGet, "/metrics", e2eKey, nil)
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		f, ok := families[name]
		if !ok {
			t.Fatalf("metric %s missing", name)
		}
		var sum float64
		var found bool
	metrics:
		for _, m := range f.GetMetric() {
			for k, v := range labels {
				if label(m, k) != v {
					continue metrics
				}
			}
			found = true
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
		if !found {
			t.Fatalf("%s%v: no such series", name, labels)
		}
		return sum
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"noderuntime_executions_total", map[string]string{"node": "search-conversation", "version": "1.3", "outcome": "conversationActive"}, 3},
		{"noderuntime_executions_total", map[string]string{"node": "search-conversation", "version": "1.1", "outcome": "noConversationFound"}, 1},
		{"noderuntime_executions_total", map[string]string{"node": "search-conversation", "version": "1.0", "outcome": "onInvalidData"}, 1},
		{"noderuntime_executions_total", map[string]string{"node": "append-message", "version": "1.4", "outcome": "Failure"}, 1},
		{"noderuntime_execution_duration_seconds", map[string]string{"node": "search-conversation", "version": "1.3"}, 3},
		{"noderuntime_execution_duration_seconds", map[string]string{"node": "append-message", "version": "1.4"}, 1},
		{"noderuntime_engage_requests_total", map[string]string{"operation": "search", "status": "200"}, 4},
		{"noderuntime_engage_requests_total", map[string]string{"operation": "append", "status": "503"}, 1},
		{"noderuntime_http_requests_total", map[string]string{"route": "/v1/executions", "code": "200"}, 6},
		// A Config built without the cap gets the default's; none is running now.
		{"noderuntime_executions_max_in_flight", nil, 1000},
		{"noderuntime_executions_in_flight", nil, 0},
		{"noderuntime_executions_refused_total", nil, 0},
	} {
		if got := value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if hits := value("noderuntime_token_cache_requests_total", map[string]string{"result": "hit"}); hits < 4 {
		t.Errorf("token cache hits %v after 5 executions on one authorization, want >= 4", hits)
	}
	if b := families["noderuntime_execution_duration_seconds"].GetMetric()[0].GetHistogram().GetBucket(); b[0].GetUpperBound() != 0.001 || b[len(b)-2].GetUpperBound() != 30 {
		t.Errorf("execution latency buckets %v..%v, want 1 ms to 30 s", b[0].GetUpperBound(), b[len(b)-2].GetUpperBound())
	}
	for _, id := range []string{auth, "acme-engage"} {
		if strings.Contains(string(raw), id) {
			t.Errorf("an ID (%s) became a label value: unbounded cardinality", id)
		}
	}

	// promtool checks names, units, help and types the way Prometheus' own tooling does.
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not on PATH: run `make test` (it installs Debian's prometheus package)")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestSteadyStateExecutionsSendNoQueries: once an authorization's token is cached,
// executions send Postgres nothing. The scrape's own query (authorizations by status)
// counts apart, under origin="scrape", so the service's count reads zero per execution
// while Prometheus scrapes.
func TestSteadyStateExecutionsSendNoQueries(t *testing.T) {
	e, auth, search := startWithActiveConversation(t, "steady")
	e.execute(e2eKey, "search-conversation", "1.3", auth, search) // caches the token
	before := e.queries()
	for range 5 {
		e.execute(e2eKey, "search-conversation", "1.3", auth, search)
	}
	after := e.queries()
	if after["service"] != before["service"] {
		t.Errorf("5 executions on a cached token sent %v queries (before %v, after %v), want 0", after["service"]-before["service"], before, after)
	}
	if after["scrape"] < 1 {
		t.Errorf("the scrape's count of authorizations by status was not counted under origin=scrape: %v", after)
	}
}

// metricFamilies scrapes /metrics and parses it.
func (e *e2e) metricFamilies() map[string]*dto.MetricFamily {
	e.t.Helper()
	status, raw := e.do(http.MethodGet, "/metrics", e2eKey, nil)
	if status != http.StatusOK {
		e.t.Fatalf("/metrics: %d", status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		e.t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// queries scrapes noderuntime_db_queries_total by origin.
func (e *e2e) queries() map[string]float64 {
	e.t.Helper()
	families := e.metricFamilies()
	out := map[string]float64{}
	for _, m := range families["noderuntime_db_queries_total"].GetMetric() {
		out[label(m, "origin")] = m.GetCounter().GetValue()
	}
	if len(out) != 2 {
		e.t.Fatalf("noderuntime_db_queries_total by origin: %v, want service and scrape", out)
	}
	return out
}

// startWithActiveConversation starts the service with a client-credentials
// authorization named name and one active conversation, and returns the search input
// that finds it.
func startWithActiveConversation(t *testing.T, name string) (*e2e, string, map[string]any) {
	e := startE2E(t)
	auth := e.authorize(name, map[string]any{"kind": "client-credentials", "baseUrl": e.sim.BaseURL(),
		"domain": e2eDomain, "tenantId": "acme-engage", "tenantSecret": e2eCCSecret}, "")
	seed(e.sim, "active")
	return e, auth, map[string]any{"channel": "sms", "bizAddress": "+15559999", "customerAddress": "+15550001"}
}

// The service as serve builds it holds a tenant to its own cap on executions at once
// (NODERUNTIME_MAX_CONCURRENT_EXECUTIONS_PER_TENANT) while another tenant's run.
func TestATenantsOwnCapHoldsInTheService(t *testing.T) {
	e := startE2EWith(t, func(c *config.Config) { c.MaxExecutions, c.MaxTenantExecutions = 10, 1 })
	auth := e.authorize("capped", map[string]any{"kind": "client-credentials", "baseUrl": e.sim.BaseURL(),
		"domain": e2eDomain, "tenantId": "acme-engage", "tenantSecret": e2eCCSecret}, "")
	search := map[string]any{"channel": "sms", "bizAddress": "+15559999", "customerAddress": "+15550001"}
	e.execute(e2eKey, "search-conversation", "1.3", auth, search) // a token first
	e.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Latency: time.Minute})
	held := make(chan struct{})
	go func() {
		defer close(held)
		// Held at Engage until its deadline (1 s), then onTimeout.
		e.do(http.MethodPost, "/v1/executions", e2eKey, map[string]any{
			"node": "search-conversation", "version": "1.3", "authorizationId": auth, "input": search, "timeoutMs": 1000})
	}()
	for deadline := time.Now().Add(10 * time.Second); e.sim.InFlight() != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first search did not reach Engage")
		}
	}
	status, raw := e.do(http.MethodPost, "/v1/executions", e2eKey, map[string]any{
		"node": "search-conversation", "version": "1.3", "authorizationId": auth, "input": search})
	if status != http.StatusServiceUnavailable || !strings.Contains(string(raw), "this tenant is running its maximum of 1 executions") {
		t.Fatalf("acme's second search beside its first: %d %s", status, raw)
	}
	if a := e.execute(e2eGlobexKey, "search-conversation", "1.3", auth, search); a.Outcome != "onAuthorizationFailure" {
		t.Fatalf("globex beside acme's full share: %s, want to run (onAuthorizationFailure: the authorization is acme's)", a.Outcome)
	}
	<-held
}
