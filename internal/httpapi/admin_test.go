package httpapi_test

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// signIn signs c in on the admin pages with key and returns the list page.
func (s *authServer) signIn(c *http.Client, key string) string {
	s.t.Helper()
	_, page := s.get(c, s.srv.URL+"/admin/login")
	resp, _ := s.postForm(c, "/admin/login", url.Values{"csrf": {csrfOf(s.t, page)}, "apiKey": {key}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/" {
		s.t.Fatalf("sign in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, list := s.get(c, s.srv.URL+"/admin/")
	return list
}

func TestAdminPagesNeedASessionFromTheTenantsAPIKey(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	resp, _ := s.get(c, s.srv.URL+"/admin/")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/login" {
		t.Fatalf("not signed in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page := s.get(c, s.srv.URL+"/admin/login")
	if !strings.Contains(page, `name="csrf"`) {
		t.Fatal("the sign-in form has no CSRF token")
	}
	if resp, _ := s.postForm(c, "/admin/login", url.Values{"apiKey": {azAcmeKey}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-in without the CSRF token: %d", resp.StatusCode)
	}
	_, page = s.get(c, s.srv.URL+"/admin/login")
	csrf := csrfOf(t, page)
	if resp, body := s.postForm(c, "/admin/login", url.Values{"csrf": {csrf}, "apiKey": {"wrong"}}); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not valid") ||
		resp.Header.Get("WWW-Authenticate") != `Bearer realm="noderuntime"` {
		t.Fatalf("wrong key: %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	resp, _ = s.postForm(c, "/admin/login", url.Values{"csrf": {csrf}, "apiKey": {azAcmeKey}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "nr_admin" {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/admin" || cookie.MaxAge <= 0 {
		t.Fatalf("session cookie %+v", cookie)
	}
	for _, clear := range []string{azAcmeKey, "acme", csrf} {
		if strings.Contains(cookie.Value, clear) {
			t.Fatalf("the cookie shows %q in clear", clear)
		}
	}
	_, list := s.get(c, s.srv.URL+"/admin/")
	if !strings.Contains(list, `id="tenant">acme<`) || !strings.Contains(list, "No authorizations yet") {
		t.Fatalf("list page:\n%s", list)
	}

	// The same cookie on a service with another key ring is no session at all.
	other := newAuthServer(t, withAnotherKeyRing)
	req, _ := http.NewRequest("GET", other.srv.URL+"/admin/", nil)
	req.AddCookie(&http.Cookie{Name: "nr_admin", Value: cookie.Value})
	resp, err := other.client(false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a foreign cookie was accepted: %d", resp.StatusCode)
	}

	// Sign out ends the session.
	csrf = csrfOf(t, list)
	if resp, _ := s.postForm(c, "/admin/logout", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	if resp, _ := s.get(c, s.srv.URL+"/admin/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after sign out: %d", resp.StatusCode)
	}
	// A copy of the signed-out cookie (kept by another browser, or stolen) opens
	// nothing either, although it is sealed and unexpired.
	s.wantSignInFor(cookie.Value, "a copy of the signed-out cookie")
}

// wantSignInFor checks that the admin list page, asked for with a session cookie of
// value, sends the browser to sign in: the cookie is no session.
func (s *authServer) wantSignInFor(value, what string) {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.srv.URL+"/admin/", nil)
	req.AddCookie(&http.Cookie{Name: "nr_admin", Value: value})
	resp, err := s.client(false).Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/login" {
		s.t.Fatalf("%s: %d %s, want the sign-in page", what, resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestAdminFormsRefuseAMissingOrForeignCSRFToken(t *testing.T) {
	s := newAuthServer(t)
	acme, globex := s.client(true), s.client(true)
	s.signIn(acme, azAcmeKey)
	globexCSRF := csrfOf(t, s.signIn(globex, azGlobexKey))
	form := url.Values{"kind": {"client-credentials"}, "name": {"x"}, "baseUrl": {s.sim.BaseURL()}, "domain": {"acme"}, "tenantId": {"tenant-1"}, "tenantSecret": {azCCSecret}}
	for name, token := range map[string]string{"no token": "", "another session's token": globexCSRF} {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		if token != "" {
			f.Set("csrf", token)
		}
		resp, body := s.postForm(acme, "/admin/authorizations", f)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Form expired") {
			t.Fatalf("%s: %d", name, resp.StatusCode)
		}
	}
	if _, list := s.api("GET", "/v1/authorizations", azAcmeKey, nil); len(list["authorizations"].([]any)) != 0 {
		t.Fatal("a form without a valid CSRF token created something")
	}
}

func TestAdminAddsReauthorizesAndDeletesClientCredentials(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	s.signIn(c, azAcmeKey)
	_, page := s.get(c, s.srv.URL+"/admin/authorizations/new")
	if !strings.Contains(page, `id="webex-form"`) || !strings.Contains(page, `id="cc-form"`) || !strings.Contains(page, s.sim.BaseURL()) {
		t.Fatalf("add page:\n%s", page)
	}
	csrf := csrfOf(t, page)
	form := url.Values{"csrf": {csrf}, "kind": {"client-credentials"}, "name": {"Billing <bot>"}, "baseUrl": {s.sim.BaseURL()}, "domain": {"acme"}, "tenantId": {"tenant-1"}, "tenantSecret": {"wrong"}}

	resp, body := s.postForm(c, "/admin/authorizations", form)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "invalid_client") || !strings.Contains(body, `value="Billing &lt;bot&gt;"`) || strings.Contains(body, `value="wrong"`) {
		t.Fatalf("refused credentials: %d\n%s", resp.StatusCode, body)
	}
	form.Set("tenantSecret", azCCSecret)
	resp, _ = s.postForm(c, "/admin/authorizations", form)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/admin/?") {
		t.Fatalf("add: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, list := s.get(c, s.srv.URL+resp.Header.Get("Location"))
	if !strings.Contains(list, "Authorization Billing &lt;bot&gt; added.") || !strings.Contains(list, `data-status="active"`) {
		t.Fatalf("list after add:\n%s", list)
	}
	_, api := s.api("GET", "/v1/authorizations", azAcmeKey, nil)
	id := api["authorizations"].([]any)[0].(map[string]any)["id"].(string)

	// The secret changes upstream; the admin re-authorizes with the new one.
	if err := s.sim.ChangeTenantSecret("tenant-1", azNewCCSecret); err != nil {
		t.Fatal(err)
	}
	_, page = s.get(c, s.srv.URL+"/admin/authorizations/"+id+"/reauthorize")
	resp, _ = s.postForm(c, "/admin/authorizations/"+id+"/reauthorize", url.Values{"csrf": {csrfOf(t, page)}, "tenantId": {"tenant-1"}, "tenantSecret": {azNewCCSecret}})
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "notice=reauthorized") {
		t.Fatalf("reauthorize: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Delete asks first, then deletes.
	_, page = s.get(c, s.srv.URL+"/admin/authorizations/"+id+"/delete")
	if !strings.Contains(page, "Delete Billing &lt;bot&gt;?") || !strings.Contains(page, "onAuthorizationFailure") {
		t.Fatalf("confirmation page:\n%s", page)
	}
	resp, _ = s.postForm(c, "/admin/authorizations/"+id+"/delete", url.Values{"csrf": {csrfOf(t, page)}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	_, list = s.get(c, s.srv.URL+resp.Header.Get("Location"))
	if !strings.Contains(list, "Authorization Billing &lt;bot&gt; deleted.") || strings.Contains(list, id) {
		t.Fatalf("list after delete:\n%s", list)
	}
	// A notice is signed for the session: a link made elsewhere shows none, nor does
	// the real one with its name changed.
	forged := s.srv.URL + "/admin/?" + url.Values{"notice": {"deleted"}, "name": {"X. Call +1 555 0100 to restore it"}}.Encode()
	altered := s.srv.URL + strings.Replace(resp.Header.Get("Location"), "Billing", "Bi11ing", 1)
	for _, u := range []string{forged, altered} {
		if _, list = s.get(c, u); strings.Contains(list, "restore it") || strings.Contains(list, " deleted.") {
			t.Fatalf("a notice from a link the service did not make:\n%s", list)
		}
	}
	if resp, _ := s.api("GET", "/v1/authorizations/"+id, azAcmeKey, nil); resp.StatusCode != 404 {
		t.Fatalf("API after delete: %d", resp.StatusCode)
	}
}

func TestAdminPagesDoNotReachAnotherTenantsAuthorization(t *testing.T) {
	s := newAuthServer(t)
	id := s.createCC("acme's")
	globex := s.client(true)
	list := s.signIn(globex, azGlobexKey)
	if strings.Contains(list, id) {
		t.Fatal("globex sees acme's authorization")
	}
	for _, path := range []string{"/delete", "/reauthorize"} {
		resp, body := s.get(globex, s.srv.URL+"/admin/authorizations/"+id+path)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "Not found") {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		resp, _ = s.postForm(globex, "/admin/authorizations/"+id+path, url.Values{"csrf": {csrfOf(t, list)}})
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("POST %s: %d", path, resp.StatusCode)
		}
	}
	if s.status(id) != "active" {
		t.Fatal("acme's authorization changed")
	}
}

func TestAdminReauthorizeRefusedKeepsTheTenantIDTyped(t *testing.T) {
	s := newAuthServer(t)
	id := s.createCC("standalone")
	c := s.client(true)
	s.signIn(c, azAcmeKey)
	_, page := s.get(c, s.srv.URL+"/admin/authorizations/"+id+"/reauthorize")
	if !strings.Contains(page, `name="tenantId" value="tenant-1"`) {
		t.Fatalf("the form does not offer the stored tenant ID:\n%s", page)
	}
	// A new tenant ID with a secret that is refused: the page must show the tenant ID
	// that was typed, or the next try silently pairs the new secret with the old ID.
	resp, body := s.postForm(c, "/admin/authorizations/"+id+"/reauthorize", url.Values{"csrf": {csrfOf(t, page)}, "tenantId": {"tenant-2"}, "tenantSecret": {"wrong"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "invalid_client") {
		t.Fatalf("refused re-authorization: %d\n%s", resp.StatusCode, body)
	}
	if !strings.Contains(body, `name="tenantId" value="tenant-2"`) {
		t.Fatalf("the refused form lost the tenant ID typed:\n%s", body)
	}
	// Left empty (keep the stored one), the refused form shows the stored ID again: the
	// one that was tried.
	resp, body = s.postForm(c, "/admin/authorizations/"+id+"/reauthorize", url.Values{"csrf": {csrfOf(t, page)}, "tenantId": {""}, "tenantSecret": {"wrong"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `name="tenantId" value="tenant-1"`) {
		t.Fatalf("refused re-authorization keeping the stored tenant ID: %d\n%s", resp.StatusCode, body)
	}
}

// A tenant secret pasted into another field as well (a password manager filling two) is
// refused, and the form that comes back never shows it: not in the field it was pasted
// into, not in the message.
func TestAdminFormsNeverShowBackATenantSecretPastedIntoAnotherField(t *testing.T) {
	s := newAuthServer(t)
	id := s.createCC("standalone")
	c := s.client(true)
	s.signIn(c, azAcmeKey)
	_, page := s.get(c, s.srv.URL+"/admin/authorizations/new")
	csrf := csrfOf(t, page)
	for _, field := range []string{"name", "domain", "tenantId"} {
		form := url.Values{"csrf": {csrf}, "kind": {"client-credentials"}, "name": {"pasted"}, "baseUrl": {s.sim.BaseURL()}, "domain": {"acme"}, "tenantId": {"tenant-1"}, "tenantSecret": {azCCSecret}}
		form.Set(field, azCCSecret)
		resp, body := s.postForm(c, "/admin/authorizations", form)
		if resp.StatusCode != http.StatusUnprocessableEntity || strings.Contains(body, azCCSecret) || !strings.Contains(body, "given in "+field) {
			t.Fatalf("the secret pasted into %s: %d\n%s", field, resp.StatusCode, body)
		}
	}
	_, page = s.get(c, s.srv.URL+"/admin/authorizations/"+id+"/reauthorize")
	resp, body := s.postForm(c, "/admin/authorizations/"+id+"/reauthorize", url.Values{"csrf": {csrfOf(t, page)}, "tenantId": {azCCSecret}, "tenantSecret": {azCCSecret}})
	if resp.StatusCode != http.StatusUnprocessableEntity || strings.Contains(body, azCCSecret) || !strings.Contains(body, `name="tenantId" value="tenant-1"`) {
		t.Fatalf("re-authorizing with the secret as the tenant ID: %d\n%s", resp.StatusCode, body)
	}
	// The stored secret as the tenant ID, the secret field left empty to keep it.
	resp, body = s.postForm(c, "/admin/authorizations/"+id+"/reauthorize", url.Values{"csrf": {csrfOf(t, page)}, "tenantId": {azCCSecret}, "tenantSecret": {""}})
	if resp.StatusCode != http.StatusUnprocessableEntity || strings.Contains(body, azCCSecret) || !strings.Contains(body, `name="tenantId" value="tenant-1"`) {
		t.Fatalf("re-authorizing with the stored secret as the tenant ID: %d\n%s", resp.StatusCode, body)
	}
}

// A refused add leaves /admin/authorizations in the address bar: opening that URL again
// (Enter in the address bar, a bookmark, a shared link) must lead to the form, not to a
// JSON 405 meant for API clients.
func TestAdminAddressOfARefusedAddOpensTheForm(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	list := s.signIn(c, azAcmeKey)
	resp, _ := s.postForm(c, "/admin/authorizations", url.Values{"csrf": {csrfOf(t, list)}, "kind": {"client-credentials"}, "name": {""}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("add without a name: %d", resp.StatusCode)
	}
	resp, body := s.get(c, s.srv.URL+"/admin/authorizations")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/authorizations/new" {
		t.Fatalf("GET /admin/authorizations: %d %s %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Location"), body)
	}
	// Signed out, it asks to sign in like every other page.
	resp, _ = s.get(s.client(true), s.srv.URL+"/admin/authorizations")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/login" {
		t.Fatalf("signed out: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// Signing in with another key over a signed-in session ends the first session, as
// signing out would: a copy of its cookie opens nothing afterwards.
func TestSigningInOverASessionEndsIt(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	list := s.signIn(c, azAcmeKey)
	admin, _ := url.Parse(s.srv.URL + "/admin/")
	var first string
	for _, ck := range c.Jar.Cookies(admin) {
		if ck.Name == "nr_admin" {
			first = ck.Value
		}
	}
	if first == "" {
		t.Fatal("no session cookie after sign-in")
	}
	resp, _ := s.postForm(c, "/admin/login", url.Values{"csrf": {csrfOf(t, list)}, "apiKey": {azGlobexKey}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/" {
		t.Fatalf("sign in over a session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, list = s.get(c, s.srv.URL+"/admin/"); !strings.Contains(list, `id="tenant">globex<`) {
		t.Fatalf("after signing in again, the list page is not globex's:\n%s", list)
	}
	s.wantSignInFor(first, "a copy of the first session's cookie")
}

// A person reads the admin pages and the login callback: an address there that is no
// page, or a method a page does not take (a bookmarked sign-out, which is a form's
// POST), answers an HTML page that says so, not a problem document meant for programs
// (docs/problems.md). The 405 still names the methods the page takes.
func TestAddressesOfThePagesThatAreNoPageAnswerAPage(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	s.signIn(c, azAcmeKey)
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/admin/no-such-page", 404, ""},
		{"GET", "/admin/authorizations/x/y/z", 404, ""},
		{"GET", "/oauth/callback/", 404, ""},
		{"GET", "/oauth/other", 404, ""},
		{"GET", "/admin/logout", 405, "POST"},
		{"DELETE", "/admin/", 405, "GET, HEAD"},
		{"PUT", "/admin/login", 405, "GET, HEAD, POST"},
		{"PUT", "/oauth/callback", 405, "GET, HEAD, POST"},
		{"FOO", "/admin/login", 405, "GET, HEAD, POST"}, // a method no route knows
		{"FOO", "/oauth/callback", 405, "GET, HEAD, POST"},
		{"FOO", "/admin/no-such-page", 404, ""},
		{"DELETE", "/admin/authorizations/" + s.createCC("kept"), 404, ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, s.srv.URL+tc.path, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(string(body), `id="headline"`) {
				t.Fatalf("%d %s, want %d and a page\n%.300s", resp.StatusCode, resp.Header.Get("Content-Type"), tc.status, body)
			}
			if resp.Header.Get("Allow") != tc.allow || resp.Header.Get("X-Request-Id") == "" || resp.Header.Get("Content-Security-Policy") == "" {
				t.Fatalf("headers %v, want Allow %q, a request ID and the pages' policy", resp.Header, tc.allow)
			}
		})
	}
	// The API's own answers stay problem documents.
	if resp, _ := s.api("DELETE", "/healthz", "", nil); resp.StatusCode != 405 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("DELETE /healthz: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// A form over the 64 KiB the pages read says so, on every page that takes one, rather
// than "could not be read" or, for the sign-in, "expired"; nothing is stored.
func TestAFormOverTheLimitIsAnsweredAsTooLarge(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	list := s.signIn(c, azAcmeKey)
	big := strings.Repeat("n", 64<<10) // with the other fields, just over the limit
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/admin/authorizations", http.StatusBadRequest},
		{"/oauth/callback", http.StatusBadRequest},
		{"/admin/login", http.StatusForbidden}, // last: it answers a fresh sign-in form
	} {
		resp, page := s.postForm(c, tc.path, url.Values{"csrf": {csrfOf(t, list)}, "name": {big}, "kind": {"webex-login"}, "domain": {"acme"}, "baseUrl": {s.sim.BaseURL()}})
		if resp.StatusCode != tc.status || !strings.Contains(page, "The form is larger than 64 KiB.") {
			t.Errorf("POST %s with a form just over 64 KiB: %d, want %d and the page to say it is too large\n%.2000s", tc.path, resp.StatusCode, tc.status, page)
		}
		if tc.path == "/admin/authorizations" {
			if _, now := s.get(c, s.srv.URL+"/admin/"); !strings.Contains(now, `id="tenant">acme<`) || strings.Contains(now, "nnnn") {
				t.Fatalf("after the form over the limit, the list:\n%s", now)
			}
		}
	}
}

// The cookie the sign-in form sets carries a CSRF token and no tenant: it opens no page,
// and its token makes no form go through.
func TestTheSignInFormsCookieOpensNoPage(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	_, page := s.get(c, s.srv.URL+"/admin/login")
	csrf := csrfOf(t, page)
	resp, _ := s.get(c, s.srv.URL+"/admin/")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/login" {
		t.Fatalf("GET /admin/ before sign-in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := s.postForm(c, "/admin/authorizations", url.Values{"csrf": {csrf}, "kind": {"client-credentials"}, "name": {"x"},
		"baseUrl": {s.sim.BaseURL()}, "domain": {"acme"}, "tenantId": {"tenant-1"}, "tenantSecret": {azCCSecret}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Signed out") {
		t.Fatalf("POST before sign-in: %d\n%s", resp.StatusCode, body)
	}
}

// Signing in gives the session a new CSRF token: a token seen on the sign-in form (which
// anyone may load) is useless once signed in.
func TestSigningInGivesTheSessionANewCSRFToken(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	_, page := s.get(c, s.srv.URL+"/admin/login")
	before := csrfOf(t, page)
	resp, _ := s.postForm(c, "/admin/login", url.Values{"csrf": {before}, "apiKey": {azAcmeKey}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	_, list := s.get(c, s.srv.URL+"/admin/")
	if after := csrfOf(t, list); after == before {
		t.Fatal("the CSRF token of the sign-in form is still the session's")
	}
	if resp, body := s.postForm(c, "/admin/logout", url.Values{"csrf": {before}}); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Form expired") {
		t.Fatalf("sign out with the sign-in form's token: %d", resp.StatusCode)
	}
}

// A notice is signed for the session that caused it: the link shows nothing in another
// session, even one of the same tenant.
func TestANoticeLinkShowsNothingInAnotherSession(t *testing.T) {
	s := newAuthServer(t)
	id := s.createCC("Billing")
	first, second := s.client(true), s.client(true)
	s.signIn(first, azAcmeKey)
	s.signIn(second, azAcmeKey)
	_, page := s.get(first, s.srv.URL+"/admin/authorizations/"+id+"/delete")
	resp, _ := s.postForm(first, "/admin/authorizations/"+id+"/delete", url.Values{"csrf": {csrfOf(t, page)}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	notice := s.srv.URL + resp.Header.Get("Location")
	if _, list := s.get(first, notice); !strings.Contains(list, "Authorization Billing deleted.") {
		t.Fatalf("the notice is not shown in its own session:\n%s", list)
	}
	if _, list := s.get(second, notice); strings.Contains(list, " deleted.") {
		t.Fatalf("another session shows the notice:\n%s", list)
	}
}

// Every admin page, signed in or not, and every redirect between them, tells the browser
// not to keep it, frame it, sniff it, or send its address on (the callback's holds a
// login code).
func TestAdminPagesCarryTheBrowserProtections(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	want := map[string]string{
		"Cache-Control":          "no-store",
		"X-Frame-Options":        "DENY",
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
		"Content-Type":           "text/html; charset=utf-8",
	}
	resp, _ := s.get(c, s.srv.URL+"/admin/login")
	signedOut := resp.Header
	// A redirect carries a small HTML body too: the same protections, but not the pages'
	// Content-Type.
	toSignIn, _ := s.get(c, s.srv.URL+"/admin/")
	if toSignIn.StatusCode != http.StatusSeeOther {
		t.Fatalf("the list, signed out: %d, want 303", toSignIn.StatusCode)
	}
	s.signIn(c, azAcmeKey)
	resp, _ = s.get(c, s.srv.URL+"/admin/authorizations/new")
	for page, h := range map[string]http.Header{"sign-in": signedOut, "add": resp.Header, "redirect to sign-in": toSignIn.Header} {
		for k, v := range want {
			if k == "Content-Type" && page == "redirect to sign-in" {
				continue
			}
			if h.Get(k) != v {
				t.Errorf("%s page: %s %q, want %q", page, k, h.Get(k), v)
			}
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s page: CSP %q", page, csp)
		}
	}
}

// The sign-in page keeps the browser's token across loads, so a form loaded in another
// tab still signs in; a browser already signed in is sent on to the list.
func TestTheSignInPageKeepsItsTokenAndSendsASignedInBrowserOn(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	_, first := s.get(c, s.srv.URL+"/admin/login")
	_, second := s.get(c, s.srv.URL+"/admin/login")
	if csrfOf(t, first) != csrfOf(t, second) {
		t.Fatal("loading the sign-in page again changed its token")
	}
	resp, _ := s.postForm(c, "/admin/login", url.Values{"csrf": {csrfOf(t, first)}, "apiKey": {azAcmeKey}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/" {
		t.Fatalf("sign in with the first tab's form: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = s.get(c, s.srv.URL+"/admin/login")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/" {
		t.Fatalf("the sign-in page when signed in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// The CSRF token is compared whole: a part of it, or the token with more after it, is
// not the token.
func TestAPartOfTheCSRFTokenIsNotTheToken(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	csrf := csrfOf(t, s.signIn(c, azAcmeKey))
	for _, token := range []string{csrf[:1], csrf[:len(csrf)-1], csrf + "A"} {
		resp, body := s.postForm(c, "/admin/logout", url.Values{"csrf": {token}})
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Form expired") {
			t.Fatalf("sign out with %q for %q: %d", token, csrf, resp.StatusCode)
		}
	}
}

// Signing out removes the session cookie from the browser too, not only refuses it.
func TestSigningOutRemovesTheSessionCookie(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	list := s.signIn(c, azAcmeKey)
	resp, _ := s.postForm(c, "/admin/logout", url.Values{"csrf": {csrfOf(t, list)}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	admin, _ := url.Parse(s.srv.URL + "/admin/")
	for _, ck := range c.Jar.Cookies(admin) {
		if ck.Name == "nr_admin" {
			t.Fatalf("after signing out the browser still holds the session cookie (Set-Cookie %q)", resp.Header.Values("Set-Cookie"))
		}
	}
}

// While the signed-out sessions cannot be read (Postgres out of reach), no session can
// be checked: every page that needs one answers 503 "Try again in a moment"
// (docs/authorizations.md), neither letting the session in nor sending it to sign in
// again, and nothing is changed.
func TestAdminPagesAnswer503WhileTheSignOutsCannotBeRead(t *testing.T) {
	s := newAuthServer(t)
	id := s.createCC("kept")
	c := s.client(true)
	csrf := csrfOf(t, s.signIn(c, azAcmeKey))
	s.sql(`alter table admin_sessions_ended rename to admin_sessions_ended_gone`)
	for _, tc := range []struct {
		method, path string
		form         url.Values
	}{
		{"GET", "/admin/", nil},
		{"GET", "/admin/login", nil},
		{"POST", "/admin/login", url.Values{"csrf": {csrf}, "apiKey": {azGlobexKey}}},
		{"POST", "/admin/authorizations/" + id + "/delete", url.Values{"csrf": {csrf}}},
		{"POST", "/admin/logout", url.Values{"csrf": {csrf}}},
	} {
		var (
			resp *http.Response
			page string
		)
		if tc.method == "GET" {
			resp, page = s.get(c, s.srv.URL+tc.path)
		} else {
			resp, page = s.postForm(c, tc.path, tc.form)
		}
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(page, "Try again in a moment") {
			t.Errorf("%s %s: %d %s, want 503 and a page that asks to try again\n%.600s", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Location"), page)
		}
	}
	s.sql(`alter table admin_sessions_ended_gone rename to admin_sessions_ended`)
	if s.status(id) != "active" {
		t.Fatal("the authorization changed while the sessions could not be checked")
	}
	if _, list := s.get(c, s.srv.URL+"/admin/"); !strings.Contains(list, `id="tenant">acme<`) {
		t.Fatalf("once the sign-outs can be read, the session is acme's again:\n%s", list)
	}
}

// A sign-in refused because its form expired shows the form again with a fresh token,
// one the browser's cookie now holds: sent as shown, that form signs in.
func TestTheSignInFormShownAfterAnExpiredOneSignsIn(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	s.get(c, s.srv.URL+"/admin/login")
	resp, page := s.postForm(c, "/admin/login", url.Values{"csrf": {"from-an-older-form"}, "apiKey": {azAcmeKey}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "The sign-in form expired") {
		t.Fatalf("sign in with a stale token: %d\n%s", resp.StatusCode, page)
	}
	resp, _ = s.postForm(c, "/admin/login", url.Values{"csrf": {csrfOf(t, page)}, "apiKey": {azAcmeKey}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/" {
		t.Fatalf("sign in with the form shown again: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// An API key refused at sign-in (a typo of a real one, say) appears neither on the
// page nor in the log.
func TestAnAPIKeyRefusedAtSignInIsNeitherLoggedNorShown(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	_, page := s.get(c, s.srv.URL+"/admin/login")
	const typo = "acme-api-key-CANARY-9d1f"
	resp, body := s.postForm(c, "/admin/login", url.Values{"csrf": {csrfOf(t, page)}, "apiKey": {typo}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("sign in with a wrong key: %d", resp.StatusCode)
	}
	if strings.Contains(body, typo) {
		t.Fatalf("the sign-in page shows the key typed:\n%s", body)
	}
	if logs := s.logs.String(); !strings.Contains(logs, `"status":401`) || strings.Contains(logs, typo) {
		t.Fatalf("want the refused sign-in logged without its key:\n%s", logs)
	}
}

// A refused add or re-authorization shows its form again with what was typed, except
// the tenant secret: that is never on the page.
func TestARefusedFormDoesNotShowTheSecretTyped(t *testing.T) {
	s := newAuthServer(t)
	id := s.createCC("taken")
	c := s.client(true)
	csrf := csrfOf(t, s.signIn(c, azAcmeKey))
	resp, body := s.postForm(c, "/admin/authorizations", url.Values{"csrf": {csrf}, "kind": {"client-credentials"}, "name": {"taken"},
		"baseUrl": {s.sim.BaseURL()}, "domain": {"acme"}, "tenantId": {"tenant-1"}, "tenantSecret": {azCCSecret}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, `value="taken"`) || strings.Contains(body, azCCSecret) {
		t.Fatalf("refused add: %d, want 409 with the name and without the secret\n%s", resp.StatusCode, body)
	}
	resp, body = s.postForm(c, "/admin/authorizations/"+id+"/reauthorize", url.Values{"csrf": {csrf}, "tenantId": {"tenant-1"}, "tenantSecret": {azNewCCSecret}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "invalid_client") || strings.Contains(body, azNewCCSecret) {
		t.Fatalf("refused re-authorization: %d, want 422 without the secret\n%s", resp.StatusCode, body)
	}
}

// A sign-out that cannot be recorded (Postgres refuses the write), or a sign-in over a
// session that cannot record the first one ended, answers 503 and changes nothing: the
// browser is not told it signed out while a copy of its cookie would still open the
// pages.
func TestASignOutThatCannotBeRecordedAnswers503AndEndsNothing(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	csrf := csrfOf(t, s.signIn(c, azAcmeKey))
	s.sql(`create function refuse_sign_outs() returns trigger language plpgsql as $$ begin raise exception 'sign-outs refused'; end $$`)
	s.sql(`create trigger refuse_sign_outs before insert on admin_sessions_ended for each row execute function refuse_sign_outs()`)
	for _, tc := range []struct {
		path string
		form url.Values
	}{
		{"/admin/logout", url.Values{"csrf": {csrf}}},
		{"/admin/login", url.Values{"csrf": {csrf}, "apiKey": {azGlobexKey}}},
	} {
		resp, page := s.postForm(c, tc.path, tc.form)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(page, "Try again in a moment") {
			t.Errorf("POST %s: %d %s, want 503 and a page that asks to try again\n%.600s", tc.path, resp.StatusCode, resp.Header.Get("Location"), page)
		}
	}
	if _, list := s.get(c, s.srv.URL+"/admin/"); !strings.Contains(list, `id="tenant">acme<`) {
		t.Fatalf("the session is no longer acme's:\n%s", list)
	}
}

// The pages' policy sends forms only to the service (docs/authorizations.md): markup
// slipped into a page cannot post a form, with its CSRF token, elsewhere.
func TestThePagesPolicySendsFormsOnlyToTheService(t *testing.T) {
	s := newAuthServer(t)
	resp, _ := s.get(s.client(true), s.srv.URL+"/admin/login")
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"form-action 'self'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("policy %q, want %s", csp, want)
		}
	}
}

// An admin session lasts the 8 hours docs/authorizations.md promises: the cookie a
// sign-in sets lives that long, no longer.
func TestAnAdminSessionLastsEightHours(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	_, page := s.get(c, s.srv.URL+"/admin/login")
	resp, _ := s.postForm(c, "/admin/login", url.Values{"csrf": {csrfOf(t, page)}, "apiKey": {azAcmeKey}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "nr_admin" {
			if ck.MaxAge != 8*60*60 {
				t.Fatalf("the session cookie lives %d s, want 8 hours", ck.MaxAge)
			}
			return
		}
	}
	t.Fatal("no session cookie after sign-in")
}

// The sign-in form shown again after a wrong key carries the browser's token: the right
// key typed into it signs in.
func TestTheSignInFormShownAfterAWrongKeySignsIn(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	_, page := s.get(c, s.srv.URL+"/admin/login")
	resp, page := s.postForm(c, "/admin/login", url.Values{"csrf": {csrfOf(t, page)}, "apiKey": {"wrong"}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("sign in with a wrong key: %d", resp.StatusCode)
	}
	resp, _ = s.postForm(c, "/admin/login", url.Values{"csrf": {csrfOf(t, page)}, "apiKey": {azAcmeKey}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/" {
		t.Fatalf("sign in with the form shown after the wrong key: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// HEAD answers what GET answers on every page, status, Location and Content-Type, signed
// in or not (RFC 9110 §9.3.2): a signed-out HEAD is sent on to the sign-in as its GET
// is, not refused as a form would be, and the admin pages' own address, the mounted
// router's path, serves it as it serves GET.
func TestHEADAnswersWhatGETDoesOnEveryPage(t *testing.T) {
	s := newAuthServer(t)
	id := s.createCC("head")
	paths := []string{"/admin", "/admin/", "/admin/login", "/admin/authorizations/new", "/admin/authorizations",
		"/admin/authorizations/" + id + "/reauthorize", "/admin/authorizations/" + id + "/delete", "/oauth/callback"}
	signedIn := s.client(true)
	s.signIn(signedIn, azAcmeKey)
	for name, c := range map[string]*http.Client{"signed out": s.client(true), "signed in": signedIn} {
		for _, path := range paths {
			answer := func(method string) string {
				req, _ := http.NewRequest(method, s.srv.URL+path, nil)
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return fmt.Sprintf("%d Location %q Content-Type %q", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Content-Type"))
			}
			if get, head := answer("GET"), answer("HEAD"); head != get {
				t.Errorf("%s, HEAD %s: %s; GET: %s", name, path, head, get)
			}
		}
	}
}

// Two tabs show the sign-in form, with the one token of the browser's signed-out
// session. Signing in on the first gives the session a new token; the second tab's
// form, sent afterwards, must not throw that session away (it did: the browser was
// signed out in both tabs, and the second was told its form had expired).
func TestAdminSecondTabsSignInKeepsTheFirstTabsSession(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	_, tab := s.get(c, s.srv.URL+"/admin/login")
	stale := csrfOf(t, tab)
	s.signIn(c, azAcmeKey) // the first tab

	// The same key: the browser is where the second tab wanted to go.
	resp, _ := s.postForm(c, "/admin/login", url.Values{"csrf": {stale}, "apiKey": {azAcmeKey}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/" {
		t.Fatalf("the second tab's sign-in with the same key: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, list := s.get(c, s.srv.URL+"/admin/"); resp.StatusCode != http.StatusOK || !strings.Contains(list, `id="tenant">acme<`) {
		t.Fatalf("the first tab's session after the second tab's sign-in: %d\n%s", resp.StatusCode, list)
	}

	// Another key: the form asks again, saying who is signed in, and the session stays.
	resp, page := s.postForm(c, "/admin/login", url.Values{"csrf": {stale}, "apiKey": {azGlobexKey}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "already signed in") || !strings.Contains(page, "acme") {
		t.Fatalf("the second tab's sign-in with another key: %d\n%s", resp.StatusCode, page)
	}
	if resp, list := s.get(c, s.srv.URL+"/admin/"); resp.StatusCode != http.StatusOK || !strings.Contains(list, `id="tenant">acme<`) {
		t.Fatalf("the session after a stale sign-in form with another key: %d\n%s", resp.StatusCode, list)
	}
	// The form it shows signs in, over the session, as signing in again does.
	resp, _ = s.postForm(c, "/admin/login", url.Values{"csrf": {csrfOf(t, page)}, "apiKey": {azGlobexKey}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("signing in with the form shown: %d", resp.StatusCode)
	}
	if _, list := s.get(c, s.srv.URL+"/admin/"); !strings.Contains(list, `id="tenant">globex<`) {
		t.Fatalf("not signed in as globex:\n%s", list)
	}
}

// A Webex login that did not complete (refused or canceled at the provider, canceled on
// the confirmation page, expired) leaves a new authorization pending under its name.
// Adding it again finds the name taken; the pages must say what does work: Re-authorize
// on the one in the list starts a new login (they said "start the authorization again",
// which led to the add form and its "already exists").
func TestAdminUnfinishedLoginSaysHowToTryAgain(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	list := s.signIn(c, azAcmeKey)
	add := url.Values{"csrf": {csrfOf(t, list)}, "kind": {"webex-login"}, "name": {"Support"}, "baseUrl": {s.sim.BaseURL()}, "domain": {"acme"}}
	resp, page := s.postForm(c, "/admin/authorizations", add)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="continue"`) {
		t.Fatalf("add: %d\n%s", resp.StatusCode, page)
	}
	// Back from the provider's login (or a second click), the form is sent again.
	resp, page = s.postForm(c, "/admin/authorizations", add)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(page, "already exists") || !strings.Contains(page, "Re-authorize") {
		t.Fatalf("the same add again: %d\n%s", resp.StatusCode, page)
	}
	_, api := s.api("GET", "/v1/authorizations", azAcmeKey, nil)
	id := api["authorizations"].([]any)[0].(map[string]any)["id"].(string)
	// The list, where a person comes back to after a login left halfway (a closed tab),
	// says how to finish it: "waiting for the Webex login" waits for nothing by then.
	if _, list := s.get(c, s.srv.URL+"/admin/"); !strings.Contains(list, "Re-authorize starts the login again") {
		t.Fatalf("the list does not say how to finish a pending login:\n%s", list)
	}

	browser := s.client(false)
	login := func() string { // a new login of Support, from its Re-authorize
		_, form := s.get(c, s.srv.URL+"/admin/authorizations/"+id+"/reauthorize")
		if !strings.Contains(form, "stays pending") || strings.Contains(form, "current tokens") {
			t.Fatalf("the re-authorize page of a pending login speaks of tokens it does not have:\n%s", form)
		}
		resp, page := s.postForm(c, "/admin/authorizations/"+id+"/reauthorize", url.Values{"csrf": {csrfOf(t, form)}})
		m := regexp.MustCompile(`id="continue" href="([^"]+)"`).FindStringSubmatch(page)
		if resp.StatusCode != http.StatusOK || m == nil {
			t.Fatalf("re-authorize the pending login: %d\n%s", resp.StatusCode, page)
		}
		return html.UnescapeString(m[1])
	}
	for _, c := range []struct {
		name     string
		callback func(authorizeURL string) (*http.Response, string)
	}{
		{"refused at the provider", func(au string) (*http.Response, string) {
			u, _ := url.Parse(au)
			return s.get(browser, s.srv.URL+"/oauth/callback?"+url.Values{"state": {u.Query().Get("state")}, "error": {"access_denied"}}.Encode())
		}},
		{"canceled on the confirmation page", func(au string) (*http.Response, string) {
			back, err := engagesim.SignIn(t.Context(), au, "alice", azAlicePassword)
			if err != nil {
				t.Fatal(err)
			}
			return s.finishLogin(browser, back.String(), "cancel")
		}},
		{"expired", func(au string) (*http.Response, string) {
			back, err := engagesim.SignIn(t.Context(), au, "alice", azAlicePassword)
			if err != nil {
				t.Fatal(err)
			}
			s.sql("update oauth_states set expires_at = now() - interval '1 second'")
			return s.get(browser, back.String())
		}},
	} {
		resp, page := c.callback(login())
		if !strings.Contains(page, "Re-authorize") {
			t.Errorf("%s: %d, the page does not say how to try again:\n%s", c.name, resp.StatusCode, page)
		}
	}
	if st := s.status(id); st != "pending" {
		t.Fatalf("status %s", st)
	}
}

// A page that fails for a reason of the service's (500) says the request ID identifies
// it in the logs: the page must show that ID, which the person can only pass on if they
// can read it (it was only in the X-Request-Id header).
func TestAnAdminPageThatFailsShowsItsRequestID(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	s.signIn(c, azAcmeKey)
	s.sql("alter table authorizations rename to authorizations_gone")
	t.Cleanup(func() { s.sql("alter table authorizations_gone rename to authorizations") })
	_, form := s.get(c, s.srv.URL+"/admin/authorizations/new")
	add := url.Values{"csrf": {csrfOf(t, form)}, "kind": {"webex-login"}, "name": {"Support"}, "baseUrl": {s.sim.BaseURL()}, "domain": {"acme"}}
	for what, do := range map[string]func() (*http.Response, string){
		"the list":     func() (*http.Response, string) { return s.get(c, s.srv.URL+"/admin/") },
		"an add":       func() (*http.Response, string) { return s.postForm(c, "/admin/authorizations", add) },
		"the callback": func() (*http.Response, string) { return s.get(c, s.srv.URL+"/oauth/callback?state=s&code=c") },
	} {
		resp, page := do()
		id := resp.Header.Get("X-Request-Id")
		if resp.StatusCode != http.StatusInternalServerError || id == "" || !strings.Contains(page, "request ID") {
			t.Fatalf("%s: %d %q:\n%s", what, resp.StatusCode, id, page)
		}
		if !strings.Contains(page, id) {
			t.Errorf("%s: the page speaks of the request ID but does not show it (%s):\n%s", what, id, page)
		}
	}
}

// A refused add shows again what was typed, in the form it was typed in: the add page
// has two forms, and the other one (the Webex login's, after a refused client
// credentials) must not come back filled with a name and domain nobody typed there.
func TestAdminRefusedAddRefillsOnlyTheFormSent(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	list := s.signIn(c, azAcmeKey)
	resp, page := s.postForm(c, "/admin/authorizations", url.Values{"csrf": {csrfOf(t, list)}, "kind": {"client-credentials"}, "name": {"Standalone"},
		"baseUrl": {s.sim.BaseURL()}, "domain": {"acme"}, "tenantId": {"tenant-1"}, "tenantSecret": {"wrong"}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("refused add: %d", resp.StatusCode)
	}
	// The store's message is a clause; on the page, a sentence.
	for _, want := range []string{`role="alert">The token endpoint refused the credentials`, `id="cc-name" name="name" value="Standalone"`, `id="cc-domain" name="domain" value="acme"`, `id="webex-name" name="name" value=""`, `id="webex-domain" name="domain" value=""`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if t.Failed() {
		t.Log(page)
	}
}

// Sign out, in a tab whose session has already ended (signed out in another tab, or
// expired), has nothing left to do: it goes to the sign-in page, as a sign-out does. It
// answered 403 "Your session ended. Sign in again and repeat what you were doing",
// asking a person who wanted to be signed out to sign in and sign out again.
func TestAdminSignOutOfAnEndedSessionGoesToTheSignInPage(t *testing.T) {
	s := newAuthServer(t)
	c := s.client(true)
	csrf := csrfOf(t, s.signIn(c, azAcmeKey))
	if resp, _ := s.postForm(c, "/admin/logout", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	resp, page := s.postForm(c, "/admin/logout", url.Values{"csrf": {csrf}}) // the other tab
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/login" {
		t.Fatalf("sign out again: %d %s\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	// Other forms of an ended session still say so and change nothing.
	if resp, page := s.postForm(c, "/admin/authorizations", url.Values{"csrf": {csrf}, "kind": {"client-credentials"}, "name": {"x"}}); resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "Sign in again") {
		t.Fatalf("an add after the session ended: %d\n%s", resp.StatusCode, page)
	}
}
