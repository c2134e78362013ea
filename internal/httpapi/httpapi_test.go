package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/noderuntime/noderuntime/internal/httpapi"
	"github.com/noderuntime/noderuntime/internal/jsonlog"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

const testKey = "test-api-key-acme"

type fixture struct {
	srv    *httptest.Server
	router chi.Router
	logs   *syncBuffer
	ready  atomic.Pointer[httpapi.Readiness] // what /readyz's check finds
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	keys, err := tenant.ParseKeys("acme:" + tenant.HashKey(testKey) + ",globex:" + tenant.HashKey("globex-key"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{logs: &syncBuffer{}}
	f.ready.Store(&httpapi.Readiness{})
	reg := prometheus.NewRegistry()
	// echo is a hot route (Deps.V1Hot), as executions are; panic an ordinary one.
	echoRoutes := func(v1 chi.Router) {
		v1.Post("/test/echo", func(w http.ResponseWriter, r *http.Request) {
			var body map[string]any
			if !httpapi.DecodeJSON(w, r, &body) {
				return
			}
			tn, _ := httpapi.Tenant(r.Context())
			httpapi.WriteJSON(w, http.StatusOK, map[string]any{"tenant": tn, "body": body})
		})
	}
	testRoutes := func(v1 chi.Router) {
		v1.Get("/test/panic", func(http.ResponseWriter, *http.Request) { panic("boom in handler") })
	}
	f.router = httpapi.NewRouter(httpapi.Deps{
		V1Hot:    []func(chi.Router){echoRoutes},
		V1:       []func(chi.Router){testRoutes},
		Logger:   slog.New(jsonlog.New(f.logs, nil)),
		Metrics:  httpapi.NewMetrics(reg),
		APIKeys:  keys,
		Gatherer: reg,
		Ready:    func(context.Context) httpapi.Readiness { return *f.ready.Load() },
	})
	f.srv = httptest.NewServer(f.router)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) do(t *testing.T, method, path, key, contentType string, body io.Reader) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	return resp, out
}

func TestV1RefusesMissingAndWrongAPIKeysWith401Problems(t *testing.T) {
	f := newFixture(t)
	for name, key := range map[string]string{"no key": "", "wrong key": "not-a-key", "hash instead of key": tenant.HashKey(testKey)} {
		t.Run(name, func(t *testing.T) {
			resp, p := f.do(t, "POST", "/v1/test/echo", key, "application/json", strings.NewReader(`{}`))
			if resp.StatusCode != 401 {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("content type %q", ct)
			}
			if p["code"] != "unauthorized" || p["status"] != float64(401) {
				t.Errorf("problem %v", p)
			}
		})
	}
	t.Run("two Authorization headers, the first valid", func(t *testing.T) {
		req, _ := http.NewRequest("POST", f.srv.URL+"/v1/test/echo", strings.NewReader(`{}`))
		req.Header["Authorization"] = []string{"Bearer " + testKey, "Bearer globex-key"}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("status %d, want 401", resp.StatusCode)
		}
	})
	// Authentication comes first: a caller without a key is not told how to shape a
	// body it may not send anyway.
	for name, body := range map[string]struct {
		ct   string
		body io.Reader
	}{
		"no key and a body that is not JSON": {"text/plain", strings.NewReader("x")},
		"no key and a body over the limit":   {"application/json", bytes.NewReader(make([]byte, httpapi.MaxBodyBytes+1))},
	} {
		t.Run(name, func(t *testing.T) {
			resp, p := f.do(t, "POST", "/v1/test/echo", "", body.ct, body.body)
			if resp.StatusCode != 401 || p["code"] != "unauthorized" || resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("status %d %v, want 401", resp.StatusCode, p)
			}
		})
	}
	t.Run("unknown /v1 route without a key is also 401", func(t *testing.T) {
		resp, _ := f.do(t, "GET", "/v1/nope", "", "", nil)
		if resp.StatusCode != 401 {
			t.Fatalf("status %d, want 401", resp.StatusCode)
		}
	})
}

func TestV1ResolvesTheCallersTenantFromTheKey(t *testing.T) {
	f := newFixture(t)
	for key, want := range map[string]string{testKey: "acme", "globex-key": "globex"} {
		resp, body := f.do(t, "POST", "/v1/test/echo", key, "application/json", strings.NewReader(`{"a":1}`))
		if resp.StatusCode != 200 || body["tenant"] != want {
			t.Fatalf("key for %s: status %d body %v", want, resp.StatusCode, body)
		}
	}
}

func TestBodiesOverOneMebibyteGet413(t *testing.T) {
	f := newFixture(t)
	big := `{"x":"` + strings.Repeat("a", httpapi.MaxBodyBytes) + `"}`
	t.Run("announced length", func(t *testing.T) {
		resp, p := f.do(t, "POST", "/v1/test/echo", testKey, "application/json", strings.NewReader(big))
		if resp.StatusCode != 413 || p["code"] != "payload_too_large" {
			t.Fatalf("status %d problem %v", resp.StatusCode, p)
		}
	})
	t.Run("chunked stream", func(t *testing.T) {
		resp, p := f.do(t, "POST", "/v1/test/echo", testKey, "application/json", io.MultiReader(strings.NewReader(big)))
		if resp.StatusCode != 413 || p["code"] != "payload_too_large" {
			t.Fatalf("status %d problem %v", resp.StatusCode, p)
		}
	})
	t.Run("just under the limit is fine", func(t *testing.T) {
		ok := `{"x":"` + strings.Repeat("a", httpapi.MaxBodyBytes-16) + `"}`
		resp, _ := f.do(t, "POST", "/v1/test/echo", testKey, "application/json", strings.NewReader(ok))
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

func TestNonJSONBodiesGet415(t *testing.T) {
	f := newFixture(t)
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "", "application/xml"} {
		resp, p := f.do(t, "POST", "/v1/test/echo", testKey, ct, strings.NewReader(`{"a":1}`))
		if resp.StatusCode != 415 || p["code"] != "unsupported_media_type" {
			t.Errorf("content type %q: status %d problem %v", ct, resp.StatusCode, p)
		}
	}
	for _, ct := range []string{"application/json; charset=utf-8", "application/json; charset=UTF-8", "application/json;charset=\"utf-8\"", "application/json; charset=us-ascii"} {
		if resp, p := f.do(t, "POST", "/v1/test/echo", testKey, ct, strings.NewReader(`{"a":1}`)); resp.StatusCode != 200 {
			t.Errorf("%s: status %d %v", ct, resp.StatusCode, p)
		}
	}
}

// JSON is UTF-8 (RFC 8259 §8.1): a body labelled with another charset would be misread
// (latin1's "é" is not valid UTF-8), so it is refused, naming the charset.
func TestAJSONBodyInAnotherCharsetGets415(t *testing.T) {
	f := newFixture(t)
	for _, cs := range []string{"latin1", "ISO-8859-1", "utf-16", "windows-1252"} {
		resp, p := f.do(t, "POST", "/v1/test/echo", testKey, "application/json; charset="+cs, strings.NewReader(`{"a":1}`))
		if resp.StatusCode != 415 || p["code"] != "unsupported_media_type" || !strings.Contains(fmt.Sprint(p["detail"]), `charset "`+cs+`"`) {
			t.Errorf("charset %s: %d %v, want 415 naming it", cs, resp.StatusCode, p)
		}
	}
	// UTF-8 under the labels clients use for it (the WHATWG Encoding Standard's), and
	// US-ASCII, which is UTF-8 too, are taken.
	for _, cs := range []string{"utf-8", "UTF-8", "utf8", "UTF8", "unicode-1-1-utf-8", "us-ascii", `"utf-8"`} {
		if resp, p := f.do(t, "POST", "/v1/test/echo", testKey, "application/json; charset="+cs, strings.NewReader(`{"a":1}`)); resp.StatusCode != 200 {
			t.Errorf("charset %s: %d %v, want 200", cs, resp.StatusCode, p)
		}
	}
}

// A JSON media type whose parameters do not parse is refused for them, saying so: the
// caller did send JSON, and "send the body as application/json" would tell it it had not.
func TestAJSONContentTypeWithParametersThatDoNotParseIsRefusedForThem(t *testing.T) {
	f := newFixture(t)
	for _, ct := range []string{"application/json; charset=", "application/json; foo", "application/problem+json;charset"} {
		resp, p := f.do(t, "POST", "/v1/test/echo", testKey, ct, strings.NewReader(`{"a":1}`))
		if detail := fmt.Sprint(p["detail"]); resp.StatusCode != 415 || p["code"] != "unsupported_media_type" || !strings.Contains(detail, "parameters that do not parse") {
			t.Errorf("%q: %d %v, want 415 naming the parameters", ct, resp.StatusCode, p)
		}
	}
	// What parses is unchanged: JSON in any case, a trailing semicolon, the charset spaced.
	for _, ct := range []string{"Application/JSON", "application/json;", "application/json ; charset=utf-8"} {
		if resp, p := f.do(t, "POST", "/v1/test/echo", testKey, ct, strings.NewReader(`{"a":1}`)); resp.StatusCode != 200 {
			t.Errorf("%q: %d %v, want 200", ct, resp.StatusCode, p)
		}
	}
	if resp, p := f.do(t, "POST", "/v1/test/echo", testKey, "text/plain; foo", strings.NewReader(`{"a":1}`)); resp.StatusCode != 415 || !strings.Contains(fmt.Sprint(p["detail"]), "send the body as application/json") {
		t.Errorf("text/plain; foo: %d %v", resp.StatusCode, p)
	}
}

func TestMalformedJSONGets400ThatNamesTheProblem(t *testing.T) {
	f := newFixture(t)
	for body, want := range map[string]string{
		``:          "empty",
		`{"a":`:     "ends in the middle",
		`{"a" 1}`:   "malformed JSON",
		`[1,2]`:     "want a JSON object",
		`{"a":1} x`: "trailing data",
		`{"a":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`: "more than 10000 levels deep",
		// A lone surrogate escape decodes to U+FFFD: the text would change unseen.
		`{"a":"x\ud800"}`:            `\ud800 is half of a UTF-16 surrogate pair`,
		`{"a":"\uDC00"}`:             `\uDC00 is half`,
		`{"a":"\ud83d\u0041"}`:       `\ud83d is half`,
		`{"a":"\ud83d\ue000"}`:       `\ud83d is half`,
		`{"a":["\\\udbff"]}`:         `\udbff is half`,
		`{"a\ud800":1}`:              `\ud800 is half`,
		`{"a":"\ud83d\ude00\ud800"}`: `\ud800 is half`,
		// A byte order mark is invisible: the problem names it.
		"\ufeff" + `{"a":1}`: "starts with a byte order mark",
	} {
		resp, p := f.do(t, "POST", "/v1/test/echo", testKey, "application/json", strings.NewReader(body))
		if resp.StatusCode != 400 || !strings.Contains(p["detail"].(string), want) {
			t.Errorf("body %q: status %d detail %v, want %q", body, resp.StatusCode, p["detail"], want)
		}
	}
	// A whole pair, and an escaped backslash before "ud800", are text.
	for _, body := range []string{`{"a":"\ud83d\ude00"}`, `{"a":"\\ud800"}`, `{"a":"\u00e9\n"}`} {
		if resp, p := f.do(t, "POST", "/v1/test/echo", testKey, "application/json", strings.NewReader(body)); resp.StatusCode != 200 {
			t.Errorf("body %q: status %d %v, want 200", body, resp.StatusCode, p)
		}
	}
}

func TestRequestIDIsEchoedOrGenerated(t *testing.T) {
	f := newFixture(t)
	req, _ := http.NewRequest("GET", f.srv.URL+"/healthz", nil)
	req.Header.Set("X-Request-Id", "orchestrator-req-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got != "orchestrator-req-42" {
		t.Fatalf("echoed %q", got)
	}
	resp, p := f.do(t, "GET", "/v1/nope", "", "", nil)
	id := resp.Header.Get("X-Request-Id")
	if len(id) != 32 || p["requestId"] != id {
		t.Fatalf("generated id %q, problem requestId %v", id, p["requestId"])
	}
	req.Header.Set("X-Request-Id", "bad\" id with spaces")
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got == "bad\" id with spaces" || len(got) != 32 {
		t.Fatalf("an unsafe request ID was echoed: %q", got)
	}
}

func TestAPanickingHandlerAnswers500ProblemAndTheServerKeepsServing(t *testing.T) {
	f := newFixture(t)
	resp, p := f.do(t, "GET", "/v1/test/panic", testKey, "", nil)
	if resp.StatusCode != 500 || p["code"] != "internal" {
		t.Fatalf("status %d problem %v", resp.StatusCode, p)
	}
	if strings.Contains(p["detail"].(string), "boom") {
		t.Errorf("the panic value leaked into the response: %v", p["detail"])
	}
	if !strings.Contains(f.logs.String(), "boom in handler") || !strings.Contains(f.logs.String(), "goroutine") {
		t.Errorf("the panic and its stack were not logged: %s", f.logs.String())
	}
	resp, _ = f.do(t, "GET", "/healthz", "", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("after the panic /healthz is %d", resp.StatusCode)
	}
}

func TestReadyzFollowsTheReadinessCheck(t *testing.T) {
	f := newFixture(t)
	if resp, _ := f.do(t, "GET", "/readyz", "", "", nil); resp.StatusCode != 200 {
		t.Fatalf("ready: %d", resp.StatusCode)
	}
	f.ready.Store(&httpapi.Readiness{Err: errors.New("postgres is unreachable"), PostgresDown: "unreachable"})
	resp, p := f.do(t, "GET", "/readyz", "", "", nil)
	if resp.StatusCode != 503 || p["code"] != "not_ready" {
		t.Fatalf("not ready: %d %v", resp.StatusCode, p)
	}
}

// ?exclude=postgres passes a Postgres outage, saying so, and nothing else: a schema
// behind, or a Postgres never reached (no PostgresDown), keeps the pod out.
func TestReadyzExcludingPostgresPassesOnlyAPostgresOutage(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		name      string
		readiness httpapi.Readiness
		want      int
		body      map[string]any
	}{
		{"ready", httpapi.Readiness{}, 200, map[string]any{"status": "ready"}},
		{"postgres unreachable", httpapi.Readiness{Err: errors.New("postgres is unreachable"), PostgresDown: "unreachable"}, 200,
			map[string]any{"status": "degraded", "postgres": "unreachable"}},
		{"postgres refuses", httpapi.Readiness{Err: errors.New("postgres refuses the connection"), PostgresDown: "refused"}, 200,
			map[string]any{"status": "degraded", "postgres": "refused"}},
		{"postgres never reached", httpapi.Readiness{Err: errors.New("postgres is unreachable")}, 503, nil},
		{"schema behind", httpapi.Readiness{Err: errors.New("database schema is behind")}, 503, nil},
	} {
		f.ready.Store(&c.readiness)
		resp, body := f.do(t, "GET", "/readyz?exclude=postgres", "", "", nil)
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d %v, want %d", c.name, resp.StatusCode, body, c.want)
		} else if c.want == 200 && !maps.Equal(body, c.body) {
			t.Errorf("%s: body %v, want %v", c.name, body, c.body)
		} else if c.want == 503 && (body["code"] != "not_ready" || body["detail"] != c.readiness.Err.Error()) {
			t.Errorf("%s: problem %v", c.name, body)
		}
	}
}

// Only postgres can be excluded, once; anything else is a mistake in the probe that a
// 200 or a 503 would hide.
func TestReadyzRefusesAnyOtherExclude(t *testing.T) {
	f := newFixture(t)
	for _, query := range []string{"exclude=etcd", "exclude=", "exclude", "exclude=Postgres", "exclude=postgres,etcd", "exclude=postgres&exclude=postgres", "exclude=postgres&exclude=etcd",
		"exclude=postgres;x", "exclude=%zz", "exclude=postgres&exclude=%zz"} {
		resp, p := f.do(t, "GET", "/readyz?"+query, "", "", nil)
		if resp.StatusCode != 400 || p["code"] != "bad_request" || !strings.Contains(p["detail"].(string), `"postgres"`) {
			t.Errorf("?%s: %d %v, want 400 bad_request naming postgres", query, resp.StatusCode, p)
		}
	}
}

func TestAccessLogIsOneJSONLinePerRequestWithRequestIDAndTenant(t *testing.T) {
	f := newFixture(t)
	f.do(t, "POST", "/v1/test/echo", testKey, "application/json", strings.NewReader(`{"a":1}`))
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(f.logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["route"] == "/v1/test/echo" {
			found = true
			if rec["tenant"] != "acme" || rec["status"] != float64(200) || rec["requestId"] == "" {
				t.Errorf("access log line %v", rec)
			}
		}
	}
	if !found {
		t.Fatalf("no access log line for the request: %s", f.logs.String())
	}
	if strings.Contains(f.logs.String(), testKey) {
		t.Fatal("the API key appears in the logs")
	}
}

func TestMetricsCountRequestsByRoutePattern(t *testing.T) {
	f := newFixture(t)
	f.do(t, "GET", "/healthz", "", "", nil)
	resp, err := http.Get(f.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !bytes.Contains(body, []byte(`noderuntime_http_requests_total{code="200",route="/healthz"} 1`)) {
		t.Fatalf("metrics:\n%s", body)
	}
}

// A hot route (Deps.V1Hot) answers as it would under the /v1 mount: authentication
// first, 405 for another method, and the route pattern in logs and metrics.
func TestHotRoutesAnswerAsMountedRoutes(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		method, key string
		want        int
	}{
		{"POST", "", 401},
		{"POST", "wrong-key", 401},
		{"GET", "", 401},
		{"GET", testKey, 405},
		{"DELETE", testKey, 405},
		{"POST", testKey, 200},
	} {
		var body io.Reader
		if c.method == "POST" {
			body = strings.NewReader(`{"a":1}`)
		}
		resp, _ := f.do(t, c.method, "/v1/test/echo", c.key, "application/json", body)
		if resp.StatusCode != c.want {
			t.Errorf("%s with key %q: %d, want %d", c.method, c.key, resp.StatusCode, c.want)
		}
	}
	// The mounted route's own 405 is labelled as the hot route's is.
	if resp, _ := f.do(t, "DELETE", "/v1/test/panic", testKey, "", nil); resp.StatusCode != 405 {
		t.Fatalf("DELETE on a mounted route: %d", resp.StatusCode)
	}
	logs := f.logs.String()
	if strings.Count(logs, `"route":"/v1/test/echo"`) != 3 || strings.Count(logs, `"route":"/v1/*"`) != 4 {
		t.Errorf("access log routes:\n%s", logs)
	}
}

func TestA405NamesTheAllowedMethodsAndHEADIsServedWhereGETIs(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ method, path, allow string }{
		{"POST", "/healthz", "GET, HEAD"},
		{"DELETE", "/v1/test/echo", "POST"}, // a hot route
		{"HEAD", "/v1/test/echo", "POST"},
		{"PUT", "/v1/test/panic", "GET, HEAD"}, // a mounted one
	} {
		resp, p := f.do(t, tc.method, tc.path, testKey, "", nil)
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q, want 405 Allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), tc.allow)
		}
		if tc.method != "HEAD" && p["code"] != "method_not_allowed" {
			t.Errorf("%s %s: problem %v", tc.method, tc.path, p)
		}
	}
	resp, _ := f.do(t, "HEAD", "/healthz", "", "", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") == "" {
		t.Errorf("HEAD /healthz: %d %v", resp.StatusCode, resp.Header)
	}
}

// A method no route of the service knows (FOO, or a WebDAV one) is answered as any
// other method a path does not take: 405 with Allow where the path serves something,
// 404 where it serves nothing, never a 405 with no Allow (RFC 9110 §15.5.6).
// A path that differs from a route only by a trailing or a doubled slash (a base URL
// joined with one slash too many) is still a 404, but its detail names the route and
// its methods; a /v1 route only to a caller with a valid API key. Any other path is
// plainly "no such route".
func TestA404NamesTheRouteAPathMissesOnlyByASlash(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		method, path, key string
		status            int
		detail            string
	}{
		{"POST", "/v1/test/echo/", testKey, 404, "no such route; /v1/test/echo is one (POST): paths are matched exactly"},
		{"POST", "/v1//test/echo", testKey, 404, "no such route; /v1/test/echo is one (POST)"},
		{"GET", "//healthz", "", 404, "no such route; /healthz is one (GET, HEAD)"},
		{"GET", "/v1/test/panic//", testKey, 404, "no such route; /v1/test/panic is one (GET, HEAD)"},
		{"GET", "/v1/test/nothing/", testKey, 404, "no such route"},
		{"GET", "/nothing", "", 404, "no such route"},
		{"POST", "/v1/test/echo/", "", 401, "send an API key"},
		// Outside /v1 (to the router) but naming a /v1 route: named to a caller with a
		// key only, as anything under /v1 is.
		{"POST", "//v1/test/echo", testKey, 404, "no such route; /v1/test/echo is one (POST)"},
		{"POST", "//v1/test/echo", "", 404, "no such route"},
		{"POST", "//v1/test/echo", "not-a-key", 404, "no such route"},
	} {
		req, _ := http.NewRequest(tc.method, f.srv.URL+tc.path, strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		if tc.key != "" {
			req.Header.Set("Authorization", "Bearer "+tc.key)
		}
		resp, p := doRequest(t, req)
		detail, _ := p["detail"].(string)
		if resp.StatusCode != tc.status || !strings.HasPrefix(detail, tc.detail) || (tc.detail == "no such route" && detail != tc.detail) {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, resp.StatusCode, detail, tc.status, tc.detail)
		}
	}
}

func TestAnUnknownMethodIsA405WithAllowOrA404(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"FOO", "/healthz", 405, "GET, HEAD"},
		{"PROPFIND", "/v1/test/echo", 405, "POST"},
		{"FOO", "/no-such-page", 404, ""},
		{"FOO", "/v1/no-such-route", 404, ""},
	} {
		resp, p := f.do(t, tc.method, tc.path, testKey, "", nil)
		if resp.StatusCode != tc.status || resp.Header.Get("Allow") != tc.allow || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: %d Allow %q %s %v, want %d Allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("Content-Type"), p, tc.status, tc.allow)
		}
	}
}

// The path of a mounted router itself ("/admin", "/admin/") matches every method in
// chi's tree; its 405 lists what the mounted router serves at "/", not every method,
// the refused one included.
func TestA405AtAMountedRoutersOwnPathNamesWhatItServes(t *testing.T) {
	ok := func(w http.ResponseWriter, _ *http.Request) {}
	r := httpapi.NewOperationsRouter(slog.New(slog.DiscardHandler), httpapi.NewMetrics(prometheus.NewRegistry()), func(r chi.Router) {
		r.Route("/pages", func(r chi.Router) {
			r.Get("/", ok)
			r.Post("/login", ok)
		})
	})
	for _, tc := range []struct{ method, path, allow string }{
		{"PATCH", "/pages/", "GET, HEAD"},
		{"DELETE", "/pages", "GET, HEAD"},
		{"PUT", "/pages/login", "POST"},
	} {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != 405 || rec.Header().Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q, want 405 Allow %q", tc.method, tc.path, rec.Code, rec.Header().Get("Allow"), tc.allow)
		}
	}
}

// A caller's request ID is echoed when it is at most 128 bytes of letters, digits and
// ".", "_", ":", "-"; anything else is replaced, so the header and the log carry only
// what the service checked.
func TestARequestIDIsEchoedOnlyWhenShortAndPlain(t *testing.T) {
	f := newFixture(t)
	for id, echoed := range map[string]bool{
		strings.Repeat("a", 128): true,
		strings.Repeat("a", 129): false,
		"Az09._:-":               true,
		"a/b":                    false,
		"a@b":                    false,
		"a{b":                    false,
		"a%0Ab":                  false,
	} {
		req, _ := http.NewRequest("GET", f.srv.URL+"/healthz", nil)
		req.Header.Set("X-Request-Id", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Request-Id"); (got == id) != echoed || (!echoed && len(got) != 32) {
			t.Errorf("request ID %q (%d bytes): answered %q, want it echoed: %v", id, len(id), got, echoed)
		}
	}
}

// Two Authorization lines are refused for being two, whichever of them is valid: the
// problem says so rather than that the key is wrong.
func TestTwoAuthorizationHeadersAreRefusedAsSuch(t *testing.T) {
	f := newFixture(t)
	for _, lines := range [][]string{{"Bearer " + testKey, "Bearer globex-key"}, {"Bearer " + testKey, "Bearer " + testKey}} {
		req, _ := http.NewRequest("POST", f.srv.URL+"/v1/test/echo", strings.NewReader(`{}`))
		req.Header["Authorization"] = lines
		req.Header.Set("Content-Type", "application/json")
		resp, p := doRequest(t, req)
		if resp.StatusCode != 401 || !strings.Contains(p["detail"].(string), "one Authorization header") {
			t.Fatalf("%d %v", resp.StatusCode, p)
		}
	}
}

// A request that passed no authentication has no tenant, even though the edge has
// already given it a request ID.
func TestARequestOutsideV1HasNoTenant(t *testing.T) {
	var ok bool
	var tn any
	r := httpapi.NewOperationsRouter(slog.New(slog.DiscardHandler), httpapi.NewMetrics(prometheus.NewRegistry()), func(r chi.Router) {
		r.Get("/who", func(w http.ResponseWriter, r *http.Request) {
			tn, ok = httpapi.Tenant(r.Context())
			if httpapi.RequestID(r.Context()) == "" {
				t.Error("no request ID")
			}
		})
	})
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(context.Background(), "GET", "/who", nil))
	if ok {
		t.Fatalf("tenant %q outside /v1", tn)
	}
}

// The body limit is exact, announced or streamed: MaxBodyBytes is served, one byte more
// is 413.
func TestTheBodyLimitIsExactlyOneMebibyte(t *testing.T) {
	f := newFixture(t)
	body := func(n int) string { return `{"x":"` + strings.Repeat("a", n-len(`{"x":""}`)) + `"}` }
	for _, tc := range []struct {
		size   int
		status int
	}{{httpapi.MaxBodyBytes, 200}, {httpapi.MaxBodyBytes + 1, 413}} {
		resp, p := f.do(t, "POST", "/v1/test/echo", testKey, "application/json", strings.NewReader(body(tc.size)))
		if resp.StatusCode != tc.status {
			t.Errorf("%d bytes announced: %d %v", tc.size, resp.StatusCode, p["detail"])
		}
		resp, p = f.do(t, "POST", "/v1/test/echo", testKey, "application/json", io.MultiReader(strings.NewReader(body(tc.size))))
		if resp.StatusCode != tc.status {
			t.Errorf("%d bytes streamed: %d %v", tc.size, resp.StatusCode, p["detail"])
		}
	}
}

// JSON under a structured syntax suffix (RFC 6839) is JSON; a POST without a body is
// still refused for a Content-Type that is not JSON.
func TestJSONMediaTypesAreAcceptedAndOthersRefusedEvenWithoutABody(t *testing.T) {
	f := newFixture(t)
	if resp, p := f.do(t, "POST", "/v1/test/echo", testKey, "application/vnd.noderuntime+json", strings.NewReader(`{"a":1}`)); resp.StatusCode != 200 {
		t.Errorf("+json: %d %v", resp.StatusCode, p)
	}
	if resp, p := f.do(t, "POST", "/v1/test/echo", testKey, "text/plain", nil); resp.StatusCode != 415 {
		t.Errorf("text/plain without a body: %d %v", resp.StatusCode, p)
	}
}

// A body that is not JSON is refused whatever the method, a body sent chunked (no
// Content-Length) included; and a PUT or PATCH, which has a body by its nature, is held
// to the JSON media type even when it comes without one.
func TestANonJSONBodyIsRefusedOnEveryMethodAndChunkedToo(t *testing.T) {
	f := newFixture(t)
	chunked := io.MultiReader(strings.NewReader("not JSON")) // no length known: sent chunked
	req, _ := http.NewRequest("GET", f.srv.URL+"/v1/test/panic", chunked)
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "text/plain")
	if resp, p := doRequest(t, req); resp.StatusCode != 415 || p["code"] != "unsupported_media_type" {
		t.Errorf("GET with a chunked text/plain body: %d %v, want 415", resp.StatusCode, p)
	}
	for _, method := range []string{"PUT", "PATCH"} {
		if resp, p := f.do(t, method, "/v1/test/panic", testKey, "text/plain", nil); resp.StatusCode != 415 {
			t.Errorf("%s text/plain without a body: %d %v, want 415", method, resp.StatusCode, p)
		}
	}
}

// Content-Type names one media type (RFC 9110 §8.3): given twice, which one counts
// depends on who reads it (a proxy or WAF may take the other), so it is refused, as a
// second Authorization or Idempotency-Key is, rather than the first one taken.
func TestTwoContentTypeHeadersAreRefused(t *testing.T) {
	f := newFixture(t)
	for _, second := range []string{"text/plain", "application/json"} {
		req, _ := http.NewRequest("POST", f.srv.URL+"/v1/test/echo", strings.NewReader(`{"a":1}`))
		req.Header.Set("Authorization", "Bearer "+testKey)
		req.Header["Content-Type"] = []string{"application/json", second}
		if resp, p := doRequest(t, req); resp.StatusCode != 415 || p["code"] != "unsupported_media_type" {
			t.Errorf("Content-Type application/json and %s: %d %v, want 415", second, resp.StatusCode, p)
		}
	}
}

// The authentication scheme is case-insensitive (RFC 9110 §11.1), and spaces between it
// and the key are not part of the key.
func TestTheBearerSchemeIsReadInAnyCaseAndSpacesAreNotPartOfTheKey(t *testing.T) {
	f := newFixture(t)
	for _, value := range []string{"bearer " + testKey, "BEARER " + testKey, "Bearer   " + testKey} {
		req, _ := http.NewRequest("POST", f.srv.URL+"/v1/test/echo", strings.NewReader(`{}`))
		req.Header.Set("Authorization", value)
		req.Header.Set("Content-Type", "application/json")
		if resp, p := doRequest(t, req); resp.StatusCode != 200 {
			t.Errorf("%q: %d %v", value, resp.StatusCode, p)
		}
	}
}

// A 500 is an error in the access log; probes and scrapes are not logged at info, so
// they do not drown the requests that matter.
func TestTheAccessLogLevelFollowsTheStatusAndTheRoute(t *testing.T) {
	f := newFixture(t)
	f.do(t, "GET", "/v1/test/panic", testKey, "", nil)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		f.do(t, "GET", path, "", "", nil)
	}
	var panicked bool
	for _, line := range strings.Split(strings.TrimSpace(f.logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["msg"] != "request" {
			continue
		}
		switch rec["route"] {
		case "/v1/test/panic":
			panicked = true
			if rec["level"] != "ERROR" || rec["status"] != float64(500) {
				t.Errorf("the 500's access log line: %v", rec)
			}
		case "/healthz", "/readyz", "/metrics":
			t.Errorf("a probe or scrape logged at info: %v", rec)
		}
	}
	if !panicked {
		t.Fatalf("no access log line for the 500:\n%s", f.logs.String())
	}
}

// A handler that aborts its response (http.ErrAbortHandler) has it aborted, as net/http
// does, not turned into a 500 problem: the client sees the connection end.
func TestAnAbortedResponseIsAbortedNotAnswered(t *testing.T) {
	r := httpapi.NewOperationsRouter(slog.New(slog.DiscardHandler), httpapi.NewMetrics(prometheus.NewRegistry()), func(r chi.Router) {
		r.Get("/abort", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/abort")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("an aborted response was answered: %d", resp.StatusCode)
	}
}

// The headers every answer carries, a success or a problem: no answer of the API is kept
// by a cache (they carry tenants' data and request IDs; /metrics is Prometheus's), none is
// sniffed (docs/problems.md: a browser never reads a JSON answer that quotes the caller as
// HTML), and a 401 names the scheme to authenticate with (RFC 9110 §11.6.1).
func TestEveryAnswersHeaders(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		method, path, key string
		status            int
		noStore           bool
	}{
		{"POST", "/v1/test/echo", testKey, 200, true},
		{"POST", "/v1/test/echo", "", 401, true},
		{"GET", "/v1/nope", testKey, 404, true},
		{"GET", "/v1/test/panic", testKey, 500, true},
		{"GET", "/healthz", "", 200, true},
		{"GET", "/metrics", "", 200, false},
	} {
		var body io.Reader
		if tc.method == "POST" {
			body = strings.NewReader(`{"a":"<script>"}`)
		}
		resp, _ := f.do(t, tc.method, tc.path, tc.key, "application/json", body)
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
		if got := resp.Header.Get("Cache-Control"); tc.noStore && got != "no-store" {
			t.Errorf("%s %s: Cache-Control %q, want no-store", tc.method, tc.path, got)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s %s: X-Content-Type-Options %q, want nosniff", tc.method, tc.path, got)
		}
		if got := resp.Header.Get("WWW-Authenticate"); (tc.status == 401) != (got == `Bearer realm="noderuntime"`) {
			t.Errorf("%s %s: %d WWW-Authenticate %q", tc.method, tc.path, resp.StatusCode, got)
		}
	}
}

// Requests to one route are counted under the status each got.
func TestMetricsCountEachStatusOfARoute(t *testing.T) {
	f := newFixture(t)
	f.do(t, "POST", "/v1/test/echo", testKey, "application/json", strings.NewReader(`{}`))
	f.do(t, "POST", "/v1/test/echo", testKey, "application/json", strings.NewReader(`{`))
	resp, err := http.Get(f.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`noderuntime_http_requests_total{code="200",route="/v1/test/echo"} 1`,
		`noderuntime_http_requests_total{code="400",route="/v1/test/echo"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("no %s in:\n%s", want, body)
		}
	}
}

// doRequest sends req and returns the answer with its JSON body.
func doRequest(t *testing.T, req *http.Request) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

// A refused API key (a typo of a real one, or another deployment's) appears neither in
// the answer nor in the log.
func TestARefusedAPIKeyIsNeitherLoggedNorEchoed(t *testing.T) {
	f := newFixture(t)
	const refused = "nr-live-key-with-a-typo-0451"
	resp, p := f.do(t, "POST", "/v1/test/echo", refused, "application/json", strings.NewReader(`{}`))
	if resp.StatusCode != 401 {
		t.Fatalf("%d %v", resp.StatusCode, p)
	}
	if raw, _ := json.Marshal(p); strings.Contains(string(raw), refused) {
		t.Fatalf("the answer repeats the key: %s", raw)
	}
	if strings.Contains(f.logs.String(), refused) {
		t.Fatalf("the log holds the refused key:\n%s", f.logs.String())
	}
}

// A problem's type is the URN of its code (docs/problems.md), its status the answer's,
// and its title the code's own: a client may switch on either.
func TestAProblemsTypeIsTheURNOfItsCode(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		method, path, key, body string
		status                  int
		code, title             string
	}{
		{"POST", "/v1/test/echo", "", `{}`, 401, "unauthorized", "Unauthorized"},
		{"POST", "/v1/test/echo", testKey, `{`, 400, "bad_request", "Bad request"},
		{"GET", "/v1/nope", testKey, "", 404, "not_found", "Not found"},
		{"DELETE", "/v1/test/echo", testKey, "", 405, "method_not_allowed", "Method not allowed"},
	} {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		resp, p := f.do(t, tc.method, tc.path, tc.key, "application/json", body)
		if resp.StatusCode != tc.status || p["type"] != "urn:noderuntime:problem:"+tc.code || p["code"] != tc.code ||
			p["status"] != float64(tc.status) || p["title"] != tc.title {
			t.Errorf("%s %s: %d %v, want %d with type urn:noderuntime:problem:%s and title %q", tc.method, tc.path, resp.StatusCode, p, tc.status, tc.code, tc.title)
		}
	}
}

// A problem's instance is the path, without the query: a query may hold what the
// caller did not mean to have repeated.
func TestAProblemsInstanceIsThePathWithoutTheQuery(t *testing.T) {
	f := newFixture(t)
	resp, p := f.do(t, "GET", "/readyz?exclude=etcd&token=s3cret", "", "", nil)
	if resp.StatusCode != 400 || p["instance"] != "/readyz" {
		t.Fatalf("%d instance %v", resp.StatusCode, p["instance"])
	}
}

// A handler that panics once its answer has begun: the client sees the answer break,
// never a success with a problem document appended to it; and the request still has its
// one access-log line (at error level) and its count in the HTTP metrics, as every
// request does: the bug is found by its request ID, and the request is not missing from
// the rates.
func TestAPanicAfterTheAnswerBeganCutsItAndIsStillLoggedAndCounted(t *testing.T) {
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	r := httpapi.NewOperationsRouter(slog.New(slog.NewJSONHandler(&logs, nil)), httpapi.NewMetrics(reg), func(r chi.Router) {
		r.Get("/half", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{"partial":`))
			panic("a bug")
		})
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	if resp, err := http.Get(srv.URL + "/half"); err == nil { // else cut before the header arrived: as good
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Fatalf("the answer of a handler that panicked arrived whole: %d %s", resp.StatusCode, body)
		}
		if strings.Contains(string(body), "internal") {
			t.Fatalf("a problem was appended to the answer begun: %s", body)
		}
	}
	srv.Close() // the handler has returned (or unwound)
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == "request" {
			line = rec
		}
	}
	if line == nil || line["route"] != "/half" || line["level"] != "ERROR" {
		t.Fatalf("the cut answer's access-log line: %v\n%s", line, logs.String())
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var counted bool
	for _, mf := range mfs {
		if mf.GetName() != "noderuntime_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" && l.GetValue() == "/half" {
					counted = true
				}
			}
		}
	}
	if !counted {
		t.Fatal("the cut answer is not counted in noderuntime_http_requests_total")
	}
}

// An answer begun by a Write alone, without WriteHeader, has begun as much: a panic then
// cuts it too, rather than append a problem to it.
func TestAPanicAfterAWriteWithoutWriteHeaderCutsTheAnswerToo(t *testing.T) {
	r := httpapi.NewOperationsRouter(slog.New(jsonlog.New(io.Discard, nil)), httpapi.NewMetrics(prometheus.NewRegistry()), func(r chi.Router) {
		r.Get("/half", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"partial":`))
			panic("a bug")
		})
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/half")
	if err != nil {
		return // cut before the header arrived: as good
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || strings.Contains(string(body), "internal") {
		t.Fatalf("the answer of a handler that panicked was completed (read error %v): %d %s", err, resp.StatusCode, body)
	}
}

// A line logged below the HTTP edge with a request's context names the request's ID, as
// its access-log line does; a line logged without one is left as it is.
func TestALineLoggedWithARequestsContextNamesItsRequestID(t *testing.T) {
	logs := &syncBuffer{}
	logger := slog.New(httpapi.LogRequestIDs(jsonlog.New(logs, nil)))
	keys, err := tenant.ParseKeys("acme:" + tenant.HashKey(testKey))
	if err != nil {
		t.Fatal(err)
	}
	router := httpapi.NewRouter(httpapi.Deps{
		Logger: slog.New(jsonlog.New(io.Discard, nil)), Metrics: httpapi.NewMetrics(prometheus.NewRegistry()), APIKeys: keys,
		V1: []func(chi.Router){func(v1 chi.Router) {
			v1.Get("/test/below", func(w http.ResponseWriter, r *http.Request) {
				logger.InfoContext(r.Context(), "below the edge")
				w.WriteHeader(http.StatusNoContent)
			})
		}},
	})
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/test/below", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("X-Request-Id", "orchestrator-req-7")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	logger.Info("outside any request")

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var inside, outside map[string]any
	if len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &inside) != nil || json.Unmarshal([]byte(lines[1]), &outside) != nil {
		t.Fatalf("want two JSON lines, got:\n%s", logs.String())
	}
	if inside["msg"] != "below the edge" || inside["requestId"] != "orchestrator-req-7" {
		t.Errorf("the line logged with the request's context: %v, want requestId orchestrator-req-7", inside)
	}
	if _, ok := outside["requestId"]; ok {
		t.Errorf("a line logged without a request's context has a requestId: %v", outside)
	}
}
