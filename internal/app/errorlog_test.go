package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// TestEveryFailedRequestLogsOneLineWithItsRequestIDAndErrorCode: whatever an execution or
// an authorization request fails on, the operator who has the request ID (from the
// orchestrator, or the problem's requestId) finds one access-log line with it that says
// why (errorCode: the answer's error.code or the problem's code), at info for what the
// caller did wrong or Engage answered, and no secret the request carried.
func TestEveryFailedRequestLogsOneLineWithItsRequestIDAndErrorCode(t *testing.T) {
	e, auth, search := startWithActiveConversation(t, "errors")
	cc := func(name string) map[string]any {
		return map[string]any{"name": name, "kind": "client-credentials", "baseUrl": e.sim.BaseURL(), "domain": e2eDomain,
			"tenantId": "acme-engage", "tenantSecret": e2eCCSecret}
	}
	exec := func(node, version, authorizationID string, input map[string]any) map[string]any {
		return map[string]any{"node": node, "version": version, "authorizationId": authorizationID, "input": input}
	}
	for i, c := range []struct {
		name, method, path, key string
		body                    any
		before                  func()
		status                  int
		code                    string // for an HTML page: the code the log line names
	}{
		{"no API key", "POST", "/v1/executions", "", exec("search-conversation", "1.3", auth, search), nil, 401, ""},
		{"a wrong API key", "GET", "/v1/authorizations", "wrong-key-CANARY", nil, nil, 401, ""},
		{"malformed JSON", "POST", "/v1/executions", e2eKey, "{", nil, 400, ""},
		{"an unknown node", "POST", "/v1/executions", e2eKey, exec("no-such-node", "1.0", auth, search), nil, 404, ""},
		{"an unknown version", "POST", "/v1/executions", e2eKey, exec("search-conversation", "9.9", auth, search), nil, 404, ""},
		{"an unknown authorization", "POST", "/v1/executions", e2eKey, exec("search-conversation", "1.3", "no-such-authorization", search), nil, 200, ""},
		{"another tenant's authorization", "POST", "/v1/executions", e2eGlobexKey, exec("search-conversation", "1.3", auth, search), nil, 200, ""},
		{"invalid input", "POST", "/v1/executions", e2eKey, exec("search-conversation", "1.3", auth, map[string]any{"channel": "fax"}), nil, 200, ""},
		{"Engage failing", "POST", "/v1/executions", e2eKey, exec("search-conversation", "1.3", auth, search),
			func() { e.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: 503}) }, 200, ""},
		{"a duplicate authorization name", "POST", "/v1/authorizations", e2eKey, cc("errors"), nil, 409, ""},
		{"an invalid authorization", "POST", "/v1/authorizations", e2eKey, map[string]any{"name": "x", "kind": "client-credentials",
			"baseUrl": e.sim.BaseURL(), "tenantId": "acme-engage", "tenantSecret": e2eCCSecret}, nil, 422, ""},
		{"a base URL off the allowlist", "POST", "/v1/authorizations", e2eKey, map[string]any{"name": "y", "kind": "client-credentials",
			"baseUrl": "https://evil.example", "domain": e2eDomain, "tenantId": "acme-engage", "tenantSecret": e2eCCSecret}, nil, 422, ""},
		{"an unknown authorization's page", "GET", "/v1/authorizations/no-such-authorization", e2eKey, nil, nil, 404, ""},
		{"another tenant's authorization's page", "GET", "/v1/authorizations/" + auth, e2eGlobexKey, nil, nil, 404, ""},
		{"deleting an unknown authorization", "DELETE", "/v1/authorizations/no-such-authorization", e2eKey, nil, nil, 404, ""},
		{"re-authorizing an unknown authorization", "POST", "/v1/authorizations/no-such-authorization/reauthorize", e2eKey, nil, nil, 404, ""},
		{"a forged login state", "GET", "/oauth/callback?state=forged&code=x", "", nil, nil, 400, "login_state_unknown"},
		{"a login the provider refused", "GET", "/oauth/callback?state=forged&error=access_denied", "", nil, nil, 400, "login_state_unknown"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.before != nil {
				c.before()
				t.Cleanup(e.sim.ClearFaults)
			}
			id := fmt.Sprintf("errorlog-%02d", i)
			var body io.Reader
			if s, ok := c.body.(string); ok {
				body = strings.NewReader(s)
			} else if c.body != nil {
				raw, _ := json.Marshal(c.body)
				body = strings.NewReader(string(raw))
			}
			req, _ := http.NewRequest(c.method, e.url+c.path, body)
			req.Header.Set("X-Request-Id", id)
			req.Header.Set("Content-Type", "application/json")
			if c.key != "" {
				req.Header.Set("Authorization", "Bearer "+c.key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, raw, c.status)
			}
			var answer struct {
				Code  string `json:"code"`
				Error struct {
					Code string `json:"code"`
				} `json:"error"`
			}
			want := c.code
			if want == "" {
				if err := json.Unmarshal(raw, &answer); err != nil {
					t.Fatalf("%s: %v", raw, err)
				}
				want = answer.Code
				if resp.StatusCode == 200 {
					want = answer.Error.Code
				}
			}
			if want == "" {
				t.Fatalf("the answer has no error code: %s", raw)
			}
			var lines []map[string]any
			for _, l := range strings.Split(e.logs.String(), "\n") {
				var m map[string]any
				if json.Unmarshal([]byte(l), &m) == nil && m["requestId"] == id {
					lines = append(lines, m)
				}
				for _, secret := range []string{e2eCCSecret, "CANARY", e2eKey, e2eGlobexKey} {
					if strings.Contains(l, secret) {
						t.Errorf("a log line shows %q: %s", secret, l)
					}
				}
			}
			if len(lines) != 1 {
				t.Fatalf("%d log lines with request ID %s, want 1: %v", len(lines), id, lines)
			}
			if l := lines[0]; l["errorCode"] != want || l["level"] != "INFO" {
				t.Errorf("log line %v: want errorCode %q at INFO", l, want)
			}
		})
	}
}

// TestTheLinesBelowARequestNameItsID: what the authorization store and the nodes log
// while serving a request (here a token refresh that fails after Engage refused the
// token, and an authorization created) carries the request's ID, as its access-log line
// does, so one ID finds the cause next to the outcome.
func TestTheLinesBelowARequestNameItsID(t *testing.T) {
	e, auth, search := startWithActiveConversation(t, "below")
	e.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: 401, Times: 1})
	e.sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Status: 503})
	send := func(id, method, path string, body any) {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, e.url+path, strings.NewReader(string(raw)))
		req.Header.Set("X-Request-Id", id)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+e2eKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	send("below-refresh", "POST", "/v1/executions", map[string]any{"node": "search-conversation", "version": "1.3", "authorizationId": auth, "input": search})
	e.sim.ClearFaults()
	send("below-create", "POST", "/v1/authorizations", map[string]any{"name": "another", "kind": "client-credentials", "baseUrl": e.sim.BaseURL(),
		"domain": e2eDomain, "tenantId": "acme-engage", "tenantSecret": e2eCCSecret})
	msgs := map[string][]string{}
	for _, l := range strings.Split(e.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			if id, ok := m["requestId"].(string); ok {
				msgs[id] = append(msgs[id], fmt.Sprint(m["msg"]))
			}
		}
	}
	for id, wants := range map[string][]string{
		"below-refresh": {"token refresh failed; backing off", "credential store failed"}, // the store's line, then the node's
		"below-create":  {"authorization created"},
	} {
		for _, want := range wants {
			if !slices.Contains(msgs[id], want) {
				t.Errorf("request %s logged %q, want %q among them", id, msgs[id], want)
			}
		}
	}
}
