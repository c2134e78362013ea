package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/httpapi"
	"github.com/noderuntime/noderuntime/internal/idempotency"
	"github.com/noderuntime/noderuntime/internal/jsonlog"
	"github.com/noderuntime/noderuntime/internal/nodes"
	"github.com/noderuntime/noderuntime/internal/outcomes"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// The execution tests run the real router, executor and Engage client against the
// simulator over real HTTP. Tokens come from simCredentials, which gets real
// client-credentials tokens from the simulator's OAuth endpoint and behaves, for a few
// fixed authorization IDs, as the authorization store does for unusable ones.

const (
	execKey   = "exec-api-key-acme"
	globexKey = "exec-api-key-globex"

	simDomain       = "acme-domain"
	simTenantID     = "acme-engage-tenant"
	simTenantSecret = "acme-engage-secret"
)

// Authorization IDs simCredentials knows.
const (
	authOK      = "7d0c1a2b-0000-4000-8000-000000000001"
	authUnknown = "7d0c1a2b-0000-4000-8000-0000000000ff"
	authDeleted = "7d0c1a2b-0000-4000-8000-000000000002"
	authPending = "7d0c1a2b-0000-4000-8000-000000000003"
	authReauth  = "7d0c1a2b-0000-4000-8000-000000000004"
	authBroken  = "7d0c1a2b-0000-4000-8000-000000000005" // the store itself fails
)

var registry = nodes.NewRegistry()

// simCredentials is a token source on the simulator's real client-credentials OAuth.
type simCredentials struct {
	sim        *engagesim.Sim
	mu         sync.Mutex
	current    secrets.Value
	tokenCalls atomic.Int64
	refreshes  atomic.Int64
}

func (c *simCredentials) Token(ctx context.Context, t tenant.ID, id string) (nodes.Credential, error) {
	c.tokenCalls.Add(1)
	if err := c.check(t, id); err != nil {
		return nodes.Credential{}, err
	}
	c.mu.Lock()
	cur := c.current
	c.mu.Unlock()
	if !cur.IsZero() {
		return c.credential(cur), nil
	}
	return c.fetch(ctx)
}

func (c *simCredentials) Refresh(ctx context.Context, t tenant.ID, id string, _ secrets.Value) (nodes.Credential, error) {
	c.refreshes.Add(1)
	if err := c.check(t, id); err != nil {
		return nodes.Credential{}, err
	}
	return c.fetch(ctx)
}

func (c *simCredentials) check(t tenant.ID, id string) error {
	notFound := &outcomes.AuthorizationError{Code: outcomes.CodeAuthorizationNotFound, Message: "no such authorization"}
	if t != "acme" {
		return fmt.Errorf("token: %w", notFound) // another tenant's ID is a missing one
	}
	switch id {
	case authOK:
		return nil
	case authPending:
		return &outcomes.AuthorizationError{Code: outcomes.CodeAuthorizationPending, Message: "the authorization waits for its login"}
	case authReauth:
		return &outcomes.AuthorizationError{Code: outcomes.CodeNeedsReauthorization, Message: "the authorization needs re-authorization"}
	case authBroken:
		return fmt.Errorf("read authorization: %w", io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("token: %w", notFound)
}

func (c *simCredentials) credential(tok secrets.Value) nodes.Credential {
	return nodes.Credential{AuthorizationID: authOK, BaseURL: c.sim.BaseURL(), Domain: simDomain, AccessToken: tok, ExpiresAt: time.Now().Add(time.Hour)}
}

// fetch gets a new token with the client-credentials grant.
func (c *simCredentials) fetch(ctx context.Context) (nodes.Credential, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.sim.ClientCredentialsTokenURL(), strings.NewReader(form.Encode()))
	if err != nil {
		return nodes.Credential{}, err
	}
	req.SetBasicAuth(simTenantID, simTenantSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nodes.Credential{}, fmt.Errorf("token endpoint: %w", err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK || tok.AccessToken == "" {
		return nodes.Credential{}, fmt.Errorf("token endpoint: HTTP %d", resp.StatusCode)
	}
	v := secrets.New(tok.AccessToken)
	c.mu.Lock()
	c.current = v
	c.mu.Unlock()
	return c.credential(v), nil
}

// token returns the token in use, fetching one first if needed.
func (c *simCredentials) token(t *testing.T) string {
	t.Helper()
	cred, err := c.Token(t.Context(), "acme", authOK)
	if err != nil {
		t.Fatal(err)
	}
	return cred.AccessToken.Reveal()
}

// harness is the service's HTTP edge with the executions and the catalog, a simulator,
// and its own metrics and logs.
type harness struct {
	sim     *engagesim.Sim
	creds   *simCredentials
	srv     *httptest.Server
	logs    *syncBuffer
	metrics *prometheus.Registry
}

type harnessOptions struct {
	pool                       *pgxpool.Pool
	defaultTimeout, maxTimeout time.Duration
	credentials                nodes.Credentials // nil: simCredentials
	breaker                    *engage.BreakerOptions
	admission                  *httpapi.AdmissionOptions // nil: no cap
}

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	sim := engagesim.Start(t, engagesim.Config{Tenants: []engagesim.Tenant{{ID: simTenantID, Secret: simTenantSecret, Domain: simDomain}}})
	h := &harness{sim: sim, creds: &simCredentials{sim: sim}, logs: &syncBuffer{}, metrics: prometheus.NewRegistry()}
	var creds nodes.Credentials = h.creds
	if o.credentials != nil {
		creds = o.credentials
	}
	client := engage.New(engage.Options{Breaker: o.breaker})
	t.Cleanup(client.CloseIdleConnections)
	exec := nodes.NewExecutor(nodes.ExecutorOptions{
		Engage: client, Credentials: creds,
		Metrics: nodes.NewMetrics(h.metrics, registry, httpapi.LatencyBuckets),
		Logger:  slog.New(jsonlog.New(h.logs, nil)),
	})
	var idem *idempotency.Store
	if o.pool != nil {
		idem = idempotency.New(o.pool, idempotency.Options{MaxPoll: 10 * time.Millisecond})
	}
	if o.defaultTimeout == 0 {
		o.defaultTimeout = 10 * time.Second
	}
	if o.maxTimeout == 0 {
		o.maxTimeout = time.Minute
	}
	var admission *httpapi.Admission
	if o.admission != nil {
		admission = httpapi.NewAdmission(*o.admission, h.metrics)
	}
	keys, err := tenant.ParseKeys("acme:" + tenant.HashKey(execKey) + ",globex:" + tenant.HashKey(globexKey))
	if err != nil {
		t.Fatal(err)
	}
	router := httpapi.NewRouter(httpapi.Deps{
		Logger:  slog.New(jsonlog.New(h.logs, nil)),
		Metrics: httpapi.NewMetrics(h.metrics),
		APIKeys: keys,
		V1Hot: []func(chi.Router){
			httpapi.ExecutionRoutes(httpapi.Executions{
				Registry: registry, Executor: exec, Idempotency: idem,
				DefaultTimeout: o.defaultTimeout, MaxTimeout: o.maxTimeout,
				Admission: admission,
			}),
			httpapi.CatalogRoutes(registry),
		},
	})
	h.srv = httptest.NewServer(router)
	t.Cleanup(h.srv.Close)
	return h
}

// answer is an execution's 200 answer.
type answer struct {
	Outcome     string         `json:"outcome"`
	Output      map[string]any `json:"output"`
	Error       *answerError   `json:"error"`
	ExecutionID string         `json:"executionId"`
	DurationMs  *int64         `json:"durationMs"`
}

type answerError struct {
	Code              string `json:"code"`
	Message           string `json:"message"`
	EngageStatus      int    `json:"engageStatus"`
	EngageCode        int    `json:"engageCode"`
	EngageDescription string `json:"engageDescription"`
}

// post sends a raw request to the service.
func (h *harness) post(t testing.TB, path, key string, body []byte, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, raw
}

func (h *harness) get(t testing.TB, path string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+execKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, raw
}

// execution is one POST /v1/executions.
type execution struct {
	vi        *versionInfo
	version   string // as sent; default vi.version
	auth      string // default authOK
	key       string // API key; default execKey
	input     map[string]any
	timeoutMs int    // default 5000
	flowID    string // context.flowId; default "flow-1"
}

// run executes and checks what every answer must satisfy: 200, the version's exact
// output variables, an error object exactly on failure outcomes, an outcome the version
// declares. It records the outcome for the coverage check.
func (h *harness) run(t testing.TB, e execution) answer {
	t.Helper()
	body := map[string]any{
		"node": e.vi.node, "version": cmpOr(e.version, e.vi.version),
		"authorizationId": cmpOr(e.auth, authOK), "input": e.input,
		"timeoutMs": cmpInt(e.timeoutMs, 5000),
		"context":   map[string]string{"flowId": cmpOr(e.flowID, "flow-1"), "nodeId": "n6", "transactionId": "tx-9"},
	}
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, out := h.post(t, "/v1/executions", cmpOr(e.key, execKey), raw, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, out)
	}
	var a answer
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("answer %s: %v", out, err)
	}
	checkAnswer(t, e.vi, a, out)
	coverage.record(e.vi, a.Outcome)
	return a
}

func checkAnswer(t testing.TB, vi *versionInfo, a answer, raw []byte) {
	t.Helper()
	kind, declared := vi.outcomes[a.Outcome]
	if !declared {
		t.Fatalf("outcome %q is not declared in the catalog of %s %s: %s", a.Outcome, vi.node, vi.version, raw)
	}
	if kind == nodes.KindFailure && (a.Error == nil || a.Error.Code == "" || a.Error.Message == "") {
		t.Fatalf("failure outcome %s without error{code,message}: %s", a.Outcome, raw)
	}
	if kind == nodes.KindSuccess && a.Error != nil {
		t.Fatalf("success outcome %s with an error: %s", a.Outcome, raw)
	}
	var keys []string
	for k := range a.Output {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := slices.Sorted(slices.Values(vi.outputs))
	if !slices.Equal(keys, want) {
		t.Fatalf("output variables %v, want exactly %v: %s", keys, want, raw)
	}
	if len(a.ExecutionID) != 36 || a.DurationMs == nil || *a.DurationMs < 0 {
		t.Fatalf("executionId %q, durationMs %v: %s", a.ExecutionID, a.DurationMs, raw)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func cmpInt(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// versionInfo is what the served catalog says about one node version, read back from
// its JSON: the tests build their inputs from it, so a catalog that disagrees with the
// runtime fails them.
type versionInfo struct {
	node, version string
	recommended   bool
	outputs       []string
	outcomes      map[string]string // name -> kind
	aliases       map[string][]string
	properties    map[string]bool
	required      []string
	channels      []string
	chanRequired  map[string][]string
	directions    map[string][]string // channel -> directions
	types         map[string][]string // channel/direction -> message types
	typeRequired  map[string][]string
	typeAnyOf     map[string][]string
}

func (vi *versionInfo) String() string { return vi.node + " " + vi.version }

type jsonObject = map[string]any

// readCatalog parses GET /v1/nodes.
func readCatalog(t testing.TB, raw []byte) []*versionInfo {
	t.Helper()
	var cat struct {
		Nodes []struct {
			ID       string `json:"id"`
			Versions []struct {
				Version     string     `json:"version"`
				Recommended bool       `json:"recommended"`
				InputSchema jsonObject `json:"inputSchema"`
				Outputs     []struct {
					Name string `json:"name"`
				} `json:"outputs"`
				Outcomes []struct {
					Name    string   `json:"name"`
					Kind    string   `json:"kind"`
					Aliases []string `json:"aliases"`
				} `json:"outcomes"`
			} `json:"versions"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(raw, &cat); err != nil {
		t.Fatal(err)
	}
	var out []*versionInfo
	for _, n := range cat.Nodes {
		for _, v := range n.Versions {
			vi := &versionInfo{
				node: n.ID, version: v.Version, recommended: v.Recommended,
				outcomes: map[string]string{}, aliases: map[string][]string{}, properties: map[string]bool{},
				chanRequired: map[string][]string{}, directions: map[string][]string{}, types: map[string][]string{},
				typeRequired: map[string][]string{}, typeAnyOf: map[string][]string{},
			}
			for _, o := range v.Outputs {
				vi.outputs = append(vi.outputs, o.Name)
			}
			for _, o := range v.Outcomes {
				vi.outcomes[o.Name] = o.Kind
				vi.aliases[o.Name] = o.Aliases
			}
			s := v.InputSchema
			for name := range s["properties"].(jsonObject) {
				vi.properties[name] = true
			}
			vi.required = strs(s["required"])
			if ch, ok := s["properties"].(jsonObject)["channel"].(jsonObject); ok {
				vi.channels = strs(ch["enum"])
			}
			for _, c := range asList(s["allOf"]) {
				cond := c.(jsonObject)
				ifProps := cond["if"].(jsonObject)["properties"].(jsonObject)
				then := cond["then"].(jsonObject)
				ch, _ := constOf(ifProps, "channel")
				dir, hasDir := constOf(ifProps, "direction")
				typ, hasType := constOf(ifProps, "messageType")
				thenProps, _ := then["properties"].(jsonObject)
				switch {
				case hasType:
					vi.typeRequired[typ] = strs(then["required"])
					for _, alt := range asList(then["anyOf"]) {
						vi.typeAnyOf[typ] = append(vi.typeAnyOf[typ], strs(alt.(jsonObject)["required"])...)
					}
				case hasDir:
					vi.types[ch+"/"+dir] = strs(thenProps["messageType"].(jsonObject)["enum"])
				default:
					if r, ok := then["required"]; ok {
						vi.chanRequired[ch] = strs(r)
					}
					if d, ok := thenProps["direction"].(jsonObject); ok {
						vi.directions[ch] = strs(d["enum"])
					}
				}
			}
			out = append(out, vi)
		}
	}
	return out
}

func constOf(props jsonObject, name string) (string, bool) {
	p, ok := props[name].(jsonObject)
	if !ok {
		return "", false
	}
	s, ok := p["const"].(string)
	return s, ok
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func strs(v any) []string {
	var out []string
	for _, x := range asList(v) {
		out = append(out, x.(string))
	}
	return out
}

// combo is one way to call a version: a channel, and for nodes that send a message a
// direction and message type.
type combo struct{ channel, direction, messageType string }

func (c combo) String() string {
	return strings.Trim(strings.Join([]string{c.channel, c.direction, c.messageType}, "/"), "/")
}

// combos lists every channel, direction and message type the version allows.
func (vi *versionInfo) combos() []combo {
	if len(vi.channels) == 0 {
		return []combo{{}}
	}
	var out []combo
	for _, ch := range vi.channels {
		dirs := vi.directions[ch]
		if len(dirs) == 0 {
			out = append(out, combo{channel: ch})
			continue
		}
		for _, d := range dirs {
			for _, typ := range vi.types[ch+"/"+d] {
				out = append(out, combo{ch, d, typ})
			}
		}
	}
	return out
}

// requiredFor lists the fields the catalog says the combo needs; of a group of
// alternatives (anyOf), the first.
func (vi *versionInfo) requiredFor(c combo) []string {
	req := slices.Clone(vi.required)
	req = append(req, vi.chanRequired[c.channel]...)
	if c.messageType != "" {
		req = append(req, vi.typeRequired[c.messageType]...)
		if alts := vi.typeAnyOf[c.messageType]; len(alts) > 0 {
			req = append(req, alts[0])
		}
	}
	slices.Sort(req)
	return slices.Compact(req)
}

// Field values that are valid wherever they are asked for.
var fixtureValues = map[string]any{
	"bizAddress":            "+15559999",
	"customerAddress":       "+15550001",
	"customerName":          "Ada Lovelace",
	"subject":               "Order 42",
	"toRecipients":          []string{"support@example.com"},
	"ccRecipients":          "a@example.com, b@example.com",
	"inReplyTo":             "<m1@example.com>",
	"threadId":              "thread-1",
	"browserFingerprint":    "fp-1",
	"livechatUserId":        "lc-user-1",
	"livechatAppId":         "lc-app-1",
	"livechatWebsiteDomain": "shop.example.com",
	"livechatProactiveId":   "campaign-7",
	"timestamp":             "2026-03-01T12:00:00Z",
	"text":                  "He said \"hi\" \\ then left.\nBye <3 & é",
	"attachments":           []map[string]string{{"mimeType": "image/png", "fileName": "a.png", "fileUrl": "https://files.example.com/a.png"}},
	"fromAddress":           "ada@example.com",
	"plainBody":             "Hello,\nit is me.",
	"htmlBody":              "<p>Hello</p>",
	"strippedHtml":          "<p>Hello</p>",
	"emailHeaders":          map[string]string{"X-Mailer": "test"},
	"messageAliasId":        "msg-alias-1",
	"taskId":                "task-9",
	"participant":           "agent-7",
}

func fieldValue(name string) any {
	if v, ok := fixtureValues[name]; ok {
		return v
	}
	// The rich objects of the message types.
	return map[string]any{"field": name, "items": []any{1, "two", map[string]any{"three": true}}}
}

// input builds the minimal valid input of a combo: every field the catalog says it
// needs, and nothing else.
func (vi *versionInfo) input(c combo, conversationID string) map[string]any {
	in := map[string]any{}
	for _, f := range vi.requiredFor(c) {
		in[f] = fieldValue(f)
	}
	if c.channel != "" {
		in["channel"] = c.channel
	}
	if c.direction != "" {
		in["direction"] = c.direction
		in["messageType"] = c.messageType
	}
	if vi.properties["conversationId"] {
		in["conversationId"] = conversationID
	}
	return in
}

// coverage records every outcome each version answered, to check at the end that the
// tests saw each declared outcome and nothing else.
var coverage = &outcomeCoverage{seen: map[string]map[string]bool{}}

type outcomeCoverage struct {
	mu   sync.Mutex
	seen map[string]map[string]bool
}

func (c *outcomeCoverage) record(vi *versionInfo, outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := vi.String()
	if c.seen[k] == nil {
		c.seen[k] = map[string]bool{}
	}
	c.seen[k][outcome] = true
}

func (c *outcomeCoverage) of(vi *versionInfo) map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.seen[vi.String()])
}

// counter reads one counter or histogram count from a registry.
func counter(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue metrics
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			if m.GetHistogram() != nil {
				return float64(m.GetHistogram().GetSampleCount())
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}
