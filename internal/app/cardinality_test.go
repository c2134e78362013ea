package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// TestWhatCallersInventAddsNoSeries: the labels of /metrics take their values from the
// service's own vocabulary, never from callers. Engage domains, authorization names and
// IDs, node names and versions that do not exist, unmatched paths, request IDs: after
// one round of each, ten more rounds with new values leave the set of series as it was.
// A label a caller could feed would grow it by a series a round, without bound.
func TestWhatCallersInventAddsNoSeries(t *testing.T) {
	e := startE2E(t)
	search := map[string]any{"channel": "sms", "bizAddress": "+15559999", "customerAddress": "+15550001"}
	round := func(i int) {
		domain := fmt.Sprintf("invented-domain-%d", i)
		auth := e.authorize(fmt.Sprintf("invented-name-%d", i), map[string]any{"kind": "client-credentials",
			"baseUrl": e.sim.BaseURL(), "domain": domain, "tenantId": "acme-engage", "tenantSecret": e2eCCSecret}, "")
		e.execute(e2eKey, "search-conversation", "1.3", auth, search)
		e.execute(e2eKey, "search-conversation", "1.3", fmt.Sprintf("invented-authorization-%d", i), search)
		for _, c := range []struct{ method, path string }{
			{http.MethodGet, fmt.Sprintf("/invented/path/%d", i)},
			{http.MethodGet, fmt.Sprintf("/v1/invented-%d", i)},
			{http.MethodGet, fmt.Sprintf("/v1/authorizations/invented-%d", i)},
			{http.MethodGet, fmt.Sprintf("/v1/nodes/invented-node-%d/versions/1.0", i)},
		} {
			if status, raw := e.do(c.method, c.path, e2eKey, nil); status != http.StatusNotFound {
				t.Fatalf("%s %s: %d %s", c.method, c.path, status, raw)
			}
		}
		for _, nv := range [][2]string{{fmt.Sprintf("invented-node-%d", i), "1.0"}, {"search-conversation", fmt.Sprintf("9.%d", i)}} {
			status, raw := e.do(http.MethodPost, "/v1/executions", e2eKey, map[string]any{
				"node": nv[0], "version": nv[1], "authorizationId": auth, "input": search})
			if status != http.StatusNotFound {
				t.Fatalf("%s %s: %d %s", nv[0], nv[1], status, raw)
			}
		}
	}
	e.series() // the scrape's own series appear once it has been answered
	login := e.authorize("invented-login", map[string]any{"kind": "webex-login", "baseUrl": e.sim.BaseURL(), "domain": e2eDomain}, "alice")
	e.execute(e2eKey, "search-conversation", "1.3", login, search)
	e.execute(e2eGlobexKey, "search-conversation", "1.3", login, search) // another tenant's ID
	round(0)
	before := e.series()
	for i := 1; i <= 10; i++ {
		round(i)
	}
	after := e.series()
	var added []string
	for s := range after {
		if !before[s] {
			added = append(added, s)
		}
	}
	sort.Strings(added)
	if len(added) > 0 {
		t.Errorf("ten rounds of invented values added %d series, want none:\n%s", len(added), strings.Join(added, "\n"))
	}

	// No secret, tenant, authorization or caller's text anywhere in the exposition, help
	// texts included: the canaries are the passwords, secrets and keys of this service.
	status, raw := e.do(http.MethodGet, "/metrics", e2eKey, nil)
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d", status)
	}
	for _, leak := range []string{"CANARY", e2eKey, e2eGlobexKey, "invented", login, e2eDomain, `"acme"`, `"globex"`, "acme-engage"} {
		if strings.Contains(string(raw), leak) {
			t.Errorf("/metrics shows %q", leak)
		}
	}
}

// series is the set of series on /metrics, by name and labels (histograms as one).
func (e *e2e) series() map[string]bool {
	e.t.Helper()
	families := e.metricFamilies()
	out := map[string]bool{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			out[name+"{"+strings.Join(labels, ",")+"}"] = true
		}
	}
	return out
}

// TestAnOpenBreakerIsLoggedWithItsDomain: the breakers' metric counts them per base URL
// and leaves the tenants' Engage domains out; the log line of the change names the
// domain, so the operator still finds whose Engage is failing.
func TestAnOpenBreakerIsLoggedWithItsDomain(t *testing.T) {
	e, auth, search := startWithActiveConversation(t, "breaker")
	e.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: 503})
	for range 10 {
		if a := e.execute(e2eKey, "search-conversation", "1.3", auth, search); a.Error != nil && a.Error.Code == "engage_circuit_open" {
			break
		}
	}
	var found bool
	for _, l := range strings.Split(e.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "circuit breaker open" {
			found = true
			if m["level"] != "WARN" || m["domain"] != e2eDomain || m["target"] != e.sim.BaseURL() || m["from"] != "closed" {
				t.Errorf("the breaker's log line: %s", l)
			}
		}
	}
	if !found {
		t.Fatalf("no log line says the breaker opened:\n%s", e.logs.String())
	}
	_, raw := e.do(http.MethodGet, "/metrics", e2eKey, nil)
	if want := `noderuntime_circuit_breakers{state="open",target="` + e.sim.BaseURL() + `"} 1`; !strings.Contains(string(raw), want) {
		t.Errorf("/metrics has no %s", want)
	}
}
