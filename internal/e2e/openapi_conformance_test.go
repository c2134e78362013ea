package e2e

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/loginflow"
	"github.com/noderuntime/noderuntime/internal/nodes"
)

// oasNotProvoked are the documented answers the conformance test does not provoke, each
// with the reason. Every other documented answer of every operation must be seen.
var oasNotProvoked = map[string]string{
	"reauthorizeAuthorization 409": "needs two re-authorizations of one client-credentials authorization to interleave at the store; a race, not a request",
	"adminReauthorize 409":         "the same race as reauthorizeAuthorization 409, through the admin form",
}

// TestTheServiceAnswersWhatItsOpenAPIDescriptionSays drives the real service (in
// process, real Postgres, the Engage simulator over HTTP) through every operation of
// api/openapi.yaml and every answer each documents (oasNotProvoked aside): successes
// and failures of every node version, each kind of execution error, authorizations of
// both kinds, the catalog, the probes, the OAuth callback, the admin pages, and, with
// Postgres cut off, the 500s and 503s. Every answer must have a documented status, a
// documented media type, the required headers and a JSON body that validates against
// its schema, also when the schema is closed (a property the description names nowhere
// is drift, see oasSpec.inline); a request body the service accepted must validate
// against the request's schema.
func TestTheServiceAnswersWhatItsOpenAPIDescriptionSays(t *testing.T) {
	spec := loadOpenAPI(t)
	db := dbtest.NewSwitch(t, dbtest.NewURL(t))
	s := startService(t, serviceOptions{dbURL: db.URL, sims: 2})
	check := newOASChecker(t, spec, s.url)
	s.client = check.client(s.client) // the service's own cleanup scrape is checked too
	sim, other := s.sims[0], s.sims[1]
	api := func(method, path, key string, body any, header http.Header, want int) []byte {
		t.Helper()
		resp, raw := s.do(method, path, key, body, header)
		if resp.StatusCode != want {
			t.Errorf("%s %s: %d %s, want %d", method, path, resp.StatusCode, raw, want)
		}
		return raw
	}
	typed := func(ct string) http.Header { return http.Header{"Content-Type": {ct}} }
	huge := []byte(`{"name":"` + strings.Repeat("x", 1<<20) + `"}`)
	const missing = "5b0e9a4c-3d2f-4b6a-8e1c-7f9d0a2b4c6e"

	// Probes, catalog.
	api("GET", "/healthz", "", nil, http.Header{"X-Request-Id": {"conformance-1"}}, 200)
	api("GET", "/readyz", "", nil, nil, 200)
	api("GET", "/readyz?exclude=postgres", "", nil, nil, 200)
	api("GET", "/readyz?exclude=etcd", "", nil, nil, 400)
	api("GET", "/v1/nodes/no-such-node/versions/1", acmeKey, nil, http.Header{"X-Request-Id": {"conformance:2"}}, 404)
	resp, _ := s.do("GET", "/v1/nodes", acmeKey, nil, nil)
	api("GET", "/v1/nodes", acmeKey, nil, http.Header{"If-None-Match": {resp.Header.Get("ETag")}}, 304)
	api("GET", "/v1/nodes", "", nil, nil, 401)
	reg := nodes.NewRegistry()
	for _, v := range reg.Versions() {
		path := "/v1/nodes/" + v.Node().ID() + "/versions/" + v.Number()
		resp, _ := s.do("GET", path, acmeKey, nil, nil)
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
		if v.Recommended() {
			api("GET", "/v1/nodes/"+v.Node().ID()+"/versions/v"+v.Number(), acmeKey, nil, http.Header{"If-None-Match": {resp.Header.Get("ETag")}}, 304)
		}
	}
	api("GET", "/v1/nodes/search-conversation/versions/9.9", acmeKey, nil, nil, 404)
	api("GET", "/v1/nodes/search-conversation/versions/1.3%20%5C%22x%22", acmeKey, nil, nil, 404) // the problem's instance stays a URI reference
	api("GET", "/v1/nodes/no-such-node/versions/1.0", acmeKey, nil, nil, 404)
	api("GET", "/v1/nodes/search-conversation/versions/1.3", "not-an-api-key", nil, nil, 401)

	// Authorizations of both kinds, and each way to refuse one.
	cc := s.createClientCredentials("cc", sim)
	ccOther := s.createClientCredentials("cc other", other)
	login := s.createLogin("login")
	pending, _ := startAuthorization(t, s.client, s.url, acmeKey, webexLogin("pending", sim.BaseURL()))
	api("POST", "/v1/authorizations", acmeKey, clientCredentials("cc", sim.BaseURL()), nil, 409)
	api("POST", "/v1/authorizations", acmeKey, map[string]any{"name": "by region", "kind": "client-credentials", "region": "us",
		"domain": engageDomain, "tenantId": engageTenantID, "tenantSecret": tenantSecret}, nil, 422) // base_url_not_allowed
	api("POST", "/v1/authorizations", acmeKey, map[string]any{"name": "no domain", "kind": "webex-login", "baseUrl": sim.BaseURL()}, nil, 422)
	wrong := clientCredentials("wrong secret", sim.BaseURL())
	wrong["tenantSecret"] = "not-the-secret"
	api("POST", "/v1/authorizations", acmeKey, wrong, nil, 422) // provider_rejected
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Status: http.StatusServiceUnavailable, Times: 1})
	api("POST", "/v1/authorizations", acmeKey, clientCredentials("token endpoint down", sim.BaseURL()), nil, 502)
	api("POST", "/v1/authorizations", acmeKey, []byte(`{"name":`), nil, 400)
	// What CreateAuthorization refuses, the service refuses too: a field of null, an
	// empty region beside baseUrl, a Webex login with an (empty) tenantId.
	for field, value := range map[string]any{"region": nil, "tenantId": nil} {
		body := webexLogin("null "+field, sim.BaseURL())
		body[field] = value
		api("POST", "/v1/authorizations", acmeKey, body, nil, 400)
	}
	for field, value := range map[string]any{"region": "", "tenantId": ""} {
		body := webexLogin("empty "+field, sim.BaseURL())
		body[field] = value
		api("POST", "/v1/authorizations", acmeKey, body, nil, 422)
	}
	api("POST", "/v1/authorizations", acmeKey, []byte(`name=x`), typed("text/plain"), 415)
	api("POST", "/v1/authorizations", acmeKey, huge, nil, 413)
	api("POST", "/v1/authorizations", "", clientCredentials("anonymous", sim.BaseURL()), nil, 401)
	api("GET", "/v1/authorizations", acmeKey, nil, nil, 200)
	api("GET", "/v1/authorizations", "", nil, nil, 401)
	for _, id := range []string{cc, login, pending} {
		api("GET", "/v1/authorizations/"+id, acmeKey, nil, nil, 200)
	}
	api("GET", "/v1/authorizations/"+missing, acmeKey, nil, nil, 404)
	api("GET", "/v1/authorizations/not-a-uuid", acmeKey, nil, nil, 404)
	api("GET", "/v1/authorizations/"+cc, "", nil, nil, 401)

	reauth := "/v1/authorizations/" + cc + "/reauthorize"
	api("POST", reauth, acmeKey, nil, nil, 200)
	api("POST", reauth, acmeKey, map[string]any{"tenantId": engageTenantID, "tenantSecret": tenantSecret}, nil, 200)
	api("POST", "/v1/authorizations/"+login+"/reauthorize", acmeKey, nil, nil, 200)
	api("POST", "/v1/authorizations/"+pending+"/reauthorize", acmeKey, map[string]any{}, nil, 200)
	api("POST", reauth, acmeKey, map[string]any{"tenantSecret": "not-the-secret"}, nil, 422)
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Status: http.StatusBadGateway, Times: 1})
	api("POST", reauth, acmeKey, nil, nil, 502)
	api("POST", reauth, acmeKey, []byte(`{"tenantSecret": 1}`), nil, 400)
	api("POST", reauth, acmeKey, []byte(`x`), typed("text/plain"), 415)
	api("POST", reauth, acmeKey, huge, nil, 413)
	api("POST", "/v1/authorizations/"+missing+"/reauthorize", acmeKey, nil, nil, 404)
	api("POST", reauth, "", nil, nil, 401)

	doomed := s.createClientCredentials("doomed", sim)
	api("DELETE", "/v1/authorizations/"+doomed, acmeKey, nil, nil, 204)
	api("DELETE", "/v1/authorizations/"+doomed, acmeKey, nil, nil, 404)
	api("DELETE", "/v1/authorizations/"+cc, "", nil, nil, 401)

	// Executions: every node version succeeds, and fails on an Engage refusal (a 4xx,
	// which the circuit breaker counts as an answer).
	exec := func(e execution, header http.Header, want int) answer {
		t.Helper()
		var a answer
		raw := api("POST", "/v1/executions", acmeKey, map[string]any(e), header, want)
		if want == 200 {
			if err := json.Unmarshal(raw, &a); err != nil {
				t.Errorf("%s: %v", e["node"], err)
			}
		}
		return a
	}
	for _, v := range reg.Versions() {
		node := v.Node().ID()
		n, ok := oasNodes[node]
		if !ok {
			t.Fatalf("node %s: no input for it here; add it to oasNodes", node)
		}
		e := execution{"node": node, "version": v.Number(), "authorizationId": cc, "timeoutMs": 5000, "input": n.input(sim)}
		if a := exec(e, nil, 200); a.Error != nil {
			t.Errorf("%s %s: %s %+v, want a success", node, v.Number(), a.Outcome, a.Error)
		}
		sim.InjectFault(engagesim.Fault{Op: n.op, Status: http.StatusBadRequest, Times: 1})
		e["input"] = n.input(sim)
		if a := exec(e, nil, 200); a.code() != "engage_rejected" {
			t.Errorf("%s %s after a 400 from Engage: %s %+v, want engage_rejected", node, v.Number(), a.Outcome, a.Error)
		}
		sim.ClearFaults()
	}
	if a := exec(search(login, 5000), nil, 200); a.Error != nil {
		t.Errorf("search with the Webex login: %s %+v", a.Outcome, a.Error)
	}

	// Each kind of execution error, on the other simulator (its own circuit breaker).
	conv := seedConversation(other)
	faults := []struct {
		fault engagesim.Fault
		e     execution
		code  string
	}{
		{engagesim.Fault{Latency: 5 * time.Second}, search(ccOther, 200), "timeout"},
		{engagesim.Fault{Status: http.StatusTooManyRequests}, appendText(ccOther, conv, "rate limited", 5000), "engage_rate_limited"},
		{engagesim.Fault{UnknownStatus: "hibernating"}, search(ccOther, 5000), "unknown_status"},
		{engagesim.Fault{Malformed: true}, closeConversation(ccOther, conv, 5000), "engage_bad_response"},
		{engagesim.Fault{Reset: true}, appendText(ccOther, conv, "reset", 5000), "engage_unavailable"},
		{engagesim.Fault{Op: engagesim.OpAppend, Status: http.StatusUnauthorized}, appendText(ccOther, conv, "unauthorized", 5000), "engage_unauthorized"},
	}
	for _, f := range faults {
		other.InjectFault(f.fault)
		if a := exec(f.e, nil, 200); a.code() != f.code {
			t.Errorf("%s under %+v: %s %+v, want %s", f.e["node"], f.fault, a.Outcome, a.Error, f.code)
		}
		other.ClearFaults()
	}
	other.InjectFault(engagesim.Fault{Op: engagesim.OpAppend, Status: http.StatusServiceUnavailable})
	for i := 0; ; i++ {
		a := exec(appendText(ccOther, conv, "down", 5000), nil, 200)
		if a.code() == "engage_circuit_open" {
			break
		}
		if a.code() != "engage_unavailable" || i == 10 {
			t.Fatalf("while Engage answers 503: %s %+v after %d executions, want engage_unavailable until the breaker opens", a.Outcome, a.Error, i+1)
		}
	}
	other.ClearFaults()
	invalid := search(cc, 5000)
	delete(invalid["input"].(map[string]any), "channel")
	if a := exec(invalid, nil, 200); a.code() != "invalid_input" {
		t.Errorf("input without a channel: %s %+v", a.Outcome, a.Error)
	}
	for auth, code := range map[string]string{missing: "authorization_not_found", pending: "authorization_pending"} {
		if a := exec(search(auth, 5000), nil, 200); a.code() != code {
			t.Errorf("authorization %s: %s %+v, want %s", auth, a.Outcome, a.Error, code)
		}
	}
	refused := s.createClientCredentials("refused", sim)
	if _, err := s.app.Pool().Exec(t.Context(), `update authorizations set status = 'needs_reauthorization', status_reason = 'the provider refused the credentials' where id = $1`, refused); err != nil {
		t.Fatal(err)
	}
	if a := exec(search(refused, 5000), nil, 200); a.code() != "authorization_needs_reauthorization" {
		t.Errorf("an authorization that needs re-authorization: %s %+v", a.Outcome, a.Error)
	}
	// Engage refuses the token and the token endpoint fails: the refresh's own error.
	tokenless := s.createClientCredentials("token endpoint failing", sim)
	// (A 401 from the token endpoint would be invalid_client, a refusal of the
	// credentials: needs re-authorization, not a failing endpoint.)
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpAppend, Status: http.StatusUnauthorized, Times: 1})
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Status: http.StatusInternalServerError, Times: 1})
	if a := exec(appendText(tokenless, seedConversation(sim), "no token", 5000), nil, 200); a.code() != "token_unavailable" {
		t.Errorf("a rejected token that cannot be refreshed: %s %+v, want token_unavailable", a.Outcome, a.Error)
	}
	sim.ClearFaults()
	api("GET", "/v1/authorizations", acmeKey, nil, nil, 200) // every status there is

	// Idempotency.
	keyed := appendText(cc, seedConversation(sim), "once", 5000)
	exec(keyed, http.Header{"Idempotency-Key": {"conformance-1"}}, 200)
	resp, _ = s.do("POST", "/v1/executions", acmeKey, map[string]any(keyed), http.Header{"Idempotency-Key": {"conformance-1"}})
	if resp.StatusCode != 200 || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the replay: %d, Idempotent-Replayed %q", resp.StatusCode, resp.Header.Get("Idempotent-Replayed"))
	}
	exec(appendText(cc, seedConversation(sim), "another body", 5000), http.Header{"Idempotency-Key": {"conformance-1"}}, 422)
	exec(keyed, http.Header{"Idempotency-Key": {"conformance-2"}}, 200)
	if _, err := s.app.Pool().Exec(t.Context(), `update idempotency_keys set response = null, locked_until = now() - interval '1 second' where key = 'conformance-2'`); err != nil {
		t.Fatal(err)
	}
	exec(keyed, http.Header{"Idempotency-Key": {"conformance-2"}}, 409)
	exec(keyed, http.Header{"Idempotency-Key": {"has space"}}, 400)

	// Executions the runtime cannot route.
	api("POST", "/v1/executions", acmeKey, []byte(`{"node": "search-conversation",`), nil, 400)
	api("POST", "/v1/executions", acmeKey, map[string]any{"node": "search-conversation", "version": "1.3", "authorizationId": cc,
		"input": map[string]any{}, "surprise": true}, nil, 400)
	for _, field := range []string{"timeoutMs", "context"} {
		e := search(cc, 5000)
		e[field] = nil
		exec(e, nil, 400)
	}
	exec(execution{"node": "no-such-node", "version": "1.0", "authorizationId": cc, "input": map[string]any{}}, nil, 404)
	exec(execution{"node": "search-conversation", "version": "9.9", "authorizationId": cc, "input": map[string]any{}}, nil, 404)
	api("POST", "/v1/executions", acmeKey, []byte(`node=x`), typed("application/x-www-form-urlencoded"), 415)
	api("POST", "/v1/executions", acmeKey, huge, nil, 413)
	api("POST", "/v1/executions", "", map[string]any(search(cc, 5000)), nil, 401)

	// The OAuth callback.
	api("GET", "/oauth/callback?state=unknown-state-0123456789&code=c", "", nil, nil, 400)
	api("GET", "/oauth/callback?state=unknown-state-0123456789&error=access_denied", "", nil, nil, 400)
	finish := func(name, action string, want int) {
		t.Helper()
		_, authorizeURL := startAuthorization(t, s.client, s.url, acmeKey, webexLogin(name, sim.BaseURL()))
		back, err := engagesim.SignIn(t.Context(), authorizeURL, userName, userPassword)
		if err != nil {
			t.Fatal(err)
		}
		resp, page, _, err := loginflow.Finish(t.Context(), s.client, back.String(), action)
		if err != nil || resp.StatusCode != want {
			t.Errorf("%s the login %s: %v %v, want %d\n%s", action, name, resp, err, want, page)
		}
	}
	finish("canceled", "cancel", 200)
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Status: http.StatusInternalServerError, Times: 1})
	finish("exchange fails", "connect", 502)
	api("POST", "/oauth/callback", "", []byte("state=s&code=c&action=maybe"), typed("application/x-www-form-urlencoded"), 400)

	// The admin pages.
	anonymous := check.client(newBrowser(t))
	page := func(c *http.Client, method, path string, form url.Values, want int) []byte {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req := must(http.NewRequest(method, s.url+path, body))
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Errorf("%s %s: %d, want %d\n%.300s", method, path, resp.StatusCode, want, raw)
		}
		return raw
	}
	admin := check.client(newBrowser(t))
	page(admin, "GET", "/admin/login", nil, 200)
	page(admin, "POST", "/admin/login", url.Values{"apiKey": {acmeKey}}, 403) // no CSRF token: a fresh one
	csrf := csrfOf(t, page(admin, "GET", "/admin/login", nil, 200))
	page(admin, "POST", "/admin/login", url.Values{"apiKey": {"not-an-api-key"}, "csrf": {csrf}}, 401)
	page(admin, "POST", "/admin/login", url.Values{"apiKey": {acmeKey}, "csrf": {csrf}}, 303)
	page(admin, "GET", "/admin/login", nil, 303)
	csrf = csrfOf(t, page(admin, "GET", "/admin/", nil, 200))
	form := func(kv ...string) url.Values {
		v := url.Values{"csrf": {csrf}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	unreadable := func(c *http.Client, path string) {
		t.Helper()
		req := must(http.NewRequest("POST", s.url+path, strings.NewReader("csrf=%zz")))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("POST %s with an unreadable form: %d, want 400", path, resp.StatusCode)
		}
	}
	ccForm := func(name string) url.Values {
		return form("name", name, "kind", "client-credentials", "baseUrl", sim.BaseURL(), "domain", engageDomain,
			"tenantId", engageTenantID, "tenantSecret", tenantSecret)
	}
	page(admin, "GET", "/admin/authorizations/new", nil, 200)
	page(admin, "GET", "/admin/authorizations", nil, 303)
	page(admin, "POST", "/admin/authorizations", form("name", "admin login", "kind", "webex-login", "baseUrl", sim.BaseURL(), "domain", engageDomain), 200)
	page(admin, "POST", "/admin/authorizations", ccForm("admin cc"), 303)
	page(admin, "POST", "/admin/authorizations", ccForm("admin cc"), 409)
	page(admin, "POST", "/admin/authorizations", form("name", "admin nothing"), 422)
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Status: http.StatusServiceUnavailable, Times: 1})
	page(admin, "POST", "/admin/authorizations", ccForm("admin token endpoint down"), 502)
	page(admin, "POST", "/admin/authorizations", url.Values{"csrf": {"forged"}}, 403)
	unreadable(admin, "/admin/authorizations")

	adminCC := s.createClientCredentials("admin's", sim)
	for _, what := range []string{"reauthorize", "delete"} {
		page(admin, "GET", "/admin/authorizations/"+adminCC+"/"+what, nil, 200)
		page(admin, "GET", "/admin/authorizations/"+missing+"/"+what, nil, 404)
		page(anonymous, "GET", "/admin/authorizations/"+adminCC+"/"+what, nil, 303)
		page(admin, "POST", "/admin/authorizations/"+adminCC+"/"+what, url.Values{"csrf": {"forged"}}, 403)
		page(admin, "POST", "/admin/authorizations/"+missing+"/"+what, form(), 404)
		unreadable(admin, "/admin/authorizations/"+adminCC+"/"+what)
	}
	page(admin, "POST", "/admin/authorizations/"+adminCC+"/reauthorize", form("tenantSecret", tenantSecret), 303)
	page(admin, "POST", "/admin/authorizations/"+login+"/reauthorize", form(), 200)
	page(admin, "POST", "/admin/authorizations/"+adminCC+"/reauthorize", form("tenantSecret", "not-the-secret"), 422)
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Status: http.StatusServiceUnavailable, Times: 1})
	page(admin, "POST", "/admin/authorizations/"+adminCC+"/reauthorize", form(), 502)
	page(admin, "POST", "/admin/authorizations/"+adminCC+"/delete", form(), 303)
	for _, path := range []string{"/admin/", "/admin/authorizations/new", "/admin/authorizations"} {
		page(anonymous, "GET", path, nil, 303)
	}
	page(anonymous, "POST", "/admin/logout", url.Values{"csrf": {"none"}}, 303) // nothing to sign out: to sign in
	page(admin, "POST", "/admin/logout", url.Values{"csrf": {"forged"}}, 403)
	unreadable(admin, "/admin/logout")

	// A body where an operation takes none: every /v1 request is held to the body
	// limit and to JSON.
	for _, path := range []string{"/v1/authorizations", "/v1/authorizations/" + cc, "/v1/nodes", "/v1/nodes/search-conversation/versions/1.3"} {
		api("GET", path, acmeKey, []byte("x"), typed("text/plain"), 415)
		api("GET", path, acmeKey, huge, nil, 413)
	}
	api("DELETE", "/v1/authorizations/"+missing, acmeKey, []byte("x"), typed("text/plain"), 415)
	api("DELETE", "/v1/authorizations/"+missing, acmeKey, huge, nil, 413)

	// Requests no operation describes: the router's problems.
	api("GET", "/no-such-page", "", nil, nil, 404)
	api("GET", "/v1/no-such-route", acmeKey, nil, nil, 404)
	api("DELETE", "/healthz", "", nil, nil, 405)
	api("PUT", "/v1/nodes", acmeKey, map[string]any{}, nil, 405)
	api("GET", "/admin/no-such-page", "", nil, nil, 404)
	api("GET", "/admin/logout", "", nil, nil, 405)
	api("PUT", "/oauth/callback", "", nil, nil, 405)
	// A method no route knows: as any other the path does not take.
	api("FOO", "/v1/nodes", acmeKey, nil, nil, 405)
	api("FOO", "/v1/no-such-route", acmeKey, nil, nil, 404)
	api("FOO", "/no-such-page", "", nil, nil, 404)
	api("FOO", "/admin/login", "", nil, nil, 405)
	api("FOO", "/admin/", "", nil, nil, 405)

	// Postgres cut off: the store's 500s, the idempotency store's 503, /readyz red.
	liveCC := s.createClientCredentials("while postgres is down", sim)
	api("GET", "/metrics", "", nil, nil, 200)
	// A Prometheus that scrapes native histograms asks for the protobuf exposition.
	api("GET", "/metrics", "", nil, http.Header{"Accept": {"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"}}, 200)
	db.Set(false)
	eventually(t, 10*time.Second, "/readyz stayed green without Postgres", func() bool { return s.status("/readyz") == 503 })
	if raw := api("GET", "/readyz?exclude=postgres", "", nil, nil, 200); !strings.Contains(string(raw), `"status":"degraded"`) {
		t.Errorf("/readyz?exclude=postgres without Postgres: %s, want degraded", raw)
	}
	api("GET", "/healthz", "", nil, nil, 200)
	api("GET", "/v1/authorizations", acmeKey, nil, nil, 500)
	api("GET", "/v1/authorizations/"+liveCC, acmeKey, nil, nil, 500)
	api("POST", "/v1/authorizations", acmeKey, webexLogin("no postgres", sim.BaseURL()), nil, 500)
	api("POST", "/v1/authorizations/"+liveCC+"/reauthorize", acmeKey, nil, nil, 500)
	api("DELETE", "/v1/authorizations/"+liveCC, acmeKey, nil, nil, 500)
	exec(search(liveCC, 2000), http.Header{"Idempotency-Key": {"conformance-3"}}, 503)
	api("GET", "/oauth/callback?state=some-state-0123456789&code=c", "", nil, nil, 500)
	api("POST", "/oauth/callback", "", []byte("state=some-state-0123456789&code=c&action=cancel"), typed("application/x-www-form-urlencoded"), 500)
	// The admin pages check the session against the signed-out ones first: 503.
	adminPages := func(want int) {
		t.Helper()
		page(admin, "GET", "/admin/", nil, want)
		page(admin, "POST", "/admin/authorizations", form("name", "no postgres", "kind", "webex-login", "baseUrl", sim.BaseURL(), "domain", engageDomain), want)
		for _, what := range []string{"reauthorize", "delete"} {
			page(admin, "GET", "/admin/authorizations/"+liveCC+"/"+what, nil, want)
			page(admin, "POST", "/admin/authorizations/"+liveCC+"/"+what, form(), want)
		}
	}
	adminPages(503)
	for _, path := range []string{"/admin/login", "/admin/authorizations/new", "/admin/authorizations"} {
		page(admin, "GET", path, nil, 503)
	}
	page(admin, "POST", "/admin/login", form("apiKey", acmeKey), 503)
	page(admin, "POST", "/admin/logout", form(), 503)

	// Postgres back but the store's table gone (a botched restore): the session is
	// checked, and the store's failure is the page's 500.
	db.Set(true)
	eventually(t, 10*time.Second, "/readyz stayed red with Postgres back", func() bool { return s.status("/readyz") == 200 })
	if _, err := s.app.Pool().Exec(t.Context(), `alter table authorizations rename to authorizations_away`); err != nil {
		t.Fatal(err)
	}
	adminPages(500)
	if _, err := s.app.Pool().Exec(t.Context(), `alter table authorizations_away rename to authorizations`); err != nil {
		t.Fatal(err)
	}
	page(admin, "POST", "/admin/logout", form(), 303)

	// Every documented answer was seen, but those oasNotProvoked names.
	check.mu.Lock()
	defer check.mu.Unlock()
	var seen, notSeen []string
	for _, op := range spec.ops {
		for _, status := range op.statuses() {
			name := op.id + " " + status
			n := check.seen[op.id][status]
			_, excused := oasNotProvoked[name]
			switch {
			case n > 0 && excused:
				t.Errorf("%s was provoked after all: take it off oasNotProvoked", name)
			case n > 0:
				seen = append(seen, name)
			case !excused:
				notSeen = append(notSeen, name)
			}
		}
	}
	for name := range oasNotProvoked {
		if op, status, _ := strings.Cut(name, " "); !slices.Contains(spec.byID(op).statuses(), status) {
			t.Errorf("oasNotProvoked names %s, which api/openapi.yaml does not document", name)
		}
	}
	if len(notSeen) > 0 {
		t.Errorf("documented but never answered here (provoke them, or say in oasNotProvoked why not): %v", notSeen)
	}
	t.Logf("%d documented answers of %d operations checked against api/openapi.yaml (%d not provoked, see oasNotProvoked); unrouted: %v; execution error codes: %v",
		len(seen), len(spec.ops), len(oasNotProvoked), check.seen[unrouted], slices.Sorted(maps.Keys(check.codes)))
}

// byID finds an operation by its ID (an empty one when there is none).
func (s *oasSpec) byID(id string) *oasOperation {
	for _, o := range s.ops {
		if o.id == id {
			return o
		}
	}
	return &oasOperation{raw: map[string]any{}}
}

// oasNodes says, per node, which Engage operation it calls and how to prepare Engage and
// an input for a success.
var oasNodes = map[string]struct {
	op    string
	input func(sim *engagesim.Sim) map[string]any
}{
	"search-conversation": {engagesim.OpSearch, func(sim *engagesim.Sim) map[string]any {
		seedAs(sim, "active")
		return map[string]any{"channel": "sms", "bizAddress": "+15559999", "customerAddress": "+15550001"}
	}},
	"append-message": {engagesim.OpAppend, func(sim *engagesim.Sim) map[string]any {
		return map[string]any{"conversationId": seedAs(sim, "active"), "channel": "sms", "direction": "outbound",
			"messageType": "text", "timestamp": "2026-03-01T12:00:00Z", "text": "Your order has shipped."}
	}},
	"create-conversation": {engagesim.OpCreate, func(*engagesim.Sim) map[string]any {
		return map[string]any{"channel": "whatsapp", "bizAddress": "+15559999", "customerAddress": "+15550002",
			"direction": "inbound", "messageType": "text", "timestamp": "2026-03-01T12:00:00Z", "text": "Hello"}
	}},
	"update-conversation": {engagesim.OpUpdate, func(sim *engagesim.Sim) map[string]any {
		return map[string]any{"conversationId": seedAs(sim, "active"), "taskId": "task-1"}
	}},
	"add-participant": {engagesim.OpAddParticipant, func(sim *engagesim.Sim) map[string]any {
		return map[string]any{"conversationId": seedAs(sim, "queued"), "participant": "agent-7"}
	}},
	"remove-participant": {engagesim.OpRemoveParticipant, func(sim *engagesim.Sim) map[string]any {
		return map[string]any{"conversationId": seedAs(sim, "active", "agent-7"), "participant": "agent-7"}
	}},
	"close-conversation": {engagesim.OpClose, func(sim *engagesim.Sim) map[string]any {
		return map[string]any{"conversationId": seedAs(sim, "active")}
	}},
	"reopen-conversation": {engagesim.OpUpdate, func(sim *engagesim.Sim) map[string]any {
		return map[string]any{"conversationId": seedAs(sim, "closed")}
	}},
}

// seedAs stores a fresh SMS conversation of the suite's customer in a status.
func seedAs(sim *engagesim.Sim, status string, participants ...string) string {
	return sim.SeedConversation(engageDomain, engagesim.Conversation{
		Channel: "sms", CustomerAddress: "+15550001", BizAddress: "+15559999", Status: status,
		Participants: participants, CreatedAt: time.Now(),
	})
}

// TestTheOpenAPIEnumsListEveryCodeTheServiceHas: the enums of api/openapi.yaml that
// clients match on list exactly the codes the Go constants can produce: ExecutionError's
// code (internal/outcomes), Problem's code (internal/httpapi's ProblemCode), and
// AuthorizationProblem's reason (internal/authstore's ErrorCode, but the login
// callback's, which only its HTML pages show).
func TestTheOpenAPIEnumsListEveryCodeTheServiceHas(t *testing.T) {
	t.Parallel()
	spec := loadOpenAPI(t)
	enum := func(ptr string) []string {
		t.Helper()
		v, err := spec.pointer(ptr)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range v.([]any) {
			out = append(out, e.(string))
		}
		return out
	}
	cases := []struct {
		enum, dir string
		keep      func(name, typ, value string) bool
	}{
		{"#/components/schemas/ExecutionError/properties/code/enum", "internal/outcomes",
			func(name, _, _ string) bool { return strings.HasPrefix(name, "Code") }},
		{"#/components/schemas/Problem/properties/code/enum", "internal/httpapi",
			func(_, typ, _ string) bool { return typ == "ProblemCode" }},
		{"#/components/schemas/AuthorizationProblem/allOf/1/properties/reason/enum", "internal/authstore",
			func(_, typ, value string) bool { return typ == "ErrorCode" && !strings.HasPrefix(value, "login_") }},
	}
	for _, c := range cases {
		documented := enum(c.enum)
		consts := stringConstants(t, filepath.Join("..", "..", c.dir), c.keep)
		if len(consts) < 5 {
			t.Fatalf("%s: only %d constants found: %v", c.dir, len(consts), consts)
		}
		for name, value := range consts {
			if !slices.Contains(documented, value) {
				t.Errorf("%s.%s = %q is not in %s %v", c.dir, name, value, c.enum, documented)
			}
		}
		for _, value := range documented {
			if !slices.Contains(slices.Collect(maps.Values(consts)), value) {
				t.Errorf("%s lists %q, which no constant of %s is", c.enum, value, c.dir)
			}
		}
	}
}

// stringConstants returns the string constants (name -> value) of the package in dir
// (its non-test files) that keep accepts, given the name, the declared type ("" for an
// untyped constant) and the value.
func stringConstants(t *testing.T, dir string, keep func(name, typ, value string) bool) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, src, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range file.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				typ := ""
				if id, ok := vs.Type.(*ast.Ident); ok {
					typ = id.Name
				}
				for i, name := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					value, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					if keep(name.Name, typ, value) {
						out[name.Name] = value
					}
				}
			}
		}
	}
	return out
}

// The other way round from the conformance test's check of accepted bodies: an
// execution envelope the service refuses as such (400) is one ExecutionRequest refuses
// too, so that a client or gateway that validates against the description finds the
// mistake before sending it. Only refusals a schema can say are listed: a key given
// twice, a fraction written as 1.0 (an integer to JSON Schema) or an authorization ID
// of only spaces are the service's own (their descriptions say so).
func TestAnEnvelopeTheServiceRefusesIsOneItsSchemaRefuses(t *testing.T) {
	t.Parallel()
	spec := loadOpenAPI(t)
	schema, err := spec.pointer("#/components/schemas/ExecutionRequest")
	if err != nil {
		t.Fatal(err)
	}
	sch, err := spec.compile("ExecutionRequest", schema, false)
	if err != nil {
		t.Fatal(err)
	}
	s := startService(t, serviceOptions{})
	const input = `"input":{"channel":"sms","bizAddress":"b","customerAddress":"c"}`
	for name, body := range map[string]string{
		"an empty node":                   `{"node":"","version":"1.3","authorizationId":"a",` + input + `}`,
		"an empty version":                `{"node":"search-conversation","version":"","authorizationId":"a",` + input + `}`,
		"an empty authorization ID":       `{"node":"search-conversation","version":"1.3","authorizationId":"",` + input + `}`,
		"an authorization ID of 257":      `{"node":"search-conversation","version":"1.3","authorizationId":"` + strings.Repeat("a", 257) + `",` + input + `}`,
		"no input":                        `{"node":"search-conversation","version":"1.3","authorizationId":"a"}`,
		"an input that is a list":         `{"node":"search-conversation","version":"1.3","authorizationId":"a","input":[]}`,
		"a timeout of zero":               `{"node":"search-conversation","version":"1.3","authorizationId":"a",` + input + `,"timeoutMs":0}`,
		"a timeout with a fraction":       `{"node":"search-conversation","version":"1.3","authorizationId":"a",` + input + `,"timeoutMs":1.5}`,
		"a timeout of null":               `{"node":"search-conversation","version":"1.3","authorizationId":"a",` + input + `,"timeoutMs":null}`,
		"a timeout as a string":           `{"node":"search-conversation","version":"1.3","authorizationId":"a",` + input + `,"timeoutMs":"5000"}`,
		"an unknown envelope field":       `{"node":"search-conversation","version":"1.3","authorizationId":"a",` + input + `,"retries":1}`,
		"an unknown context field":        `{"node":"search-conversation","version":"1.3","authorizationId":"a",` + input + `,"context":{"stepId":"s"}}`,
		"a context field that is no text": `{"node":"search-conversation","version":"1.3","authorizationId":"a",` + input + `,"context":{"flowId":5}}`,
	} {
		resp, raw := s.do("POST", "/v1/executions", acmeKey, []byte(body), nil)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: the service answered %d %s, want 400", name, resp.StatusCode, raw)
		}
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if sch.Validate(v) == nil {
			t.Errorf("%s: ExecutionRequest accepts %.120s, which the service refuses", name, body)
		}
	}
}
