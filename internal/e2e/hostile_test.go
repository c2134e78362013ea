package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// hostileBody is one request body of the corpus; contentType "" is application/json.
type hostileBody struct {
	name        string
	body        []byte
	contentType string
	chunked     bool // sent without a Content-Length
}

// hostileBodies are built around auth, a real authorization: anything that got past the
// runtime's checks would reach Engage.
func hostileBodies(auth string) []hostileBody {
	envelope := func(node, version, input string) []byte {
		return fmt.Appendf(nil, `{"node":%q,"version":%q,"authorizationId":%q,"input":%s}`, node, version, auth, input)
	}
	appendInput := func(text string) string {
		return `{"conversationId":"c1","channel":"sms","direction":"outbound","messageType":"text","timestamp":"2026-03-01T12:00:00Z","text":` + text + `}`
	}
	deep := func(open, close string, n int) string {
		return strings.Repeat(open, n) + "1" + strings.Repeat(close, n)
	}
	tenMB := strings.Repeat("x", 10<<20)
	var manyKeys strings.Builder
	manyKeys.WriteString(`{"channel":"sms"`)
	for i := range 40000 {
		fmt.Fprintf(&manyKeys, `,"k%d":1`, i)
	}
	manyKeys.WriteString("}")
	return []hostileBody{
		// Deep nesting: 100,000 levels.
		{name: "100k nested arrays as the body", body: []byte(deep("[", "]", 100000))},
		{name: "100k nested objects as the body", body: []byte(deep(`{"a":`, "}", 100000))},
		{name: "100k nested arrays in the input", body: envelope("append-message", "1.4", appendInput(deep("[", "]", 100000)))},
		{name: "100k nested objects in the context", body: []byte(`{"node":"search-conversation","version":"1.3","authorizationId":"` + auth + `","input":{},"context":` + deep(`{"a":`, "}", 100000) + `}`)},
		// Huge numbers.
		{name: "timeoutMs 1e400", body: []byte(`{"node":"search-conversation","version":"1.3","authorizationId":"` + auth + `","input":{"channel":"sms"},"timeoutMs":1e400}`)},
		{name: "timeoutMs past int64", body: []byte(`{"node":"search-conversation","version":"1.3","authorizationId":"` + auth + `","input":{"channel":"sms"},"timeoutMs":123456789012345678901234567890}`)},
		{name: "timeoutMs negative", body: []byte(`{"node":"search-conversation","version":"1.3","authorizationId":"` + auth + `","input":{"channel":"sms"},"timeoutMs":-1}`)},
		{name: "version as a huge number", body: []byte(`{"node":"search-conversation","version":1e999999,"authorizationId":"` + auth + `","input":{}}`)},
		{name: "channel as a huge number", body: envelope("search-conversation", "1.3", `{"channel":1e999999,"bizAddress":"1","customerAddress":"2"}`)},
		{name: "timestamp as a huge number", body: envelope("append-message", "1.4", `{"conversationId":"c1","channel":"sms","direction":"outbound","messageType":"text","timestamp":1e308,"text":"hi"}`)},
		// Invalid UTF-8.
		{name: "invalid UTF-8 in the node", body: envelope("search-\xff\xfe", "1.3", `{}`)},
		{name: "invalid UTF-8 in the text", body: envelope("append-message", "1.4", appendInput("\"caf\xe9 \xc3\x28 \xed\xa0\x80\""))},
		{name: "invalid UTF-8 in a key", body: envelope("search-conversation", "1.3", "{\"chan\xffnel\":\"sms\"}")},
		// A lone surrogate escape is valid UTF-8 but no character: decoded, it would be
		// U+FFFD in the text Engage receives.
		{name: "a lone surrogate escape in the text", body: envelope("append-message", "1.4", appendInput(`"caf\ud800"`))},
		{name: "a lone low surrogate escape in the node", body: []byte(`{"node":"search-\udc00","version":"1.3","authorizationId":"` + auth + `","input":{}}`)},
		// Huge strings.
		{name: "10 MB text", body: envelope("append-message", "1.4", appendInput(`"`+tenMB+`"`))},
		{name: "10 MB text, chunked", body: envelope("append-message", "1.4", appendInput(`"`+tenMB+`"`)), chunked: true},
		{name: "10 MB node name", body: envelope(tenMB, "1.3", `{}`)},
		{name: "text just under the body limit", body: envelope("append-message", "1.4", appendInput(`"`+strings.Repeat("é", 400000)+`"`))},
		{name: "40,000 unknown input fields", body: envelope("search-conversation", "1.3", manyKeys.String())},
		// Duplicate keys: which one counts would depend on the parser.
		{name: "duplicate node", body: []byte(`{"node":"search-conversation","node":"append-message","version":"1.3","authorizationId":"` + auth + `","input":{"channel":"sms","bizAddress":"1","customerAddress":"2"}}`)},
		{name: "duplicate authorizationId", body: []byte(`{"node":"search-conversation","version":"1.3","authorizationId":"` + auth + `","authorizationId":"other","input":{"channel":"sms","bizAddress":"1","customerAddress":"2"}}`)},
		{name: "duplicate input field", body: envelope("search-conversation", "1.3", `{"channel":"sms","channel":"whatsapp","bizAddress":"1","customerAddress":"2"}`)},
		{name: "duplicate key, escaped", body: envelope("search-conversation", "1.3", `{"channel":"sms","\u0063hannel":"whatsapp","bizAddress":"1","customerAddress":"2"}`)},
		{name: "duplicate key in an attachment", body: envelope("append-message", "1.4", `{"conversationId":"c1","channel":"facebook","direction":"outbound","messageType":"text-with-attachments","timestamp":"2026-03-01T12:00:00Z","attachments":[{"mimeType":"image/png","fileUrl":"https://x.example/a.png","fileUrl":"https://evil.example/b"}]}`)},
		// Nulls everywhere.
		{name: "null body", body: []byte(`null`)},
		{name: "every envelope field null", body: []byte(`{"node":null,"version":null,"authorizationId":null,"input":null,"timeoutMs":null,"context":null}`)},
		{name: "every input field null", body: envelope("append-message", "1.4", `{"conversationId":null,"channel":null,"direction":null,"messageType":null,"timestamp":null,"text":null,"attachments":null}`)},
		{name: "null input", body: envelope("search-conversation", "1.3", `null`)},
		{name: "a list of nulls where a list is needed", body: envelope("append-message", "1.4", `{"conversationId":"c1","channel":"facebook","direction":"outbound","messageType":"text-with-attachments","timestamp":"2026-03-01T12:00:00Z","attachments":[null,null]}`)},
		{name: "null entries in an attachment", body: envelope("append-message", "1.4", `{"conversationId":"c1","channel":"facebook","direction":"outbound","messageType":"text-with-attachments","timestamp":"2026-03-01T12:00:00Z","attachments":[{"mimeType":null,"fileName":null,"fileUrl":null}]}`)},
		// Wrong types.
		{name: "node as an object", body: []byte(`{"node":{},"version":"1.3","authorizationId":"` + auth + `","input":{}}`)},
		{name: "input as a list", body: envelope("search-conversation", "1.3", `[]`)},
		{name: "input as a string", body: envelope("search-conversation", "1.3", `"{\"channel\":\"sms\"}"`)},
		{name: "input as a number", body: envelope("search-conversation", "1.3", `42`)},
		{name: "channel as an object", body: envelope("search-conversation", "1.3", `{"channel":{"wire":"sms"},"bizAddress":"1","customerAddress":"2"}`)},
		{name: "text as a list", body: envelope("append-message", "1.4", appendInput(`["a","b"]`))},
		{name: "timestamp as a boolean", body: envelope("append-message", "1.4", `{"conversationId":"c1","channel":"sms","direction":"outbound","messageType":"text","timestamp":true,"text":"hi"}`)},
		{name: "attachments as a string", body: envelope("append-message", "1.4", `{"conversationId":"c1","channel":"facebook","direction":"outbound","messageType":"text-with-attachments","timestamp":"2026-03-01T12:00:00Z","attachments":"x"}`)},
		{name: "a body that is a string", body: []byte(`"node"`)},
		// Not JSON at all, or not only JSON.
		{name: "empty body", body: nil},
		{name: "byte order mark", body: append([]byte("\xef\xbb\xbf"), envelope("search-conversation", "1.3", `{"channel":"sms"}`)...)},
		{name: "trailing data", body: append(envelope("search-conversation", "1.3", `{"channel":"sms"}`), []byte(`{"node":"append-message"}`)...)},
		{name: "truncated", body: envelope("search-conversation", "1.3", `{"channel":"sms"`)},
		{name: "form body", body: []byte("node=search-conversation&version=1.3"), contentType: "application/x-www-form-urlencoded"},
		{name: "JSON declared as text", body: envelope("search-conversation", "1.3", `{"channel":"sms"}`), contentType: "text/plain"},
	}
}

// TestHostileBodiesAreRefusedNeverCrashTheService sends the corpus of hostile bodies
// (100,000 levels of nesting, huge numbers, invalid UTF-8, 10 MB strings, duplicate keys,
// nulls everywhere, wrong types) to POST /v1/executions. Each is refused with a 4xx
// problem or answered onInvalidData; none answers 5xx, none reaches Engage, and the
// service still serves afterwards.
func TestHostileBodiesAreRefusedNeverCrashTheService(t *testing.T) {
	s := startService(t, serviceOptions{})
	auth := s.createClientCredentials("target", s.sims[0])
	for _, h := range hostileBodies(auth) {
		t.Run(h.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(h.body)
			if h.chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			req := must(http.NewRequest(http.MethodPost, s.url+"/v1/executions", body))
			req.Header.Set("Authorization", "Bearer "+acmeKey)
			req.Header.Set("Content-Type", cmpOr(h.contentType, "application/json"))
			resp, err := s.client.Do(req)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode >= 400 && resp.StatusCode < 500:
				if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") || problemCode(raw) == "" {
					t.Errorf("%d without a problem document: %.300s", resp.StatusCode, raw)
				}
			case resp.StatusCode == http.StatusOK:
				var a answer
				if json.Unmarshal(raw, &a) != nil || a.Outcome != "onInvalidData" || a.code() != "invalid_input" {
					t.Errorf("200 %.300s, want onInvalidData", raw)
				}
			default:
				t.Errorf("%d %.300s, want a 4xx problem or onInvalidData", resp.StatusCode, raw)
			}
		})
	}
	for _, op := range engagesim.Ops() {
		if n := s.sims[0].Calls(op); op != engagesim.OpToken && n != 0 {
			t.Errorf("%d %s calls reached Engage", n, op)
		}
	}
	if a, _ := s.execute(search(auth, 2000), nil); a.Outcome != "noConversationFound" {
		t.Fatalf("after the corpus: %s %+v", a.Outcome, a.Error)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestHostileRequestsToEveryRouteGetAClearAnswer walks the router and sends every route,
// with each of its methods and one it does not take, hostile path parameters (a 5,000
// character ID, encoded slashes and dots, NUL, bytes that are not UTF-8, another
// tenant's ID) and hostile bodies (none, null, 100,000 levels of nesting, not UTF-8,
// trailing data, not JSON, a form that cannot be parsed, over the limits), as an API
// caller, as a signed-in browser and as a stranger. No answer is a 5xx; every one has a
// request ID and X-Content-Type-Options: nosniff; the API answers JSON (a problem
// document when it refuses), the pages HTML or a redirect. Nothing changes for the
// other tenant, and the service serves afterwards.
func TestHostileRequestsToEveryRouteGetAClearAnswer(t *testing.T) {
	s := startService(t, serviceOptions{})
	sim := s.sims[0]
	auth := s.createClientCredentials("target", sim)
	globex := createAuthorization(t, s.client, s.url, globexKey, clientCredentials("globex's", sim.BaseURL()))
	admin := s.signIn(acmeKey)
	ids := []string{
		strings.Repeat("7", 5000), "..%2F..%2Fhealthz", "%2e%2e", auth + "%2Freauthorize", "%00", "%ff%fe",
		"a%20b", strings.ToUpper(globex), globex,
	}
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	bodies := []struct {
		name, ct string
		body     []byte
	}{
		{"no body", "", nil},
		{"null", "application/json", []byte("null")},
		{"deep nesting", "application/json", []byte(`{"name":` + deep + `}`)},
		{"not UTF-8", "application/json", []byte("{\"name\":\"\xff\"}")},
		{"a lone surrogate", "application/json", []byte(`{"name":"\udc00"}`)},
		{"trailing data", "application/json", []byte(`{"tenantSecret":"x"}{"tenantSecret":"y"}`)},
		{"not JSON", "text/plain", []byte("name=x")},
		{"a form that cannot be parsed", "application/x-www-form-urlencoded", []byte("csrf=%zz&name=%00&state=;")},
		{"a form over 64 KiB", "application/x-www-form-urlencoded", []byte("csrf=x&name=" + strings.Repeat("n", 70<<10))},
		{"a body over 1 MiB", "application/json", []byte(`{"name":"` + strings.Repeat("n", 1<<20) + `"}`)},
	}
	callers := []struct {
		name string
		c    *http.Client
		key  string
	}{{"API caller", s.client, acmeKey}, {"signed-in browser", admin.c, ""}, {"stranger", newClient(t), ""}}

	seen := 0
	for _, mr := range routes(t, s.app.Routes()) {
		method, route, _ := strings.Cut(mr, " ")
		paths := []string{route}
		if strings.Contains(route, "{") {
			paths = nil
			for _, id := range ids {
				paths = append(paths, routeParam.ReplaceAllLiteralString(route, id))
			}
		}
		for _, path := range paths {
			for _, m := range []string{method, http.MethodPatch, "FOO"} { // FOO: a method no route knows
				for _, b := range bodies {
					for _, who := range callers {
						req := must(http.NewRequest(m, s.url+path, bytes.NewReader(b.body)))
						if b.ct != "" {
							req.Header.Set("Content-Type", b.ct)
						}
						if who.key != "" {
							req.Header.Set("Authorization", "Bearer "+who.key)
						}
						resp, err := who.c.Do(req)
						if err != nil {
							t.Fatalf("%s %.80s, %s, as %s: no answer: %v", m, path, b.name, who.name, err)
						}
						raw, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						seen++
						ct := resp.Header.Get("Content-Type")
						page := strings.HasPrefix(path, "/admin") || strings.HasPrefix(path, "/oauth")
						var wrong string
						switch {
						case resp.StatusCode >= 500:
							wrong = "a 5xx"
						case resp.Header.Get("X-Request-Id") == "":
							wrong = "no X-Request-Id"
						case resp.Header.Get("X-Content-Type-Options") != "nosniff":
							wrong = "no X-Content-Type-Options: nosniff"
						case resp.StatusCode == http.StatusSeeOther || resp.StatusCode == http.StatusNotModified || resp.StatusCode == http.StatusNoContent:
						case page && !strings.HasPrefix(ct, "text/html"):
							wrong = "a page that is not HTML"
						case !page && resp.StatusCode >= 400 && (ct != "application/problem+json" || problemCode(raw) == ""):
							wrong = "a refusal that is not a problem document"
						case !page && resp.StatusCode < 400 && path != "/metrics" && !strings.HasPrefix(ct, "application/json"):
							wrong = "an answer that is not JSON"
						}
						if wrong != "" {
							t.Errorf("%s %.80s, %s, as %s: %s: %d %s %.300s", m, path, b.name, who.name, wrong, resp.StatusCode, ct, raw)
						}
					}
				}
			}
		}
	}
	t.Logf("%d hostile requests", seen)
	// Globex's authorization, whose ID every route was sent, is as it was.
	if resp, raw := s.do(http.MethodGet, "/v1/authorizations/"+globex, globexKey, nil, nil); resp.StatusCode != 200 || !strings.Contains(string(raw), `"status":"active"`) {
		t.Errorf("globex's authorization after the hostile requests: %d %s", resp.StatusCode, raw)
	}
	if a, _ := s.execute(search(globex, 2000), nil); a.Outcome != "onAuthorizationFailure" {
		t.Errorf("acme runs globex's authorization: %s", a.Outcome)
	}
	if s.status("/healthz") != 200 || s.status("/readyz") != 200 {
		t.Fatal("the service no longer serves")
	}
}
