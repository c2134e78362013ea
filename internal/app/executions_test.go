package app_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/app"
	"github.com/noderuntime/noderuntime/internal/config"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/loginflow"
	"github.com/noderuntime/noderuntime/internal/nodes"
	"github.com/noderuntime/noderuntime/internal/outcomes"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// The end-to-end test of executions: the service as `serve` builds it (app.New), real
// Postgres, the real authorization store, the Engage simulator over HTTP; every step
// through the HTTP API, as an orchestrator and an administrator would take it.

const (
	e2eKey       = "e2e-api-key-acme"
	e2eGlobexKey = "e2e-api-key-globex"
	e2eDomain    = "acme-domain"
	e2ePassword  = "alice-password-CANARY-4e1f"
	e2eCCSecret  = "cc-secret-CANARY-90aa"
	e2eClientSec = "webex-client-secret-CANARY-77d2"
)

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type e2e struct {
	t    *testing.T
	sim  *engagesim.Sim
	url  string
	app  *app.App
	logs *lockedBuffer
	cfg  config.Config // the app's, for another replica
}

func startE2E(t *testing.T) *e2e {
	t.Helper()
	return startE2EWith(t, nil)
}

// startE2EWith is startE2E with the settings changed by change (nil: as they are).
func startE2EWith(t *testing.T, change func(*config.Config)) *e2e {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	publicURL := "http://" + srv.Listener.Addr().String()
	sim := engagesim.Start(t, engagesim.Config{
		Users:   []engagesim.User{{Username: "alice", Password: e2ePassword, Domain: e2eDomain}, {Username: "bob", Password: e2ePassword, Domain: e2eDomain}},
		Clients: []engagesim.OAuthClient{{ID: "noderuntime", Secret: e2eClientSec, RedirectURIs: []string{publicURL + "/oauth/callback"}}},
		Tenants: []engagesim.Tenant{{ID: "acme-engage", Secret: e2eCCSecret, Domain: e2eDomain}},
	})
	ring, err := secrets.ParseKeyRing("k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := tenant.ParseKeys("acme:" + tenant.HashKey(e2eKey) + ",globex:" + tenant.HashKey(e2eGlobexKey))
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{
		Addr: "127.0.0.1:0", DatabaseURL: dbtest.NewURL(t), EncryptionKeys: ring, APIKeys: keys, PublicURL: publicURL,
		Webex: config.Webex{AuthorizeURL: sim.AuthorizeURL(), TokenURL: sim.TokenURL(), ClientID: "noderuntime",
			ClientSecret: secrets.New(e2eClientSec), Scopes: []string{"engage"}},
		EngageAllowedBases: []string{sim.BaseURL()},
		ExecutionTimeout:   5 * time.Second, ExecutionTimeoutMax: time.Minute,
		ShutdownGrace: 5 * time.Second, TokenRefreshSkew: 5 * time.Minute,
	}
	if change != nil {
		change(&cfg)
	}
	logs := &lockedBuffer{}
	a, err := app.New(t.Context(), cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = a.Handler()
	srv.Start()
	t.Cleanup(func() { srv.Close(); a.Close() })
	// The token cache serves only while the LISTEN connection is up (it would miss a
	// deletion otherwise); on a busy machine it comes up after the first requests.
	for deadline := time.Now().Add(10 * time.Second); !a.Authorizations().Listening(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the authorization store's listener did not come up")
		}
	}
	return &e2e{t: t, sim: sim, url: publicURL, app: a, logs: logs, cfg: cfg}
}

func (e *e2e) do(method, path, key string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, raw
}

// authorize adds an authorization through the API; a Webex login is completed by
// signing in on the simulator's page as user, unless user is "".
func (e *e2e) authorize(name string, body map[string]any, user string) string {
	e.t.Helper()
	body["name"] = name
	status, raw := e.do(http.MethodPost, "/v1/authorizations", e2eKey, body)
	var created struct {
		ID           string `json:"id"`
		Status       string `json:"status"`
		AuthorizeURL string `json:"authorizeUrl"`
	}
	if status != http.StatusCreated || json.Unmarshal(raw, &created) != nil {
		e.t.Fatalf("create %s: %d %s", name, status, raw)
	}
	if user == "" {
		return created.ID
	}
	back, err := engagesim.SignIn(e.t.Context(), created.AuthorizeURL, user, e2ePassword)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, page, _, err := loginflow.Finish(e.t.Context(), http.DefaultClient, back.String(), "connect")
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("callback of %s: %d\n%s", name, resp.StatusCode, page)
	}
	return created.ID
}

type e2eAnswer struct {
	Outcome string          `json:"outcome"`
	Output  map[string]any  `json:"output"`
	Error   *outcomes.Error `json:"error"`
}

func (e *e2e) execute(key, node, version, auth string, input map[string]any) e2eAnswer {
	e.t.Helper()
	status, raw := e.do(http.MethodPost, "/v1/executions", key, map[string]any{
		"node": node, "version": version, "authorizationId": auth, "input": input,
	})
	var a e2eAnswer
	if status != http.StatusOK || json.Unmarshal(raw, &a) != nil {
		e.t.Fatalf("%s %s: %d %s", node, version, status, raw)
	}
	return a
}

// e2eNodes says, per node, how to prepare Engage and the input for a success, and the
// operation and outcome of that success (ENGAGE.md §2).
var e2eNodes = map[string]struct {
	op      string
	success string
	input   func(sim *engagesim.Sim) map[string]any
}{
	"search-conversation": {engagesim.OpSearch, "conversationActive", func(sim *engagesim.Sim) map[string]any {
		seed(sim, "active")
		return map[string]any{"channel": "SMS", "bizAddress": "+15559999", "customerAddress": "+15550001"}
	}},
	"append-message": {engagesim.OpAppend, "onAppendMessageSuccess", func(sim *engagesim.Sim) map[string]any {
		return map[string]any{"conversationId": seed(sim, "active"), "channel": "sms", "direction": "outbound",
			"messageType": "text", "timestamp": "2026-03-01T12:00:00Z", "text": "Your order has shipped."}
	}},
	"create-conversation": {engagesim.OpCreate, "onConversationCreated", func(*engagesim.Sim) map[string]any {
		return map[string]any{"channel": "whatsapp", "bizAddress": "+15559999", "customerAddress": "+15550002",
			"direction": "inbound", "messageType": "text", "timestamp": "2026-03-01T12:00:00Z", "text": "Hello"}
	}},
	"update-conversation": {engagesim.OpUpdate, "onConversationUpdatedSuccess", func(sim *engagesim.Sim) map[string]any {
		return map[string]any{"conversationId": seed(sim, "active"), "taskId": "task-1"}
	}},
	"add-participant": {engagesim.OpAddParticipant, "OnAddParticipantSuccess", func(sim *engagesim.Sim) map[string]any {
		return map[string]any{"conversationId": seed(sim, "queued"), "participant": "agent-7"}
	}},
	"remove-participant": {engagesim.OpRemoveParticipant, "onParticipantRemoved", func(sim *engagesim.Sim) map[string]any {
		return map[string]any{"conversationId": seed(sim, "active", "agent-7"), "participant": "agent-7"}
	}},
	"close-conversation": {engagesim.OpClose, "onConversationClosed", func(sim *engagesim.Sim) map[string]any {
		return map[string]any{"conversationId": seed(sim, "active")}
	}},
	"reopen-conversation": {engagesim.OpUpdate, "ConversationReopened", func(sim *engagesim.Sim) map[string]any {
		return map[string]any{"conversationId": seed(sim, "closed")}
	}},
}

// seed stores a fresh conversation of the customer; a search finds the newest one that
// is not closed.
func seed(sim *engagesim.Sim, status string, participants ...string) string {
	return sim.SeedConversation(e2eDomain, engagesim.Conversation{
		Channel: "sms", CustomerAddress: "+15550001", BizAddress: "+15559999", Status: status,
		Participants: participants, CreatedAt: time.Now(),
	})
}

// TestEveryNodeVersionEndToEndWithTheRealAuthorizationStore runs every node version,
// through the HTTP API of the service as `serve` builds it, with authorizations made
// through that API: a success with a Webex login and with client credentials (every
// output variable present and filled), a 401 from Engage answered by a real refresh
// and one repeat, and onAuthorizationFailure for an unknown, another tenant's, a
// deleted, a pending and a needs-re-authorization authorization.
func TestEveryNodeVersionEndToEndWithTheRealAuthorizationStore(t *testing.T) {
	e := startE2E(t)
	login := e.authorize("webex", map[string]any{"kind": "webex-login", "baseUrl": e.sim.BaseURL(), "domain": e2eDomain}, "alice")
	cc := e.authorize("cc", map[string]any{"kind": "client-credentials", "baseUrl": e.sim.BaseURL(), "domain": e2eDomain,
		"tenantId": "acme-engage", "tenantSecret": e2eCCSecret}, "")
	pending := e.authorize("pending", map[string]any{"kind": "webex-login", "baseUrl": e.sim.BaseURL(), "domain": e2eDomain}, "")
	doomed := e.authorize("doomed", map[string]any{"kind": "webex-login", "baseUrl": e.sim.BaseURL(), "domain": e2eDomain}, "bob")
	deleted := e.authorize("deleted", map[string]any{"kind": "client-credentials", "baseUrl": e.sim.BaseURL(), "domain": e2eDomain,
		"tenantId": "acme-engage", "tenantSecret": e2eCCSecret}, "")
	if status, raw := e.do(http.MethodDelete, "/v1/authorizations/"+deleted, e2eKey, nil); status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", status, raw)
	}
	// Bob changes his password at Webex: his tokens die, the refresh token too.
	if err := e.sim.ChangePassword("bob", "new-password"); err != nil {
		t.Fatal(err)
	}

	reg := nodes.NewRegistry()
	if len(reg.Versions()) != 14 {
		t.Fatalf("%d versions", len(reg.Versions()))
	}
	for _, v := range reg.Versions() {
		node, version := v.Node().ID(), v.Number()
		spec := e2eNodes[node]
		t.Run(node+"@"+version, func(t *testing.T) {
			e.t = t
			for _, auth := range []string{login, cc} {
				a := e.execute(e2eKey, node, version, auth, spec.input(e.sim))
				if a.Outcome != spec.success || a.Error != nil {
					t.Fatalf("success with %s: %s %+v", auth, a.Outcome, a.Error)
				}
				if keys := sortedKeys(a.Output); !slices.Equal(keys, slices.Sorted(slices.Values(v.Outputs()))) {
					t.Fatalf("outputs %v, want %v", keys, v.Outputs())
				}
				for _, name := range []string{"TransId", "transID", "conversationId"} {
					if val, ok := a.Output[name]; ok && val == "" {
						t.Fatalf("output %s is empty: %v", name, a.Output)
					}
				}
			}

			// A 401 from Engage: one real refresh at the provider, one repeat.
			in := spec.input(e.sim)
			calls, refreshes := e.sim.Calls(spec.op), e.sim.Grants(engagesim.GrantRefreshToken)
			e.sim.InjectFault(engagesim.Fault{Op: spec.op, Status: http.StatusUnauthorized, Times: 1})
			if a := e.execute(e2eKey, node, version, login, in); a.Outcome != spec.success {
				t.Fatalf("after a 401: %s %+v", a.Outcome, a.Error)
			}
			if dc, dr := e.sim.Calls(spec.op)-calls, e.sim.Grants(engagesim.GrantRefreshToken)-refreshes; dc != 2 || dr != 1 {
				t.Fatalf("after a 401: %d calls and %d refreshes, want 2 and 1", dc, dr)
			}

			for _, tc := range []struct {
				name, key, auth, code string
			}{
				{"unknown", e2eKey, "3f0e8c1a-5b7d-4c2e-9a61-0d2b8f4e7c90", outcomes.CodeAuthorizationNotFound},
				{"another tenant's", e2eGlobexKey, login, outcomes.CodeAuthorizationNotFound},
				{"deleted", e2eKey, deleted, outcomes.CodeAuthorizationNotFound},
				{"pending", e2eKey, pending, outcomes.CodeAuthorizationPending},
				{"needs re-authorization", e2eKey, doomed, outcomes.CodeNeedsReauthorization},
			} {
				a := e.execute(tc.key, node, version, tc.auth, spec.input(e.sim))
				if a.Outcome != string(outcomes.OnAuthorizationFailure) || a.Error == nil || a.Error.Code != tc.code {
					t.Fatalf("%s authorization: %s %+v, want onAuthorizationFailure %s", tc.name, a.Outcome, a.Error, tc.code)
				}
			}
		})
	}
	e.t = t

	// The doomed authorization went to needs_reauthorization the first time Engage
	// refused its token and the provider refused its refresh token.
	status, raw := e.do(http.MethodGet, "/v1/authorizations/"+doomed, e2eKey, nil)
	if status != 200 || !strings.Contains(string(raw), `"status":"needs_reauthorization"`) {
		t.Fatalf("doomed authorization: %d %s", status, raw)
	}
	// Every execution is counted, and no secret or token reached a log line or metric.
	status, metrics := e.do(http.MethodGet, "/metrics", e2eKey, nil)
	if status != 200 || !strings.Contains(string(metrics), `noderuntime_executions_total{node="reopen-conversation",outcome="ConversationReopened",version="1.0"} 3`) {
		t.Fatalf("metrics: %d, no reopen count", status)
	}
	for _, canary := range []string{e2ePassword, e2eCCSecret, e2eClientSec, "simat_", "simrt_"} {
		if strings.Contains(e.logs.String(), canary) || strings.Contains(string(metrics), canary) {
			t.Errorf("%q leaked into the logs or metrics", canary)
		}
	}
}

func sortedKeys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
