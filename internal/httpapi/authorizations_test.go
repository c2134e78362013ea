package httpapi_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/engagesim"
)

func TestTheWebexLoginWorksEndToEndOverHTTP(t *testing.T) {
	s := newAuthServer(t)
	resp, created := s.api("POST", "/v1/authorizations", azAcmeKey, map[string]string{
		"name": "Support desk", "kind": "webex-login", "baseUrl": s.sim.BaseURL(), "domain": "acme",
	})
	if resp.StatusCode != http.StatusCreated || created["status"] != "pending" || created["authorizeUrl"] == nil {
		t.Fatalf("create: %d %v", resp.StatusCode, created)
	}
	id := created["id"].(string)
	if resp.Header.Get("Location") != "/v1/authorizations/"+id {
		t.Fatalf("Location %q", resp.Header.Get("Location"))
	}
	// The ID with a character percent-encoded is the same resource (RFC 3986 §6.2.2.2).
	if resp, got := s.api("GET", "/v1/authorizations/"+fmt.Sprintf("%%%02X", id[0])+id[1:], azAcmeKey, nil); resp.StatusCode != 200 || got["id"] != id {
		t.Fatalf("GET with the ID's first character percent-encoded: %d %v", resp.StatusCode, got)
	}
	back, err := engagesim.SignIn(t.Context(), created["authorizeUrl"].(string), "alice", azAlicePassword)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(back.String(), s.srv.URL+"/oauth/callback?") {
		t.Fatalf("the provider sent the user to %s", back.Redacted())
	}
	browser := s.client(false)
	page, body := s.finishLogin(browser, back.String(), "connect",
		"add the authorization Support desk of the noderuntime tenant acme, for the Engage domain acme")
	if page.StatusCode != 200 || !strings.Contains(body, "Authorization Support desk added") {
		t.Fatalf("confirmation page: %d\n%s", page.StatusCode, body)
	}
	if page.Header.Get("Referrer-Policy") != "no-referrer" || !strings.Contains(page.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("headers %v", page.Header)
	}
	if st := s.status(id); st != "active" {
		t.Fatalf("status %s", st)
	}
	// The token works for the execution path.
	c, err := s.store.Token(t.Context(), "acme", id)
	if err != nil || c.BaseURL != s.sim.BaseURL() || c.Domain != "acme" {
		t.Fatalf("token: %+v %v", c, err)
	}

	// Replaying the callback shows an error page and changes nothing.
	page, body = s.get(browser, back.String())
	if page.StatusCode != http.StatusBadRequest || !strings.Contains(body, "unknown or was already used") || !strings.Contains(body, "Nothing was changed") ||
		!strings.Contains(body, "that login is stored") {
		t.Fatalf("replay: %d\n%s", page.StatusCode, body)
	}
	if s.sim.Grants(engagesim.GrantAuthorizationCode) != 1 || s.status(id) != "active" {
		t.Fatal("the replay exchanged the code again or changed the status")
	}

	// Re-authorize answers a new login URL.
	resp, re := s.api("POST", "/v1/authorizations/"+id+"/reauthorize", azAcmeKey, nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(re["authorizeUrl"].(string), s.sim.AuthorizeURL()) {
		t.Fatalf("reauthorize: %d %v", resp.StatusCode, re)
	}
	back, err = engagesim.SignIn(t.Context(), re["authorizeUrl"].(string), "alice", azAlicePassword)
	if err != nil {
		t.Fatal(err)
	}
	if page, body = s.finishLogin(browser, back.String(), "connect", "re-authorize the authorization Support desk"); page.StatusCode != 200 || !strings.Contains(body, "Authorization Support desk re-authorized") {
		t.Fatalf("re-authorization page: %d\n%s", page.StatusCode, body)
	}
}

func TestCallbackErrorsShowAClearPageAndChangeNothing(t *testing.T) {
	s := newAuthServer(t)
	browser := s.client(false)
	start := func(name string) (string, string) {
		resp, created := s.api("POST", "/v1/authorizations", azAcmeKey, map[string]string{"name": name, "kind": "webex-login", "baseUrl": s.sim.BaseURL(), "domain": "acme"})
		if resp.StatusCode != 201 {
			t.Fatalf("create %d %v", resp.StatusCode, created)
		}
		return created["id"].(string), created["authorizeUrl"].(string)
	}
	cases := []struct {
		name, want string
		status     int
		callback   func(authorizeURL string) string
		answer     string // connect or cancel on the confirmation page; "": none is shown
	}{
		{"the provider reports an error", "The login was refused", 400, func(au string) string {
			u, _ := url.Parse(au)
			return s.srv.URL + "/oauth/callback?" + url.Values{"state": {u.Query().Get("state")}, "error": {"access_denied"}, "error_description": {"the user canceled"}}.Encode()
		}, ""},
		{"an unknown state", "unknown or was already used", 400, func(au string) string {
			return s.srv.URL + "/oauth/callback?state=forged&code=simcode_x"
		}, ""},
		{"no parameters at all", "unknown or was already used", 400, func(string) string { return s.srv.URL + "/oauth/callback" }, ""},
		{"an expired state", "This login expired", 400, func(au string) string {
			back, err := engagesim.SignIn(t.Context(), au, "alice", azAlicePassword)
			if err != nil {
				t.Fatal(err)
			}
			s.sql("update oauth_states set expires_at = now() - interval '1 second'")
			return back.String()
		}, ""},
		{"a code the provider does not exchange", "The login could not be completed", 502, func(au string) string {
			back, err := engagesim.SignIn(t.Context(), au, "alice", azAlicePassword)
			if err != nil {
				t.Fatal(err)
			}
			q := back.Query()
			q.Set("code", "simcode_forged")
			back.RawQuery = q.Encode()
			return back.String()
		}, "connect"},
		{"canceled on the confirmation page", "Login canceled", 200, func(au string) string {
			back, err := engagesim.SignIn(t.Context(), au, "alice", azAlicePassword)
			if err != nil {
				t.Fatal(err)
			}
			return back.String()
		}, "cancel"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, au := start("pending " + string(rune('a'+i)))
			back := c.callback(au)
			var (
				resp *http.Response
				body string
			)
			if c.answer != "" {
				resp, body = s.finishLogin(browser, back, c.answer)
				// Either way the state is spent: the link cannot be used again.
				if again, page := s.get(browser, back); again.StatusCode != 400 || !strings.Contains(page, "unknown or was already used") {
					t.Fatalf("the callback again after %s: %d\n%s", c.answer, again.StatusCode, page)
				}
			} else {
				resp, body = s.get(browser, back)
			}
			if resp.StatusCode != c.status || !strings.Contains(body, c.want) || !strings.Contains(body, "Nothing was changed") {
				t.Fatalf("%d, want %d with %q:\n%s", resp.StatusCode, c.status, c.want, body)
			}
			if st := s.status(id); st != "pending" {
				t.Fatalf("status %s", st)
			}
		})
	}
}

// A login link is a tenant's to hand out (docs/authorizations.md), and the provider's
// refusal comes back as query parameters anyone can write: a tenant that adds error and
// error_description to its own login's callback must not put its own words on the
// service's page, as the list page's signed notices already ensure for its links.
func TestTheCallbackPageDoesNotShowTextWrittenIntoTheLink(t *testing.T) {
	s := newAuthServer(t)
	resp, created := s.api("POST", "/v1/authorizations", azAcmeKey, map[string]string{"name": "desk", "kind": "webex-login", "baseUrl": s.sim.BaseURL(), "domain": "acme"})
	if resp.StatusCode != 201 {
		t.Fatalf("create %d %v", resp.StatusCode, created)
	}
	u, err := url.Parse(created["authorizeUrl"].(string))
	if err != nil {
		t.Fatal(err)
	}
	const planted = "Your Webex account is locked: call 555 0100 to unlock it"
	link := s.srv.URL + "/oauth/callback?" + url.Values{"state": {u.Query().Get("state")}, "error": {"access_denied"}, "error_description": {planted}}.Encode()
	page, body := s.get(s.client(false), link)
	if page.StatusCode != http.StatusBadRequest || !strings.Contains(body, "The login was refused") || !strings.Contains(body, "access_denied") {
		t.Fatalf("%d, want 400 naming the provider's error:\n%s", page.StatusCode, body)
	}
	if strings.Contains(body, "call 555 0100") {
		t.Fatalf("the page shows the link's text:\n%s", body)
	}
}

func TestAnAlteredOrIncompleteConfirmationIsRefusedWithoutSpendingTheLogin(t *testing.T) {
	s := newAuthServer(t)
	browser := s.client(false)
	id, back := s.pendingLogin("desk")
	state := back.Query().Get("state")
	refused := func(what string, resp *http.Response, page, want string) {
		t.Helper()
		if resp.StatusCode != 400 || !strings.Contains(page, want) || !strings.Contains(page, "Nothing was changed") {
			t.Fatalf("%s: %d, want 400 with %q:\n%s", what, resp.StatusCode, want, page)
		}
	}
	resp, page := s.get(browser, s.srv.URL+"/oauth/callback?"+url.Values{"state": {state}}.Encode())
	refused("the callback without a code", resp, page, "sent no authorization code")
	resp, page = s.postForm(browser, "/oauth/callback", url.Values{"state": {state}, "action": {"connect"}, "code": {"tampered"}})
	refused("a confirmation with an altered code", resp, page, "altered or belongs to another login")
	resp, page = s.postForm(browser, "/oauth/callback", url.Values{"state": {state}, "action": {"maybe"}})
	refused("a confirmation that neither connects nor cancels", resp, page, "connect or cancel")
	resp, page = s.postForm(browser, "/oauth/callback", url.Values{"state": {"never-issued"}, "action": {"cancel"}})
	refused("a cancel of a login that does not exist", resp, page, "unknown or was already used")
	if s.status(id) != "pending" {
		t.Fatalf("status %s", s.status(id))
	}

	// None of them spent the state: the real confirmation still connects.
	if resp, page = s.finishLogin(browser, back.String(), "connect"); resp.StatusCode != 200 || s.status(id) != "active" {
		t.Fatalf("connect after the refused forms: %d\n%s", resp.StatusCode, page)
	}
	resp, page = s.postForm(browser, "/oauth/callback", url.Values{"state": {state}, "action": {"cancel"}})
	refused("a cancel after the connect", resp, page, "unknown or was already used")
	if s.status(id) != "active" {
		t.Fatalf("status %s after a late cancel", s.status(id))
	}
}

// The confirmation form's sealed code is bound to its login's state: sent with the state
// of another login of the tenant it is refused as altered, and spends neither login.
func TestASealedCodeConnectsOnlyTheLoginItWasSealedFor(t *testing.T) {
	s := newAuthServer(t)
	browser := s.client(false)
	ids := map[string]string{}
	backs := map[string]*url.URL{}
	for _, name := range []string{"desk", "front"} {
		ids[name], backs[name] = s.pendingLogin(name)
	}
	_, confirm := s.get(browser, backs["desk"].String())
	m := regexp.MustCompile(`<input type="hidden" name="code" value="([^"]+)">`).FindStringSubmatch(confirm)
	if m == nil {
		t.Fatalf("no sealed code on the confirmation page:\n%s", confirm)
	}
	resp, page := s.postForm(browser, "/oauth/callback", url.Values{"state": {backs["front"].Query().Get("state")}, "action": {"connect"}, "code": {m[1]}})
	if resp.StatusCode != 400 || !strings.Contains(page, "altered or belongs to another login") {
		t.Fatalf("desk's sealed code with front's state: %d, want 400 altered:\n%s", resp.StatusCode, page)
	}
	if s.status(ids["desk"]) != "pending" || s.status(ids["front"]) != "pending" {
		t.Fatalf("status desk %s, front %s; want both pending", s.status(ids["desk"]), s.status(ids["front"]))
	}
	// Neither state was spent: each login still connects with its own form.
	for _, name := range []string{"front", "desk"} {
		if resp, page := s.finishLogin(browser, backs[name].String(), "connect"); resp.StatusCode != 200 || s.status(ids[name]) != "active" {
			t.Fatalf("connect %s: %d\n%s", name, resp.StatusCode, page)
		}
	}
}

func TestClientCredentialsAreCheckedAtCreationOverHTTP(t *testing.T) {
	s := newAuthServer(t)
	resp, created := s.api("POST", "/v1/authorizations", azAcmeKey, map[string]string{
		"name": "standalone", "kind": "client-credentials", "baseUrl": s.sim.BaseURL(), "domain": "acme", "tenantId": "tenant-1", "tenantSecret": azCCSecret,
	})
	if resp.StatusCode != http.StatusCreated || created["status"] != "active" || created["tenantId"] != "tenant-1" || created["authorizeUrl"] != nil {
		t.Fatalf("create: %d %v", resp.StatusCode, created)
	}
	if _, ok := created["tenantSecret"]; ok {
		t.Fatal("the answer carries the secret")
	}
	resp, problem := s.api("POST", "/v1/authorizations", azAcmeKey, map[string]string{
		"name": "wrong", "kind": "client-credentials", "baseUrl": s.sim.BaseURL(), "domain": "acme", "tenantId": "tenant-1", "tenantSecret": "not-" + azCCSecret,
	})
	if resp.StatusCode != http.StatusUnprocessableEntity || problem["reason"] != "provider_rejected" || problem["providerError"] != "invalid_client" {
		t.Fatalf("bad credentials: %d %v", resp.StatusCode, problem)
	}
	_, list := s.api("GET", "/v1/authorizations", azAcmeKey, nil)
	if items := list["authorizations"].([]any); len(items) != 1 || items[0].(map[string]any)["name"] != "standalone" {
		t.Fatalf("list %v", list)
	}

	// Credentials changed upstream: re-authorize with the new secret.
	if err := s.sim.ChangeTenantSecret("tenant-1", azNewCCSecret); err != nil {
		t.Fatal(err)
	}
	id := created["id"].(string)
	resp, problem = s.api("POST", "/v1/authorizations/"+id+"/reauthorize", azAcmeKey, map[string]string{"tenantSecret": "still-wrong"})
	if resp.StatusCode != 422 || problem["reason"] != "provider_rejected" {
		t.Fatalf("reauthorize with a wrong secret: %d %v", resp.StatusCode, problem)
	}
	resp, re := s.api("POST", "/v1/authorizations/"+id+"/reauthorize", azAcmeKey, map[string]string{"tenantSecret": azNewCCSecret})
	if resp.StatusCode != 200 || re["status"] != "active" {
		t.Fatalf("reauthorize: %d %v", resp.StatusCode, re)
	}
	if c, err := s.store.Token(t.Context(), "acme", id); err != nil || c.AccessToken.IsZero() {
		t.Fatalf("token after re-authorization: %v", err)
	}
	// The body is optional, and an empty chunked one is no body too: the stored
	// secret is checked again.
	status := rawHTTPStatus(t, s.srv.URL, "POST /v1/authorizations/"+id+"/reauthorize HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+azAcmeKey+
		"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n")
	if status != "HTTP/1.1 200 OK" {
		t.Fatalf("reauthorize with an empty chunked body: %q", status)
	}

	resp, _ = s.api("DELETE", "/v1/authorizations/"+id, azAcmeKey, nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	if resp, _ = s.api("GET", "/v1/authorizations/"+id, azAcmeKey, nil); resp.StatusCode != 404 {
		t.Fatalf("after delete: %d", resp.StatusCode)
	}
}

func TestCreateRefusesWhatItCannotServe(t *testing.T) {
	s := newAuthServer(t)
	taken := s.createCC("taken")
	base := func(over map[string]string) map[string]string {
		m := map[string]string{"name": "new", "kind": "client-credentials", "baseUrl": s.sim.BaseURL(), "domain": "acme", "tenantId": "tenant-1", "tenantSecret": azCCSecret}
		for k, v := range over {
			if v == "" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	cases := []struct {
		name   string
		body   map[string]string
		status int
		reason string
	}{
		{"a duplicate name", base(map[string]string{"name": "taken"}), 409, "conflict"},
		{"a base URL off the allowlist", base(map[string]string{"baseUrl": "https://evil.example/api/v1"}), 422, "base_url_not_allowed"},
		{"a documented region that is not allowed here", base(map[string]string{"baseUrl": "", "region": "eu"}), 422, "base_url_not_allowed"},
		{"an unknown region", base(map[string]string{"baseUrl": "", "region": "moon"}), 422, "invalid"},
		{"no domain", base(map[string]string{"domain": ""}), 422, "invalid"},
		{"an unknown kind", base(map[string]string{"kind": "password"}), 422, "invalid"},
		{"client credentials without a secret", base(map[string]string{"tenantSecret": ""}), 422, "invalid"},
		// Refused before the token endpoint is asked: NUL cannot be stored, so a grant
		// would end in a 500.
		{"a tenant ID with a NUL", base(map[string]string{"tenantId": "tenant\x00"}), 422, "invalid"},
		{"a tenant ID of 257 bytes", base(map[string]string{"tenantId": strings.Repeat("t", 257)}), 422, "invalid"},
		{"a tenant secret of 4097 bytes", base(map[string]string{"tenantSecret": strings.Repeat("s", 4097)}), 422, "invalid"},
		{"a tenant secret of 4096 bytes, not the tenant's", base(map[string]string{"tenantSecret": strings.Repeat("s", 4096)}), 422, "provider_rejected"},
		// Not dropped unseen: the caller may have meant client-credentials.
		{"a webex login with client credentials", base(map[string]string{"kind": "webex-login"}), 422, "invalid"},
		{"a webex login with a tenant secret", base(map[string]string{"kind": "webex-login", "tenantId": ""}), 422, "invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, problem := s.api("POST", "/v1/authorizations", azAcmeKey, c.body)
			if resp.StatusCode != c.status || problem["reason"] != c.reason || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("%d %v, want %d %s", resp.StatusCode, problem, c.status, c.reason)
			}
		})
	}
	// A domain given is not called missing: the detail names it and what it may hold.
	for domain, want := range map[string]string{
		"":                       "domain is required",
		"ac me":                  `domain "ac me" is not an Engage domain: at most 128 letters, digits`,
		strings.Repeat("a", 129): `domain "aaa`,
	} {
		resp, problem := s.api("POST", "/v1/authorizations", azAcmeKey, base(map[string]string{"domain": domain}))
		if detail, _ := problem["detail"].(string); resp.StatusCode != 422 || problem["reason"] != "invalid" || !strings.HasPrefix(detail, want) {
			t.Errorf("domain %.20q: %d %v, want 422 invalid, detail starting %q", domain, resp.StatusCode, problem, want)
		}
	}
	if n := s.sim.Calls(engagesim.OpToken); n != 2 {
		t.Fatalf("%d token calls, want 2 (the first creation, and the secret of 4096 bytes)", n)
	}
	if resp, _ := s.api("POST", "/v1/authorizations", azAcmeKey, map[string]any{"name": "x", "unknown": 1}); resp.StatusCode != 400 {
		t.Fatalf("unknown field: %d", resp.StatusCode)
	}
	// Re-authorizing a Webex login takes no client credentials either; it stays as it was.
	resp, login := s.api("POST", "/v1/authorizations", azAcmeKey, map[string]string{"name": "login", "kind": "webex-login", "baseUrl": s.sim.BaseURL(), "domain": "acme"})
	if resp.StatusCode != 201 {
		t.Fatalf("create a login: %d %v", resp.StatusCode, login)
	}
	for _, body := range []map[string]string{{"tenantSecret": azCCSecret}, {"tenantId": "tenant-1"}, {"tenantId": ""}, {"tenantSecret": ""}} {
		if resp, problem := s.api("POST", "/v1/authorizations/"+login["id"].(string)+"/reauthorize", azAcmeKey, body); resp.StatusCode != 422 || problem["reason"] != "invalid" {
			t.Errorf("re-authorize a webex login with %v: %d %v, want 422 invalid", body, resp.StatusCode, problem)
		}
	}
	if resp, problem := s.api("POST", "/v1/authorizations/"+taken+"/reauthorize", azAcmeKey, map[string]string{"tenantId": "tenant\x00"}); resp.StatusCode != 422 || problem["reason"] != "invalid" {
		t.Errorf("re-authorize with a tenant ID holding NUL: %d %v, want 422 invalid", resp.StatusCode, problem)
	}
	if resp, problem := s.api("POST", "/v1/authorizations/"+taken+"/reauthorize", azAcmeKey, map[string]string{"tenantId": "tenant-1" + strings.Repeat(" ", 249)}); resp.StatusCode != 422 || problem["reason"] != "invalid" {
		t.Errorf("re-authorize with a tenant ID of 257 characters, spaces included: %d %v, want 422 invalid", resp.StatusCode, problem)
	}
	if resp, problem := s.api("POST", "/v1/authorizations/"+taken+"/reauthorize", azAcmeKey, map[string]string{"tenantSecret": strings.Repeat("s", 4097)}); resp.StatusCode != 422 || problem["detail"] != "tenantSecret is over 4096 bytes" {
		t.Errorf("re-authorize with a tenant secret of 4097 bytes: %d %v, want 422 invalid", resp.StatusCode, problem)
	}
	// A body of null is no object: not "name is required", nor a re-authorization
	// without a body.
	for _, path := range []string{"/v1/authorizations", "/v1/authorizations/" + taken + "/reauthorize"} {
		if resp, problem := s.api("POST", path, azAcmeKey, json.RawMessage(`null`)); resp.StatusCode != 400 || problem["detail"] != "want a JSON object, got JSON null" {
			t.Errorf("POST %s with the body null: %d %v, want 400", path, resp.StatusCode, problem)
		}
	}
	// A field of null is not a field left out: null is no field's type in the OpenAPI
	// (CreateAuthorization's region is one of the regions, a Webex login takes no
	// tenantId at all), so a validator in front of the service would refuse it.
	webex := map[string]any{"name": "null region", "kind": "webex-login", "baseUrl": s.sim.BaseURL(), "domain": "acme"}
	for field, body := range map[string]map[string]any{
		"region":   {"region": nil},
		"tenantId": {"tenantId": nil},
	} {
		maps.Copy(body, webex)
		if resp, problem := s.api("POST", "/v1/authorizations", azAcmeKey, body); resp.StatusCode != 400 || problem["detail"] != `field "`+field+`": want a JSON string, got JSON null; leave the field out instead` {
			t.Errorf("create with %s null: %d %v, want 400", field, resp.StatusCode, problem)
		}
	}
	// A field given is given, empty or blank: both region and baseUrl are "both", and a
	// Webex login with a tenantId or tenantSecret is refused, as CreateAuthorization's
	// oneOf and else say, rather than the empty one taken as left out.
	for name, over := range map[string]map[string]any{
		"an empty region beside baseUrl":          {"region": ""},
		"a blank baseUrl beside region":           {"region": "us", "baseUrl": " "},
		"a webex login with an empty tenantId":    {"tenantId": ""},
		"a webex login with a blank tenantSecret": {"tenantSecret": " "},
		// maxLength counts the characters as sent, surrounding space included.
		"a name of 100 characters and a space":     {"name": strings.Repeat("n", 100) + " "},
		"a tenantId of 257 characters with spaces": {"kind": "client-credentials", "tenantId": "tenant-1" + strings.Repeat(" ", 249), "tenantSecret": azCCSecret},
		// region is one of CreateAuthorization's enum, as written.
		"a region in capitals":  {"baseUrl": nil, "region": "US"},
		"a region with a space": {"baseUrl": nil, "region": " us"},
	} {
		body := maps.Clone(webex)
		body["name"] = strings.ReplaceAll(name, " ", "-")
		maps.Copy(body, over)
		maps.DeleteFunc(body, func(_ string, v any) bool { return v == nil })
		if resp, problem := s.api("POST", "/v1/authorizations", azAcmeKey, body); resp.StatusCode != 422 || problem["reason"] != "invalid" {
			t.Errorf("create with %s: %d %v, want 422 invalid", name, resp.StatusCode, problem)
		}
	}
	if resp, problem := s.api("POST", "/v1/authorizations/"+taken+"/reauthorize", azAcmeKey, map[string]any{"tenantSecret": nil}); resp.StatusCode != 400 || problem["code"] != "bad_request" {
		t.Errorf("re-authorize with tenantSecret null: %d %v, want 400", resp.StatusCode, problem)
	}
	if resp, _ := s.api("POST", "/v1/authorizations", "", base(nil)); resp.StatusCode != 401 {
		t.Fatalf("no API key: %d", resp.StatusCode)
	}
}

func TestWebexLoginIsRefusedWhenNotConfigured(t *testing.T) {
	s := newAuthServer(t, withoutWebex)
	resp, problem := s.api("POST", "/v1/authorizations", azAcmeKey, map[string]string{"name": "x", "kind": "webex-login", "baseUrl": s.sim.BaseURL(), "domain": "acme"})
	if resp.StatusCode != 422 || problem["reason"] != "webex_login_disabled" || !strings.Contains(problem["detail"].(string), "not configured") {
		t.Fatalf("%d %v", resp.StatusCode, problem)
	}
}

func TestAnotherTenantsAuthorizationIsAnswered404LikeAMissingOne(t *testing.T) {
	s := newAuthServer(t)
	id := s.createCC("acme only")
	missing := "0b7e0d44-1111-4c1c-8f00-000000000000"
	for _, call := range []struct{ method, suffix string }{{"GET", ""}, {"DELETE", ""}, {"POST", "/reauthorize"}} {
		foreignResp, foreign := s.api(call.method, "/v1/authorizations/"+id+call.suffix, azGlobexKey, nil)
		missingResp, absent := s.api(call.method, "/v1/authorizations/"+missing+call.suffix, azGlobexKey, nil)
		for _, p := range []map[string]any{foreign, absent} {
			delete(p, "requestId")
			delete(p, "instance")
		}
		if foreignResp.StatusCode != 404 || missingResp.StatusCode != 404 || !equalJSON(foreign, absent) {
			t.Fatalf("%s: foreign %d %v, missing %d %v", call.method, foreignResp.StatusCode, foreign, missingResp.StatusCode, absent)
		}
	}
	if _, list := s.api("GET", "/v1/authorizations", azGlobexKey, nil); len(list["authorizations"].([]any)) != 0 {
		t.Fatalf("globex lists %v", list)
	}
	if s.status(id) != "active" {
		t.Fatal("acme's authorization changed")
	}
}

func equalJSON(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// rawHTTPStatus writes request, exactly as given, to the server at baseURL and returns
// the status line of the answer (for what net/http's client would not send).
func rawHTTPStatus(t *testing.T, baseURL, request string) string {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

// An error the store did not expect (here its table is gone) is a bare 500 problem on
// the API and a bare error page on the admin side: what went wrong goes to the log,
// with the request ID, never into the answer.
func TestAnUnexpectedStoreErrorIsLoggedNotShown(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	s.signIn(c, azAcmeKey)
	s.sql(`alter table authorizations rename to authorizations_gone`)
	resp, p := s.api("GET", "/v1/authorizations", azAcmeKey, nil)
	if resp.StatusCode != http.StatusInternalServerError || p["code"] != "internal" {
		t.Fatalf("API: %d %v", resp.StatusCode, p)
	}
	detail, _ := p["detail"].(string)
	if strings.Contains(detail, "authorizations") || !strings.Contains(detail, "request ID") {
		t.Fatalf("the API's problem shows the error: %q", detail)
	}
	resp, page := s.get(c, s.srv.URL+"/admin/")
	if resp.StatusCode != http.StatusInternalServerError || strings.Contains(page, "does not exist") {
		t.Fatalf("admin list: %d\n%s", resp.StatusCode, page)
	}
	if !strings.Contains(s.logs.String(), "authorization request failed") || !strings.Contains(s.logs.String(), p["requestId"].(string)) {
		t.Fatalf("the error is not logged with the request ID:\n%s", s.logs.String())
	}
}

// A 405 names the methods served at the path as the router matches it, escapes
// included: an ID with an escaped slash is one path segment.
func TestA405NamesTheMethodsOfAPathWithAnEscapedSlash(t *testing.T) {
	s := newAuthServer(t)
	req, _ := http.NewRequest("PUT", s.srv.URL+"/v1/authorizations/a%2Fb", nil)
	req.Header.Set("Authorization", "Bearer "+azAcmeKey)
	resp, err := s.client(false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD, DELETE" {
		t.Fatalf("%d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// A token endpoint that fails is the provider's failure, a 502 to try again, not a
// refusal of what was sent.
func TestATokenEndpointThatFailsIsA502(t *testing.T) {
	s := newAuthServer(t)
	s.sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Status: http.StatusServiceUnavailable})
	resp, p := s.api("POST", "/v1/authorizations", azAcmeKey, map[string]string{
		"name": "x", "kind": "client-credentials", "baseUrl": s.sim.BaseURL(), "domain": "acme", "tenantId": "tenant-1", "tenantSecret": azCCSecret,
	})
	if resp.StatusCode != http.StatusBadGateway || p["code"] != "unavailable" || p["reason"] != "provider_unavailable" {
		t.Fatalf("%d %v", resp.StatusCode, p)
	}
}

// A re-authorize body of white space only is no body: the stored credentials are
// checked again.
func TestAReauthorizeBodyOfWhiteSpaceKeepsTheStoredCredentials(t *testing.T) {
	s := newAuthServer(t)
	id := s.createCC("standalone")
	req, _ := http.NewRequest("POST", s.srv.URL+"/v1/authorizations/"+id+"/reauthorize", strings.NewReader(" \n\t "))
	req.Header.Set("Authorization", "Bearer "+azAcmeKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client(false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d", resp.StatusCode)
	}
}

// A refusal by the token endpoint is passed on as the provider said it: its error and
// its description, for the person fixing the credentials.
func TestARefusedCreationCarriesTheProvidersErrorAndDescription(t *testing.T) {
	s := newAuthServer(t)
	resp, p := s.api("POST", "/v1/authorizations", azAcmeKey, map[string]string{
		"name": "x", "kind": "client-credentials", "baseUrl": s.sim.BaseURL(), "domain": "acme", "tenantId": "tenant-1", "tenantSecret": "wrong",
	})
	if resp.StatusCode != http.StatusUnprocessableEntity || p["providerError"] != "invalid_client" || p["providerDescription"] == nil || p["providerDescription"] == "" {
		t.Fatalf("%d %v", resp.StatusCode, p)
	}
}

// The login's state and the confirmation form's sealed code are all a POST to
// /oauth/callback needs to connect a login: neither is written to a log line, when the
// callback is opened or when its confirmation is answered.
func TestTheLoginsStateAndSealedCodeAreNotLogged(t *testing.T) {
	s := newAuthServer(t)
	browser := s.client(false)
	id, back := s.pendingLogin("desk")
	state := back.Query().Get("state")
	_, confirm := s.get(browser, back.String())
	m := regexp.MustCompile(`<input type="hidden" name="code" value="([^"]+)">`).FindStringSubmatch(confirm)
	if state == "" || m == nil {
		t.Fatalf("no state in the callback %s or no sealed code on its page:\n%s", back.Redacted(), confirm)
	}
	if resp, page := s.postForm(browser, "/oauth/callback", url.Values{"state": {state}, "action": {"connect"}, "code": {m[1]}}); resp.StatusCode != 200 || s.status(id) != "active" {
		t.Fatalf("connect: %d\n%s", resp.StatusCode, page)
	}
	logs := s.logs.String()
	if !strings.Contains(logs, id) {
		t.Fatalf("the connect's lines are not in the log:\n%s", logs)
	}
	for what, secret := range map[string]string{"state": state, "sealed code": m[1]} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds the login's %s:\n%s", what, logs)
		}
	}
}

// The error line of an unexpected store error names the request's ID itself (the
// authorizations API's logger does not add it): the ID in the 500 finds that line, not
// only the access-log line.
func TestAnUnexpectedStoreErrorsLogLineNamesTheRequestID(t *testing.T) {
	s := newAuthServer(t)
	s.sql(`alter table authorizations rename to authorizations_gone`)
	resp, p := s.api("GET", "/v1/authorizations", azAcmeKey, nil)
	if resp.StatusCode != http.StatusInternalServerError || p["requestId"] == nil {
		t.Fatalf("%d %v", resp.StatusCode, p)
	}
	for line := range strings.Lines(s.logs.String()) {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) == nil && entry["msg"] == "authorization request failed" {
			if entry["requestId"] != p["requestId"] {
				t.Fatalf("the error line names request %v, want %v:\n%s", entry["requestId"], p["requestId"], line)
			}
			return
		}
	}
	t.Fatalf("no error line:\n%s", s.logs.String())
}
