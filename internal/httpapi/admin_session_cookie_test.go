package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

type noSignOuts struct{}

func (noSignOuts) End(context.Context, string, time.Time) error { return nil }
func (noSignOuts) Ended(context.Context, string) (bool, error)  { return false, nil }

// A session cookie is a session only when it opens with the service's key ring, under
// its own associated data, before its expiry, with a CSRF token, an ID and a key the
// tenant still has. Anything else a browser could send (expired, altered, sealed for
// another purpose, truncated, garbage) is no session, never an error.
func TestOnlyAnIntactUnexpiredSessionCookieIsASession(t *testing.T) {
	t.Parallel()
	ring, keys, _, fingerprint := acmeSessionKeys(t)
	s := &sessions{keys: ring, api: keys, ended: noSignOuts{}}
	seal := func(sess adminSession, aad []byte) string {
		plain, _ := json.Marshal(sess)
		ct, err := ring.Encrypt(plain, aad)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(ct)
	}
	future, past := time.Now().Add(time.Hour).Unix(), time.Now().Add(-time.Second).Unix()
	good := adminSession{ID: "s1", Tenant: "acme", Key: fingerprint, CSRF: "c", Expiry: future}
	valid := seal(good, sessionAAD)
	altered := []byte(valid)
	altered[len(altered)/2] ^= 1
	with := func(f func(*adminSession)) adminSession { c := good; f(&c); return c }
	for name, value := range map[string]string{
		"expired":                      seal(with(func(s *adminSession) { s.Expiry = past }), sessionAAD),
		"expiring now":                 seal(with(func(s *adminSession) { s.Expiry = time.Now().Unix() }), sessionAAD),
		"sealed for another purpose":   seal(good, []byte("oauth_confirm/x")),
		"altered":                      string(altered),
		"truncated":                    valid[:len(valid)-4],
		"not base64":                   "!!!" + valid,
		"empty":                        "",
		"garbage":                      "AAAA",
		"without a CSRF token":         seal(with(func(s *adminSession) { s.CSRF = "" }), sessionAAD),
		"signed in without an ID":      seal(with(func(s *adminSession) { s.ID = "" }), sessionAAD),
		"of a key the tenant lost":     seal(with(func(s *adminSession) { s.Key = "gone" }), sessionAAD),
		"of a tenant that is not here": seal(with(func(s *adminSession) { s.Tenant = "globex" }), sessionAAD),
	} {
		r := httptest.NewRequest(http.MethodGet, "/admin/", nil)
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: value})
		if sess, ok, err := s.read(r); ok || err != nil || sess.Tenant != "" {
			t.Errorf("a cookie %s: %+v %v %v, want no session", name, sess, ok, err)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/admin/", nil)
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: valid})
	if sess, ok, err := s.read(r); !ok || err != nil || sess.Tenant != "acme" {
		t.Fatalf("the intact cookie: %+v %v %v, want acme's session", sess, ok, err)
	}
}
