package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"

	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// The admin pages' session: a cookie sealed with the key ring (AES-256-GCM, bound to
// its own associated data), holding the tenant, the CSRF token and an expiry. It never
// holds the API key, and a cookie from another deployment (another key ring) does not
// open. Before sign-in the same cookie carries only a CSRF token, for the sign-in form.
// A signed-in session has an ID; signing out records it (internal/adminsessions), so a
// copy of the cookie is refused afterwards on every replica.
//
// Over https the cookie is "__Host-nr_admin", on path /: browsers keep such a cookie from
// being set by any other host (a sibling subdomain) or over plain http, so nobody can
// plant a session of their own tenant (a sealed cookie copied from their own sign-in) in
// an administrator's browser, who would then add credentials to that tenant. The prefix
// needs Secure and path /; over http (development) the cookie is "nr_admin" on /admin.
const (
	sessionCookie       = "nr_admin"
	secureSessionCookie = "__Host-nr_admin"
	sessionTTL          = 8 * time.Hour
)

var sessionAAD = []byte("noderuntime/admin-session/v1")

type adminSession struct {
	ID     string    `json:"i,omitempty"` // a signed-in session's, for signing it out
	Tenant tenant.ID `json:"t,omitempty"`
	Key    string    `json:"k,omitempty"` // which of the tenant's API keys signed in (tenant.Keys.LookupKey)
	CSRF   string    `json:"c"`
	Expiry int64     `json:"e"`
}

type sessions struct {
	keys   *secrets.KeyRing
	api    tenant.Keys
	ended  SignOuts
	secure bool
}

// SignOuts remembers the admin sessions that were signed out (internal/adminsessions).
type SignOuts interface {
	End(ctx context.Context, id string, expires time.Time) error
	Ended(ctx context.Context, id string) (bool, error)
}

func newCSRFToken() string { return rand.Text() }

// cookie returns the session cookie's name and path.
func (s *sessions) cookie() (name, path string) {
	if s.secure {
		return secureSessionCookie, "/"
	}
	return sessionCookie, "/admin"
}

// read returns the request's session, if it has a valid one. A session signed in with an
// API key that is no longer configured (rotated out, or its tenant removed) is not
// valid: rotating a key ends the sessions it opened. Nor is a signed-in session that was
// signed out, or one without an ID. err is a failure to read the sessions signed out:
// whether the session is valid is then unknown.
func (s *sessions) read(r *http.Request) (sess adminSession, ok bool, err error) {
	sess, ok = s.open(r)
	if !ok || sess.Tenant == "" {
		return sess, ok, nil
	}
	if sess.ID == "" {
		return adminSession{}, false, nil
	}
	ended, err := s.ended.Ended(r.Context(), sess.ID)
	if err != nil {
		return adminSession{}, false, err
	}
	if ended {
		return adminSession{}, false, nil
	}
	return sess, true, nil
}

// open unseals the request's session cookie and checks its expiry and API key.
func (s *sessions) open(r *http.Request) (adminSession, bool) {
	name, _ := s.cookie()
	c, err := r.Cookie(name)
	if err != nil {
		return adminSession{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return adminSession{}, false
	}
	plain, err := s.keys.Decrypt(raw, sessionAAD)
	if err != nil {
		return adminSession{}, false
	}
	var sess adminSession
	if json.Unmarshal(plain, &sess) != nil || sess.CSRF == "" || time.Now().Unix() >= sess.Expiry {
		return adminSession{}, false
	}
	if sess.Tenant != "" && !s.api.HasKey(sess.Tenant, sess.Key) {
		return adminSession{}, false
	}
	return sess, true
}

// write sets the session cookie: HttpOnly, SameSite=Strict; over https Secure and
// __Host- prefixed, else scoped to /admin.
func (s *sessions) write(w http.ResponseWriter, sess adminSession) error {
	if sess.Tenant != "" && sess.ID == "" {
		sess.ID = rand.Text()
	}
	sess.Expiry = time.Now().Add(sessionTTL).Unix()
	plain, err := json.Marshal(sess)
	if err != nil {
		return err
	}
	sealed, err := s.keys.Encrypt(plain, sessionAAD)
	if err != nil {
		return err
	}
	name, path := s.cookie()
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: base64.RawURLEncoding.EncodeToString(sealed), Path: path,
		MaxAge: int(sessionTTL.Seconds()), HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode,
	})
	return nil
}

// end signs sess out and clears its cookie.
func (s *sessions) end(ctx context.Context, w http.ResponseWriter, sess adminSession) error {
	if err := s.forget(ctx, sess); err != nil {
		return err
	}
	s.clear(w)
	return nil
}

// forget records sess as signed out: its cookie, and any copy of it, opens no page again.
func (s *sessions) forget(ctx context.Context, sess adminSession) error {
	return s.ended.End(ctx, sess.ID, time.Unix(sess.Expiry, 0))
}

func (s *sessions) clear(w http.ResponseWriter) {
	name, path := s.cookie()
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: path, MaxAge: -1, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode})
}

// csrfOK checks a form's token against the session's, in constant time.
func csrfOK(sess adminSession, r *http.Request) bool {
	got := r.PostForm.Get("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRF)) == 1
}
