package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/app"
	"github.com/noderuntime/noderuntime/internal/config"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/loginflow"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// The Engage side every simulator of the suite knows.
const (
	engageDomain   = "acme-domain"
	engageTenantID = "acme-engage"
	userName       = "alice"
	webexClientID  = "noderuntime"
)

// simOptions configure a simulator; zero values take the simulator's defaults.
type simOptions struct {
	publicURL string        // the runtime's public URL, for the login's redirect URI
	tokenTTL  time.Duration // lifetime of access tokens, both kinds
	// wrap, when set, serves the simulator's handler through it (to watch its traffic).
	wrap func(http.Handler) http.Handler
}

// startSim serves a simulator that knows the suite's user, OAuth client and Engage
// tenant, on 127.0.0.1, until t ends.
func startSim(t testing.TB, o simOptions) *engagesim.Sim {
	t.Helper()
	sim := engagesim.New(engagesim.Config{
		Users:                []engagesim.User{{Username: userName, Password: userPassword, Domain: engageDomain}},
		Clients:              []engagesim.OAuthClient{{ID: webexClientID, Secret: webexClientSecret, RedirectURIs: []string{o.publicURL + "/oauth/callback"}}},
		Tenants:              []engagesim.Tenant{{ID: engageTenantID, Secret: tenantSecret, Domain: engageDomain}},
		AccessTokenTTL:       o.tokenTTL,
		ClientCredentialsTTL: o.tokenTTL,
	})
	if o.wrap == nil {
		sim.StartHTTPTest()
		t.Cleanup(sim.Close)
		return sim
	}
	srv := httptest.NewServer(o.wrap(sim.Handler()))
	sim.SetURL(srv.URL)
	t.Cleanup(func() { sim.Close(); srv.Close() })
	return sim
}

// serviceOptions configure an in-process service.
type serviceOptions struct {
	dbURL     string // "": a fresh migrated database
	sims      int    // simulators, each its own Engage base URL on the allowlist; 0: 1
	configure func(*config.Config)
}

// service is noderuntime as `serve` builds it (app.New), served on 127.0.0.1, with its
// simulators. Its logs, responses and metrics go through the leak scan.
type service struct {
	t      testing.TB
	url    string
	app    *app.App
	srv    *httptest.Server
	sims   []*engagesim.Sim
	client *http.Client
}

func startService(t testing.TB, o serviceOptions) *service {
	t.Helper()
	watchLeaks(t)
	srv := httptest.NewUnstartedServer(nil)
	s := &service{t: t, url: "http://" + srv.Listener.Addr().String(), srv: srv, client: newClient(t)}
	var bases []string
	for range max(o.sims, 1) {
		sim := startSim(t, simOptions{publicURL: s.url})
		s.sims = append(s.sims, sim)
		bases = append(bases, sim.BaseURL())
	}
	if o.dbURL == "" {
		o.dbURL = dbtest.NewURL(t)
	}
	cfg := config.Config{
		Addr: "127.0.0.1:0", DatabaseURL: o.dbURL, EncryptionKeys: keyRing(t), APIKeys: apiKeys(t), PublicURL: s.url,
		Webex: config.Webex{AuthorizeURL: s.sims[0].AuthorizeURL(), TokenURL: s.sims[0].TokenURL(), ClientID: webexClientID,
			ClientSecret: secrets.New(webexClientSecret), Scopes: []string{"engage"}},
		EngageAllowedBases: bases,
		ExecutionTimeout:   5 * time.Second, ExecutionTimeoutMax: time.Minute,
		ShutdownGrace: 5 * time.Second, TokenRefreshSkew: 5 * time.Minute,
	}
	if o.configure != nil {
		o.configure(&cfg)
	}
	logs := &leakWriter{test: t.Name(), source: "the service's log"}
	logs.showOnFailure(t)
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.New(t.Context(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	s.app = a
	srv.Config.Handler = a.Handler()
	srv.Start()
	t.Cleanup(func() {
		s.scrapeMetrics() // the metrics go through the leak scan too
		srv.Close()
		a.Close()
	})
	return s
}

func keyRing(t testing.TB) *secrets.KeyRing {
	t.Helper()
	ring, err := secrets.ParseKeyRing("k1:" + encryptionKeyBase64)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func apiKeys(t testing.TB) tenant.Keys {
	t.Helper()
	keys, err := tenant.ParseKeys(apiKeysSetting)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// apiKeysSetting is NODERUNTIME_API_KEYS: the hashes of the two tenants' keys.
var apiKeysSetting = "acme:" + tenant.HashKey(acmeKey) + ",globex:" + tenant.HashKey(globexKey)

func (s *service) scrapeMetrics() string {
	resp, raw := s.do(http.MethodGet, "/metrics", "", nil, nil)
	if resp.StatusCode != http.StatusOK {
		s.t.Errorf("/metrics: %d", resp.StatusCode)
	}
	return string(raw)
}

// do sends one request; body is raw bytes, or a value to encode as JSON.
func (s *service) do(method, path, key string, body any, header http.Header) (*http.Response, []byte) {
	s.t.Helper()
	return send(s.t, s.client, method, s.url+path, key, body, header)
}

func send(t testing.TB, c *http.Client, method, url, key string, body any, header http.Header) (*http.Response, []byte) {
	t.Helper()
	return sendTraced(t, c, method, url, key, body, header, nil)
}

// sendTraced is send with a client trace (nil: none).
func sendTraced(t testing.TB, c *http.Client, method, url, key string, body any, header http.Header, trace *httptrace.ClientTrace) (*http.Response, []byte) {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if trace != nil {
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp, buf.Bytes()
}

// createClientCredentials adds a client-credentials authorization on sim's Engage.
func (s *service) createClientCredentials(name string, sim *engagesim.Sim) string {
	s.t.Helper()
	return createAuthorization(s.t, s.client, s.url, acmeKey, clientCredentials(name, sim.BaseURL()))
}

// clientCredentials is the body that creates a client-credentials authorization.
func clientCredentials(name, baseURL string) map[string]any {
	return map[string]any{"name": name, "kind": "client-credentials", "baseUrl": baseURL, "domain": engageDomain,
		"tenantId": engageTenantID, "tenantSecret": tenantSecret}
}

// createLogin adds a Webex login authorization and completes the login as the user.
func (s *service) createLogin(name string) string {
	s.t.Helper()
	return createLogin(s.t, s.client, s.url, s.sims[0], name)
}

func createAuthorization(t testing.TB, c *http.Client, url, key string, body map[string]any) string {
	t.Helper()
	id, _ := startAuthorization(t, c, url, key, body)
	return id
}

// startAuthorization creates an authorization as the tenant of key and returns its ID
// and, for a Webex login, the URL the user must visit.
func startAuthorization(t testing.TB, c *http.Client, url, key string, body map[string]any) (string, string) {
	t.Helper()
	resp, raw := send(t, c, http.MethodPost, url+"/v1/authorizations", key, body, nil)
	var created struct{ ID, AuthorizeURL string }
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(raw, &created) != nil {
		t.Fatalf("create authorization %v: %d %s", body["name"], resp.StatusCode, raw)
	}
	return created.ID, created.AuthorizeURL
}

func createLogin(t testing.TB, c *http.Client, url string, sim *engagesim.Sim, name string) string {
	t.Helper()
	id, authorizeURL := startAuthorization(t, c, url, acmeKey, webexLogin(name, sim.BaseURL()))
	back, err := engagesim.SignIn(t.Context(), authorizeURL, userName, userPassword)
	if err != nil {
		t.Fatal(err)
	}
	resp, page, _, err := loginflow.Finish(t.Context(), c, back.String(), "connect")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("login callback of %s: %v %v %s", name, resp, err, page)
	}
	return id
}

// webexLogin is the body that starts a Webex login authorization.
func webexLogin(name, baseURL string) map[string]any {
	return map[string]any{"name": name, "kind": "webex-login", "baseUrl": baseURL, "domain": engageDomain}
}

// answer is an execution's 200 answer.
type answer struct {
	Outcome string         `json:"outcome"`
	Output  map[string]any `json:"output"`
	Error   *struct {
		Code         string `json:"code"`
		Message      string `json:"message"`
		EngageStatus int    `json:"engageStatus"`
	} `json:"error"`
	ExecutionID string `json:"executionId"`
	DurationMs  int    `json:"durationMs"`
}

func (a answer) code() string {
	if a.Error == nil {
		return ""
	}
	return a.Error.Code
}

// execution is one POST /v1/executions, as sent.
type execution map[string]any

// search finds the suite's customer's conversation on sms.
func search(auth string, timeoutMs int) execution {
	return execution{"node": "search-conversation", "version": "1.3", "authorizationId": auth, "timeoutMs": timeoutMs,
		"input": map[string]any{"channel": "sms", "bizAddress": "+15559999", "customerAddress": "+15550001"}}
}

// appendText appends an outbound SMS text to a conversation.
func appendText(auth, conversationID, text string, timeoutMs int) execution {
	return execution{"node": "append-message", "version": "1.4", "authorizationId": auth, "timeoutMs": timeoutMs,
		"input": map[string]any{"conversationId": conversationID, "channel": "sms", "direction": "outbound",
			"messageType": "text", "timestamp": "2026-03-01T12:00:00Z", "text": text}}
}

// closeConversation closes a conversation.
func closeConversation(auth, conversationID string, timeoutMs int) execution {
	return execution{"node": "close-conversation", "version": "1.0", "authorizationId": auth, "timeoutMs": timeoutMs,
		"input": map[string]any{"conversationId": conversationID}}
}

// seedConversation stores an active SMS conversation of the suite's customer.
func seedConversation(sim *engagesim.Sim) string {
	return sim.SeedConversation(engageDomain, engagesim.Conversation{
		Channel: "sms", CustomerAddress: "+15550001", BizAddress: "+15559999", Status: "active", CreatedAt: time.Now(),
	})
}

// execute runs e and returns its answer and how long the service took to answer: from
// the request written whole to the first byte of the answer, as the caller sees it on
// the wire. A status other than 200 fails the test.
func (s *service) execute(e execution, header http.Header) (answer, time.Duration) {
	s.t.Helper()
	return executeAt(s.t, s.client, s.url, e, header)
}

func executeAt(t testing.TB, c *http.Client, url string, e execution, header http.Header) (answer, time.Duration) {
	t.Helper()
	var wrote, first time.Time
	trace := &httptrace.ClientTrace{
		WroteRequest:         func(httptrace.WroteRequestInfo) { wrote = time.Now() },
		GotFirstResponseByte: func() { first = time.Now() },
	}
	resp, raw := sendTraced(t, c, http.MethodPost, url+"/v1/executions", acmeKey, map[string]any(e), header, trace)
	took := first.Sub(wrote)
	var a answer
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &a) != nil || a.Outcome == "" {
		t.Errorf("%s: %d %s", e["node"], resp.StatusCode, raw)
	}
	return a, took
}

// quiesce closes every connection between the test, the service and the simulators, so
// that only goroutines that belong to no request remain.
func (s *service) quiesce() {
	closeIdle(s.client)
	s.srv.CloseClientConnections()
	for _, sim := range s.sims {
		sim.CloseClientConnections()
	}
}

// goroutineBaseline quiesces and returns the goroutine count once it holds still.
func (s *service) goroutineBaseline() int {
	s.t.Helper()
	s.quiesce()
	last, stable := -1, 0
	deadline := time.Now().Add(10 * time.Second)
	for stable < 5 && time.Now().Before(deadline) {
		n := runtime.NumGoroutine()
		if n == last {
			stable++
		} else {
			last, stable = n, 0
		}
		time.Sleep(20 * time.Millisecond)
	}
	return last
}

// waitForGoroutines waits until no more goroutines run than at baseline: nothing a
// request started outlives it. It fails with the stacks of the extra ones.
func (s *service) waitForGoroutines(baseline int) {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s.quiesce()
		n := runtime.NumGoroutine()
		if n <= baseline {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			s.t.Fatalf("%d goroutines, baseline %d: a request left goroutines behind\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventually polls cond every 20 ms until it holds, and fails after within.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// staggered runs f(0..n-1), starting them evenly over spread, and waits for all of them.
// With a spread shorter than each call, all n still run at once, but they do not all
// reach their deadline in the same instant, as real traffic does not either.
func staggered(n int, spread time.Duration, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			time.Sleep(spread * time.Duration(i) / time.Duration(n))
			f(i)
		})
	}
	wg.Wait()
}

// status returns the status of GET path.
func (s *service) status(path string) int {
	resp, _ := s.do(http.MethodGet, path, "", nil, nil)
	return resp.StatusCode
}

// metric returns the value of one sample line of the exposition ("" when absent).
func metric(exposition, series string) string {
	for line := range strings.Lines(exposition) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			return v
		}
	}
	return ""
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("e2e: %v", err))
	}
	return v
}
