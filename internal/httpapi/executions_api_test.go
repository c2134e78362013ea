package httpapi_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/nodes"
)

func problemOf(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("not a problem: %s", raw)
	}
	return p
}

func TestExecutionEnvelopesTheRuntimeCannotRouteGetProblems(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	const input = `"input":{"channel":"sms","bizAddress":"b","customerAddress":"c"}`
	for _, tc := range []struct {
		name, body string
		status     int
		detail     string
		absent     string // what the detail must not repeat from the body
	}{
		{"malformed JSON", `{"node":`, 400, "ends in the middle", ""},
		{"unknown envelope field", `{"node":"search-conversation","version":"1.3","authorizationId":"a",` + input + `,"retries":3}`, 400, `unknown field "retries"`, "case-sensitive"},
		{"no node", `{"version":"1.3","authorizationId":"a",` + input + `}`, 400, "node is required", ""},
		{"no version", `{"node":"search-conversation","authorizationId":"a",` + input + `}`, 400, "version is required", ""},
		{"no authorization", `{"node":"search-conversation","version":"1.3",` + input + `}`, 400, "authorizationId is required", ""},
		{"no input", `{"node":"search-conversation","version":"1.3","authorizationId":"a"}`, 400, "input is required", ""},
		{"input not an object", `{"node":"search-conversation","version":"1.3","authorizationId":"a","input":["sms"]}`, 400, "input must be a JSON object", ""},
		{"zero timeout", `{"node":"search-conversation","version":"1.3","authorizationId":"a",` + input + `,"timeoutMs":0}`, 400, "timeoutMs must be a positive", ""},
		{"timeout not a number", `{"node":"search-conversation","version":"1.3","authorizationId":"a",` + input + `,"timeoutMs":"5s"}`, 400, `field "timeoutMs"`, ""},
		{"a field named in another case beside it", `{"node":"send-fax","Node":"search-conversation","version":"1.3","authorizationId":"a",` + input + `}`, 400, `unknown field "Node" (field names are case-sensitive)`, ""},
		{"a field named in capitals", `{"NODE":"search-conversation","version":"1.3","authorizationId":"a",` + input + `}`, 400, `unknown field "NODE"`, ""},
		{"a field named with a long s", `{"node":"search-conversation","verſion":"1.3","authorizationId":"a",` + input + `}`, 400, `unknown field "verſion"`, ""},
		{"a long unknown field", `{"` + strings.Repeat("A", 100_000) + `":1}`, 400, `unknown field "AAAA`, strings.Repeat("A", 65)},
		{"a long key given twice in input", `{"node":"search-conversation","version":"1.3","authorizationId":"a","input":{"` + strings.Repeat("A", 100_000) + `":1,"` + strings.Repeat("A", 100_000) + `":2}}`, 400, `the key "AAAA`, strings.Repeat("A", 65)},
		{"a timeout past int64", `{"node":"search-conversation","version":"1.3","authorizationId":"a",` + input + `,"timeoutMs":99999999999999999999}`, 400, `field "timeoutMs": want an integer (no fraction or exponent) up to 9223372036854775807, got JSON number`, "999999"},
		// What a field takes, in JSON's words: never a Go type ("httpapi.executionContext", "int64").
		{"a timeout with a fraction", `{"node":"search-conversation","version":"1.3","authorizationId":"a",` + input + `,"timeoutMs":1.5}`, 400, `field "timeoutMs": want an integer`, "int64"},
		{"a context that is a number", `{"node":"search-conversation","version":"1.3","authorizationId":"a",` + input + `,"context":5}`, 400, `field "context": want a JSON object, got JSON number`, "httpapi"},
		{"a flow ID that is an object", `{"node":"search-conversation","version":"1.3","authorizationId":"a",` + input + `,"context":{"flowId":{}}}`, 400, `field "context.flowId": want a JSON string, got JSON object`, ""},
		{"a body that is null", `null`, 400, `want a JSON object, got JSON null`, ""},
		// null is no field's type (the OpenAPI's ExecutionRequest): not the same as leaving it out.
		{"a timeout of null", `{"node":"search-conversation","version":"1.3","authorizationId":"a",` + input + `,"timeoutMs":null}`, 400, `field "timeoutMs": want an integer (no fraction or exponent) up to 9223372036854775807, got JSON null`, ""},
		{"a context of null", `{"node":"search-conversation","version":"1.3","authorizationId":"a",` + input + `,"context":null}`, 400, `field "context": want a JSON object, got JSON null`, ""},
		{"a flow ID of null", `{"node":"search-conversation","version":"1.3","authorizationId":"a",` + input + `,"context":{"flowId":null}}`, 400, `field "context.flowId": want a JSON string, got JSON null`, ""},
		{"a node of null", `{"node":null,"version":"1.3","authorizationId":"a",` + input + `}`, 400, `field "node": want a JSON string, got JSON null`, ""},
		{"unknown node", `{"node":"send-fax","version":"1.0","authorizationId":"a",` + input + `}`, 404, `there is no node "send-fax"`, ""},
		{"unknown version", `{"node":"search-conversation","version":"1.2","authorizationId":"a",` + input + `}`, 404, `has no version "1.2"; it has 1.0, 1.1, 1.3`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, raw := h.post(t, "/v1/executions", execKey, []byte(tc.body), nil)
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("status %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
			}
			p := problemOf(t, raw)
			if !strings.Contains(p["detail"].(string), tc.detail) || p["requestId"] == "" {
				t.Fatalf("problem %s, want detail with %q", raw, tc.detail)
			}
			if tc.absent != "" && strings.Contains(string(raw), tc.absent) {
				t.Fatalf("the problem repeats the body (%d bytes): %.300s", len(raw), raw)
			}
			if tc.name == "unknown version" && !reflectEqual(p["versions"], []any{"1.0", "1.1", "1.3"}) {
				t.Fatalf("the 404 does not list the versions: %s", raw)
			}
			if tc.name == "unknown node" && len(asList(p["nodes"])) != 8 {
				t.Fatalf("the 404 does not list the nodes: %s", raw)
			}
		})
	}
	t.Run("no API key", func(t *testing.T) {
		resp, _ := h.post(t, "/v1/executions", "", []byte(`{}`), nil)
		if resp.StatusCode != 401 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/v1/executions", strings.NewReader("node=x"))
		req.Header.Set("Authorization", "Bearer "+execKey)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 415 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("a compressed body", func(t *testing.T) {
		// Gzip, or a plain body labelled gzip: neither is read as it is labelled, so both
		// are refused as the content coding, not as "not valid UTF-8" or run as plain.
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		_, _ = zw.Write([]byte(`{"node":"close-conversation","version":"1.0","authorizationId":"a","input":{"conversationId":"c"}}`))
		_ = zw.Close()
		for name, body := range map[string][]byte{"gzip": gz.Bytes(), "plain labelled gzip": []byte(`{"node":"close-conversation","version":"1.0","authorizationId":"a","input":{"conversationId":"c"}}`)} {
			resp, raw := h.post(t, "/v1/executions", execKey, body, http.Header{"Content-Encoding": {"gzip"}})
			if p := problemOf(t, raw); resp.StatusCode != 415 || p["code"] != "unsupported_media_type" || !strings.Contains(p["detail"].(string), `Content-Encoding "gzip"`) {
				t.Fatalf("%s: status %d: %s", name, resp.StatusCode, raw)
			}
		}
		resp, raw := h.post(t, "/v1/executions", execKey, []byte(`{"node":"close-conversation","version":"1.0","authorizationId":"a","input":{"conversationId":"c"}}`), http.Header{"Content-Encoding": {"identity"}})
		if resp.StatusCode != 200 {
			t.Fatalf("identity: status %d: %s", resp.StatusCode, raw)
		}
	})
	t.Run("body over 1 MiB", func(t *testing.T) {
		big := `{"node":"search-conversation","version":"1.3","authorizationId":"a","input":{"channel":"` + strings.Repeat("x", 1<<20) + `"}}`
		resp, _ := h.post(t, "/v1/executions", execKey, []byte(big), nil)
		if resp.StatusCode != 413 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	if n := h.sim.Counts().Calls; len(n) != 0 {
		for op, c := range n {
			if c != 0 {
				t.Errorf("a refused request reached Engage: %d %s", c, op)
			}
		}
	}
}

func reflectEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func TestBothVersionSpellingsRunTheSameVersion(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	_, raw := h.get(t, "/v1/nodes")
	vi := readCatalog(t, raw)[2] // search-conversation 1.3
	h.sim.SeedConversation(simDomain, searchable("sms", "queued"))
	for _, spelled := range []string{"1.3", "v1.3"} {
		a := h.run(t, execution{vi: vi, version: spelled, input: vi.input(combo{channel: "sms"}, "")})
		if a.Outcome != "conversationInQueue" || len(a.Output) != 10 {
			t.Fatalf("%s: %s %v", spelled, a.Outcome, a.Output)
		}
	}
}

func TestTheDeadlineIsTimeoutMsCappedByTheMaximumOrTheDefault(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{defaultTimeout: 150 * time.Millisecond, maxTimeout: 300 * time.Millisecond})
	h.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Latency: time.Minute})
	body := func(timeout string) []byte {
		return []byte(`{"node":"search-conversation","version":"1.3","authorizationId":"` + authOK + `",` +
			`"input":{"channel":"sms","bizAddress":"b","customerAddress":"c"}` + timeout + `}`)
	}
	for name, tc := range map[string]struct {
		body     []byte
		min, max time.Duration
	}{
		"the default":       {body(""), 150 * time.Millisecond, 1500 * time.Millisecond},
		"capped at the max": {body(`,"timeoutMs":600000`), 300 * time.Millisecond, 1650 * time.Millisecond},
		"timeoutMs itself":  {body(`,"timeoutMs":50`), 50 * time.Millisecond, 1400 * time.Millisecond},
	} {
		start := time.Now()
		resp, raw := h.post(t, "/v1/executions", execKey, tc.body, nil)
		took := time.Since(start)
		if resp.StatusCode != 200 || !strings.Contains(string(raw), `"outcome":"onTimeout"`) {
			t.Fatalf("%s: %d %s", name, resp.StatusCode, raw)
		}
		if took < tc.min || took > tc.max {
			t.Fatalf("%s: answered after %s, want between %s and %s", name, took, tc.min, tc.max)
		}
	}
}

func TestAnExecutionIsOneLogLineAndCountedByNodeVersionAndOutcome(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	_, raw := h.get(t, "/v1/nodes")
	vi := readCatalog(t, raw)[2] // search-conversation 1.3
	h.sim.SeedConversation(simDomain, searchable("sms", "active"))
	a := h.run(t, execution{vi: vi, input: vi.input(combo{channel: "sms"}, "")})
	h.run(t, execution{vi: vi, input: map[string]any{"channel": "fax"}})

	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(h.logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["executionId"] == a.ExecutionID {
			line = m
		}
	}
	if line == nil {
		t.Fatalf("no log line with executionId %s:\n%s", a.ExecutionID, h.logs)
	}
	for k, want := range map[string]any{
		"node": "search-conversation", "version": "1.3", "outcome": "conversationActive", "tenant": "acme",
		"authorizationId": authOK, "flowId": "flow-1", "transactionId": "tx-9", "route": "/v1/executions",
	} {
		if line[k] != want {
			t.Errorf("log %s = %v, want %v", k, line[k], want)
		}
	}
	if _, ok := line["executionMs"].(float64); !ok {
		t.Errorf("log line without executionMs: %v", line)
	}
	token := h.creds.token(t)
	if strings.Contains(h.logs.String(), token) {
		t.Fatal("the access token is in the log")
	}
	for _, tc := range []struct {
		outcome string
		want    float64
	}{{"conversationActive", 1}, {"onInvalidData", 1}, {"onTimeout", 0}} {
		got := counter(t, h.metrics, "noderuntime_executions_total", map[string]string{"node": "search-conversation", "version": "1.3", "outcome": tc.outcome})
		if got != tc.want {
			t.Errorf("executions_total{outcome=%s} = %v, want %v", tc.outcome, got, tc.want)
		}
	}
	if got := counter(t, h.metrics, "noderuntime_execution_duration_seconds", map[string]string{"node": "search-conversation", "version": "1.3"}); got != 2 {
		t.Errorf("execution_duration_seconds count %v, want 2", got)
	}
	// Every declared outcome of every version is a series from the start.
	if got := counter(t, h.metrics, "noderuntime_executions_total", map[string]string{"node": "reopen-conversation", "version": "1.0", "outcome": "ConversationReopenFailed"}); got != 0 {
		t.Errorf("an untouched series is %v", got)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(a.ExecutionID) {
		t.Errorf("executionId %q is not a UUID", a.ExecutionID)
	}
}

func TestTheCatalogIsServedFromTheRegistry(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	resp, raw := h.get(t, "/v1/nodes")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || !bytes.Equal(raw, registry.CatalogJSON()) {
		t.Fatalf("GET /v1/nodes: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Kept by caches only to be revalidated (If-None-Match): it changes with the binary.
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Fatalf("GET /v1/nodes: Cache-Control %q", cc)
	}
	// Percent-encoded unreserved characters name the same resource (RFC 3986 §6.2.2.2).
	for _, spelled := range []string{"append-message/versions/1.4", "append-message/versions/v1.4", "append-message/versions/1%2E4", "append%2Dmessage/versions/v1%2e4"} {
		resp, raw := h.get(t, "/v1/nodes/"+spelled)
		var v nodes.CatalogVersionDetail
		if err := json.Unmarshal(raw, &v); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", spelled, resp.StatusCode, raw)
		}
		if v.Node != "append-message" || v.DisplayName != "Append Message" || v.Version != "1.4" || !v.Recommended || v.InputSchema["$schema"] == nil {
			t.Fatalf("%s: %+v", spelled, v)
		}
	}
	resp, raw = h.get(t, "/v1/nodes/append-message/versions/1.1")
	if p := problemOf(t, raw); resp.StatusCode != 404 || !reflectEqual(p["versions"], []string{"1.0", "1.3", "1.4"}) {
		t.Fatalf("unknown version: %d %s", resp.StatusCode, raw)
	}
	resp, _ = h.get(t, "/v1/nodes/send-fax/versions/1.0")
	if resp.StatusCode != 404 {
		t.Fatalf("unknown node: %d", resp.StatusCode)
	}
	// A client revalidates with the ETag.
	first, _ := h.get(t, "/v1/nodes")
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/v1/nodes", nil)
	req.Header.Set("Authorization", "Bearer "+execKey)
	req.Header.Set("If-None-Match", first.Header.Get("ETag"))
	again, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	again.Body.Close()
	if first.Header.Get("ETag") == "" || again.StatusCode != http.StatusNotModified {
		t.Fatalf("ETag %q, revalidation %d", first.Header.Get("ETag"), again.StatusCode)
	}
	// If-None-Match is a list, compared weakly, or * (RFC 9110 §13.1.2), as caches and
	// proxies send it.
	tag := first.Header.Get("ETag")
	for header, want := range map[string]int{
		`"other", ` + tag:      http.StatusNotModified,
		"W/" + tag:             http.StatusNotModified,
		`"a",W/"b",  ` + tag:   http.StatusNotModified,
		"*":                    http.StatusNotModified,
		`"other"`:              http.StatusOK,
		`W/"other", "another"`: http.StatusOK,
		strings.Trim(tag, `"`): http.StatusOK, // no quotes: no entity tag
	} {
		req.Header.Set("If-None-Match", header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want || resp.Header.Get("ETag") != tag {
			t.Errorf("If-None-Match %s: %d ETag %q, want %d", header, resp.StatusCode, resp.Header.Get("ETag"), want)
		}
	}
	// Every node and version of the catalog is there, and nothing else.
	var ids []string
	for _, n := range registry.Catalog().Nodes {
		ids = append(ids, n.ID)
	}
	if !slices.Equal(ids, registry.NodeIDs()) {
		t.Fatalf("catalog nodes %v", ids)
	}
}

// The context's identifiers are the caller's, of any length the body allows: the log
// keeps the first 256 bytes of each, and the execution runs as usual.
func TestALongContextFieldIsClippedInTheLog(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	_, raw := h.get(t, "/v1/nodes")
	vi := readCatalog(t, raw)[2] // search-conversation 1.3
	h.sim.SeedConversation(simDomain, searchable("sms", "active"))
	flowID := strings.Repeat("é", 50_000) // two bytes each: a cut must not split one
	a := h.run(t, execution{vi: vi, input: vi.input(combo{channel: "sms"}, ""), flowID: flowID})
	if a.Outcome != "conversationActive" {
		t.Fatalf("outcome %s", a.Outcome)
	}
	for _, l := range strings.Split(strings.TrimSpace(h.logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil || m["executionId"] != a.ExecutionID {
			continue
		}
		got, _ := m["flowId"].(string)
		if want := strings.Repeat("é", 128) + "..."; got != want {
			t.Fatalf("logged flowId of %d bytes (%.20q...), want the first 256 bytes and a mark", len(got), got)
		}
		if len(l) > 4096 {
			t.Fatalf("the log line is %d bytes", len(l))
		}
		return
	}
	t.Fatalf("no log line with executionId %s", a.ExecutionID)
}

// The envelope's checks, each at its edge: what is just inside is routed (200 with an
// outcome), what is just past it is a 400 or 404 that names the problem without
// repeating the body.
func TestTheEnvelopesChecksHoldAtTheirEdges(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	const input = `"input":{"channel":"sms","bizAddress":"b","customerAddress":"c"}`
	envelope := func(node, version, auth, rest string) string {
		return `{"node":"` + node + `","version":"` + version + `","authorizationId":"` + auth + `",` + rest + `}`
	}
	for _, tc := range []struct {
		name, body string
		status     int
		detail     string
		absent     string
	}{
		{"an authorization ID of spaces", envelope("search-conversation", "1.3", "   ", input), 400, "authorizationId is required", ""},
		{"an authorization ID of 256 bytes", envelope("search-conversation", "1.3", strings.Repeat("a", 256), input), 200, "", ""},
		{"an authorization ID of 257 bytes", envelope("search-conversation", "1.3", strings.Repeat("a", 257), input), 400, "authorizationId is over 256 characters", ""},
		// The limit counts characters, as the OpenAPI's maxLength does, not bytes.
		{"an authorization ID of 256 characters in 512 bytes", envelope("search-conversation", "1.3", strings.Repeat("é", 256), input), 200, "", ""},
		{"an authorization ID of 257 characters", envelope("search-conversation", "1.3", strings.Repeat("é", 257), input), 400, "authorizationId is over 256 characters", ""},
		{"a long unknown node", envelope(strings.Repeat("n", 1000), "1.0", "a", input), 404, `there is no node "nnnn`, strings.Repeat("n", 65)},
		{"a long unknown version", envelope("search-conversation", strings.Repeat("9", 1000), "a", input), 404, `has no version "9999`, strings.Repeat("9", 65)},
		{"invalid UTF-8 in the input", envelope("search-conversation", "1.3", "a", `"input":{"channel":"sms`+"\xff"+`","bizAddress":"b","customerAddress":"c"}`), 400, "not valid UTF-8 at byte 92", ""},
		// A truncated character (é's first byte, then a quote) is refused where it begins.
		{"a truncated character in the input", envelope("search-conversation", "1.3", "a", `"input":{"channel":"sms`+"\xc3"+`","bizAddress":"b","customerAddress":"c"}`), 400, "not valid UTF-8 at byte 92", ""},
		{"a key twice in the input", envelope("search-conversation", "1.3", "a", `"input":{"channel":"sms","channel":"whatsapp","bizAddress":"b","customerAddress":"c"}`), 400, `the key "channel" is given twice`, ""},
		{"a key twice in the context", envelope("search-conversation", "1.3", "a", input+`,"context":{"flowId":"f","flowId":"g"}`), 400, `the key "flowId" is given twice`, ""},
		// A key inside the context is named with it, as a field of the wrong type is: the
		// caller looks for it where it is, not at the top of the body.
		{"an unknown context field", envelope("search-conversation", "1.3", "a", input+`,"context":{"flowId":"f","stepId":"s"}`), 400, `unknown field "context.stepId"`, ""},
		{"a context field named in another case", envelope("search-conversation", "1.3", "a", input+`,"context":{"FlowID":"f"}`), 400, `unknown field "context.FlowID" (field names are case-sensitive)`, ""},
		{"data after the envelope", envelope("search-conversation", "1.3", "a", input) + ` {}`, 400, "trailing data", ""},
		{"a timeout of 1 ms", envelope("search-conversation", "1.3", "a", input+`,"timeoutMs":1`), 200, "", ""},
		{"a negative timeout", envelope("search-conversation", "1.3", "a", input+`,"timeoutMs":-1`), 400, "timeoutMs must be a positive", ""},
		{"a timeout given as a literal of another type", envelope("search-conversation", "1.3", "a", input+`,"timeoutMs":true`), 400, `field "timeoutMs": want an integer (no fraction or exponent) up to 9223372036854775807, got JSON bool`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, raw := h.post(t, "/v1/executions", execKey, []byte(tc.body), nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, tc.status, raw)
			}
			if tc.status == http.StatusOK {
				return
			}
			if p := problemOf(t, raw); !strings.Contains(p["detail"].(string), tc.detail) {
				t.Fatalf("problem %.300s, want detail with %q", raw, tc.detail)
			}
			if tc.absent != "" && strings.Contains(string(raw), tc.absent) {
				t.Fatalf("the problem repeats the body: %.300s", raw)
			}
		})
	}
}

// Without timeoutMs the default deadline applies, not the cap: with a cap far from the
// default the two cannot be mistaken however loaded the machine is.
func TestWithoutTimeoutMsTheDefaultDeadlineApplies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{defaultTimeout: 100 * time.Millisecond, maxTimeout: 20 * time.Second})
	h.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Latency: time.Minute})
	body := `{"node":"search-conversation","version":"1.3","authorizationId":"` + authOK + `","input":{"channel":"sms","bizAddress":"b","customerAddress":"c"}}`
	start := time.Now()
	resp, raw := h.post(t, "/v1/executions", execKey, []byte(body), nil)
	if took := time.Since(start); resp.StatusCode != 200 || !strings.Contains(string(raw), `"outcome":"onTimeout"`) || took > 10*time.Second {
		t.Fatalf("%d after %s: %s", resp.StatusCode, took, raw)
	}
}

// A cap below the default is raised to the default: timeoutMs up to the default is
// then honoured, not cut to the lower cap. (The deadline cannot fire early, so the
// lower bound holds on any machine.)
func TestACapBelowTheDefaultIsRaisedToTheDefault(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{defaultTimeout: 5 * time.Second, maxTimeout: time.Millisecond})
	h.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Latency: time.Minute})
	body := `{"node":"search-conversation","version":"1.3","authorizationId":"` + authOK + `","input":{"channel":"sms","bizAddress":"b","customerAddress":"c"},"timeoutMs":500}`
	start := time.Now()
	resp, raw := h.post(t, "/v1/executions", execKey, []byte(body), nil)
	if took := time.Since(start); resp.StatusCode != 200 || !strings.Contains(string(raw), `"outcome":"onTimeout"`) || took < 500*time.Millisecond {
		t.Fatalf("%d after %s, want onTimeout after 500ms: %s", resp.StatusCode, took, raw)
	}
}

// The log keeps a context field of 256 bytes whole and cuts one of 257, never inside a
// character; an answer is
// JSON that no cache keeps.
func TestAContextFieldIsCutPast256BytesAndTheAnswerIsNotStored(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	_, raw := h.get(t, "/v1/nodes")
	vi := readCatalog(t, raw)[2] // search-conversation 1.3
	for flowID, want := range map[string]string{
		strings.Repeat("f", 256):       strings.Repeat("f", 256),
		strings.Repeat("f", 257):       strings.Repeat("f", 256) + "...",
		"f" + strings.Repeat("é", 200): "f" + strings.Repeat("é", 127) + "...", // byte 256 is inside an é
	} {
		a := h.run(t, execution{vi: vi, input: vi.input(combo{channel: "sms"}, ""), flowID: flowID})
		var logged any
		for _, l := range strings.Split(strings.TrimSpace(h.logs.String()), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["executionId"] == a.ExecutionID {
				logged = m["flowId"]
			}
		}
		if logged != want {
			t.Errorf("a flowId of %d bytes logged as %v", len(flowID), logged)
		}
	}
	body := `{"node":"search-conversation","version":"1.3","authorizationId":"` + authOK + `","input":{"channel":"sms","bizAddress":"b","customerAddress":"c"}}`
	resp, _ := h.post(t, "/v1/executions", execKey, []byte(body), nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("%d %s, Cache-Control %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
	}
}

// A failure outcome's log line names its error code, so the log says why without the
// answer.
func TestAFailuresLogLineNamesItsErrorCode(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	_, raw := h.get(t, "/v1/nodes")
	vi := readCatalog(t, raw)[2] // search-conversation 1.3
	a := h.run(t, execution{vi: vi, input: map[string]any{"channel": "fax"}})
	if a.Error == nil {
		t.Fatalf("outcome %s without an error", a.Outcome)
	}
	for _, l := range strings.Split(strings.TrimSpace(h.logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["executionId"] == a.ExecutionID {
			if m["errorCode"] != a.Error.Code {
				t.Fatalf("errorCode %v, want %s: %s", m["errorCode"], a.Error.Code, l)
			}
			return
		}
	}
	t.Fatalf("no log line with executionId %s", a.ExecutionID)
}

// An envelope that decoded but is refused (a 400 of its fields, a 404 of its node or
// version) is logged with what it asked for and its context, clipped as an execution's:
// the operator who sees the 404s finds the flow that sends them. A body that does not
// decode has no context to log.
func TestARefusedEnvelopesLogLineNamesWhatItAskedForAndTheFlow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	const input = `"input":{"channel":"sms","bizAddress":"b","customerAddress":"c"}`
	long := strings.Repeat("t", 300)
	for _, tc := range []struct {
		name, body, node, version string
		status                    int
	}{
		{"an unknown version", `{"node":"search-conversation","version":"1.2","authorizationId":"a",` + input + `,"context":{"flowId":"flow-404","nodeId":"n6","transactionId":"` + long + `"}}`, "search-conversation", "1.2", 404},
		{"an unknown node", `{"node":"send-fax","version":"1.0","authorizationId":"a",` + input + `,"context":{"flowId":"flow-404","nodeId":"n6","transactionId":"` + long + `"}}`, "send-fax", "1.0", 404},
		{"a timeout of zero", `{"node":"search-conversation","version":"1.3","authorizationId":"a",` + input + `,"timeoutMs":0,"context":{"flowId":"flow-404","nodeId":"n6","transactionId":"` + long + `"}}`, "search-conversation", "1.3", 400},
		{"a long unknown node", `{"node":"` + strings.Repeat("n", 1000) + `","version":"1.0","authorizationId":"a",` + input + `,"context":{"flowId":"flow-404","nodeId":"n6","transactionId":"` + long + `"}}`, strings.Repeat("n", 64) + "...", "1.0", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, raw := h.post(t, "/v1/executions", execKey, []byte(tc.body), nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d: %s", resp.StatusCode, raw)
			}
			line := logLineOf(t, h, resp.Header.Get("X-Request-Id"))
			want := map[string]any{"node": tc.node, "version": tc.version, "flowId": "flow-404", "flowNodeId": "n6", "transactionId": strings.Repeat("t", 256) + "..."}
			for k, v := range want {
				if line[k] != v {
					t.Errorf("log line %s = %.80v, want %.80v", k, line[k], v)
				}
			}
		})
	}
}

// logLineOf is the access-log line of the request with that ID.
func logLineOf(t *testing.T, h *harness, requestID string) map[string]any {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSpace(h.logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["requestId"] == requestID && m["msg"] == "request" {
			return m
		}
	}
	t.Fatalf("no access-log line for request %s", requestID)
	return nil
}
