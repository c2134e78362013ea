package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// Rotating a tenant's API key out of the configuration ends the admin sessions it
// opened; sessions opened with the tenant's other, still configured key go on.
func TestRotatingAnAPIKeyOutEndsTheAdminSessionsItOpened(t *testing.T) {
	ring, err := secrets.ParseKeyRing("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	if err != nil {
		t.Fatal(err)
	}
	keys := func(spec string) tenant.Keys {
		k, err := tenant.ParseKeys(spec)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	old, next := "acme-old-key", "acme-next-key"
	both := keys("acme:" + tenant.HashKey(old) + ",acme:" + tenant.HashKey(next))
	onlyNext := keys("acme:" + tenant.HashKey(next))

	signIn := func(key string) *http.Cookie {
		t.Helper()
		ten, fp, ok := both.LookupKey(key)
		if !ok {
			t.Fatalf("%s is not configured", key)
		}
		rec := httptest.NewRecorder()
		if err := (&sessions{keys: ring, api: both}).write(rec, adminSession{Tenant: ten, Key: fp, CSRF: "csrf"}); err != nil {
			t.Fatal(err)
		}
		return rec.Result().Cookies()[0]
	}
	read := func(api tenant.Keys, c *http.Cookie) bool {
		r := httptest.NewRequest(http.MethodGet, "/admin/", nil)
		r.AddCookie(c)
		sess, ok := (&sessions{keys: ring, api: api}).open(r)
		return ok && sess.Tenant == "acme"
	}
	withOld, withNext := signIn(old), signIn(next)
	if !read(both, withOld) || !read(both, withNext) {
		t.Fatal("a session of a configured key is not valid")
	}
	if read(onlyNext, withOld) {
		t.Fatal("a session opened with a key rotated out is still valid")
	}
	if !read(onlyNext, withNext) {
		t.Fatal("a session of the key still configured ended with the rotation")
	}
	if read(keys("globex:"+tenant.HashKey(next)), withNext) {
		t.Fatal("a session is valid once its tenant is gone")
	}
}

// Over https the session cookie carries the __Host- prefix (Secure, path /, no Domain),
// which browsers refuse to take from another host or over http; a cookie under the
// plain name, which another host could set, is no session there. Over http (development)
// the cookie is the plain one, on /admin.
func TestTheSessionCookieOverHTTPSCannotBeSetByAnotherHost(t *testing.T) {
	ring, err := secrets.ParseKeyRing("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := tenant.ParseKeys("acme:" + tenant.HashKey("acme-key"))
	if err != nil {
		t.Fatal(err)
	}
	ten, fp, _ := keys.LookupKey("acme-key")
	for _, tc := range []struct {
		secure     bool
		name, path string
	}{
		{true, "__Host-nr_admin", "/"},
		{false, "nr_admin", "/admin"},
	} {
		s := &sessions{keys: ring, api: keys, secure: tc.secure}
		rec := httptest.NewRecorder()
		if err := s.write(rec, adminSession{Tenant: ten, Key: fp, CSRF: "csrf"}); err != nil {
			t.Fatal(err)
		}
		c := rec.Result().Cookies()[0]
		if c.Name != tc.name || c.Path != tc.path || c.Domain != "" || c.Secure != tc.secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
			t.Fatalf("secure=%v: cookie %+v, want %s on %s", tc.secure, c, tc.name, tc.path)
		}
		for _, name := range []string{"__Host-nr_admin", "nr_admin"} {
			req := httptest.NewRequest("GET", "/admin/", nil)
			req.AddCookie(&http.Cookie{Name: name, Value: c.Value})
			if _, ok := s.open(req); ok != (name == tc.name) {
				t.Errorf("secure=%v: the session under %s read %v", tc.secure, name, ok)
			}
		}
		rec = httptest.NewRecorder()
		s.clear(rec)
		if c := rec.Result().Cookies()[0]; c.Name != tc.name || c.Path != tc.path || c.MaxAge >= 0 {
			t.Errorf("secure=%v: sign-out cookie %+v, want %s on %s removed", tc.secure, c, tc.name, tc.path)
		}
	}
}
