package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

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
	ring, keys, ten, fp := acmeSessionKeys(t)
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

// signOutsFunc answers Ended by calling itself; End records nothing.
type signOutsFunc func(id string) (bool, error)

func (f signOutsFunc) End(context.Context, string, time.Time) error     { return nil }
func (f signOutsFunc) Ended(_ context.Context, id string) (bool, error) { return f(id) }

// sealedSession is the cookie of sess exactly as given (write sets the ID and expiry).
func sealedSession(t *testing.T, ring *secrets.KeyRing, sess adminSession) *http.Request {
	t.Helper()
	plain, err := json.Marshal(sess)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := ring.Encrypt(plain, sessionAAD)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/admin/", nil)
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: base64.RawURLEncoding.EncodeToString(sealed)})
	return r
}

// A sealed session is valid only until its expiry, only with an ID, only while not
// signed out; and when the sign-outs cannot be read, it is not taken as valid.
func TestASealedSessionIsValidOnlyUnexpiredWithAnIDAndNotSignedOut(t *testing.T) {
	ring, keys, ten, fp := acmeSessionKeys(t)
	live := adminSession{ID: "s1", Tenant: ten, Key: fp, CSRF: "csrf", Expiry: time.Now().Add(time.Hour).Unix()}
	notEnded := signOutsFunc(func(string) (bool, error) { return false, nil })
	down := errors.New("database down")
	for _, tc := range []struct {
		name   string
		sess   func(adminSession) adminSession
		ended  signOutsFunc
		valid  bool
		failed bool
	}{
		{"live", func(s adminSession) adminSession { return s }, notEnded, true, false},
		{"expired a second ago", func(s adminSession) adminSession { s.Expiry = time.Now().Unix() - 1; return s }, notEnded, false, false},
		{"without an ID", func(s adminSession) adminSession { s.ID = ""; return s }, notEnded, false, false},
		{"signed out", func(s adminSession) adminSession { return s }, func(id string) (bool, error) { return id == "s1", nil }, false, false},
		{"sign-outs unreadable", func(s adminSession) adminSession { return s }, func(string) (bool, error) { return false, down }, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &sessions{keys: ring, api: keys, ended: tc.ended}
			sess, ok, err := s.read(sealedSession(t, ring, tc.sess(live)))
			if ok != tc.valid || (err != nil) != tc.failed || (!ok && sess.Tenant != "") {
				t.Fatalf("read: %+v %v %v, want valid %v, failed %v", sess, ok, err, tc.valid, tc.failed)
			}
		})
	}
}

// A session cookie lives as long as the session, no longer.
func TestTheSessionCookieExpiresWithTheSession(t *testing.T) {
	ring, err := secrets.ParseKeyRing("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	if err != nil {
		t.Fatal(err)
	}
	s := &sessions{keys: ring}
	rec := httptest.NewRecorder()
	if err := s.write(rec, adminSession{CSRF: "csrf"}); err != nil {
		t.Fatal(err)
	}
	sess, ok := s.open(sealedCookieRequest(rec.Result().Cookies()[0]))
	if !ok || sess.Expiry > time.Now().Add(sessionTTL).Unix() || sess.Expiry < time.Now().Add(sessionTTL-time.Minute).Unix() {
		t.Fatalf("session %+v %v, want it to expire in %v", sess, ok, sessionTTL)
	}
}

func sealedCookieRequest(c *http.Cookie) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/admin/", nil)
	r.AddCookie(c)
	return r
}

// recordedSignOuts keeps what End was given.
type recordedSignOuts struct {
	id      string
	expires time.Time
}

func (r *recordedSignOuts) End(_ context.Context, id string, expires time.Time) error {
	r.id, r.expires = id, expires
	return nil
}
func (r *recordedSignOuts) Ended(context.Context, string) (bool, error) { return false, nil }

// Signing out is recorded until the session would have expired anyway, not shorter: a
// record swept early would let a copy of the cookie in again.
func TestASignOutIsKeptUntilTheSessionWouldHaveExpired(t *testing.T) {
	rec := &recordedSignOuts{}
	s := &sessions{ended: rec}
	expiry := time.Now().Add(7 * time.Hour).Unix()
	if err := s.end(context.Background(), httptest.NewRecorder(), adminSession{ID: "s1", Tenant: "acme", CSRF: "c", Expiry: expiry}); err != nil {
		t.Fatal(err)
	}
	if rec.id != "s1" || !rec.expires.Equal(time.Unix(expiry, 0)) {
		t.Fatalf("recorded %q until %v, want s1 until %v", rec.id, rec.expires, time.Unix(expiry, 0))
	}
}

// acmeSessionKeys is a key ring of one all-zero key and the API keys of one tenant, acme
// ("acme-key"), with that key's tenant and fingerprint: what a session is sealed and
// checked with.
func acmeSessionKeys(t *testing.T) (*secrets.KeyRing, tenant.Keys, tenant.ID, string) {
	t.Helper()
	ring, err := secrets.ParseKeyRing("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := tenant.ParseKeys("acme:" + tenant.HashKey("acme-key"))
	if err != nil {
		t.Fatal(err)
	}
	ten, fp, _ := keys.LookupKey("acme-key")
	return ring, keys, ten, fp
}
