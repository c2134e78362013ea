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
		sess, ok := (&sessions{keys: ring, api: api}).read(r)
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
