package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

//go:embed admin_templates/*.html
var adminTemplateFS embed.FS

// adminTemplates holds one template set per page, each with the layout. They are parsed
// on the first admin page a replica serves, not at start: parsed templates are
// thousands of pointer-holding nodes that every garbage collection would mark again,
// and a replica that only runs executions never needs them. TestAdminTemplatesParse
// parses them all, so a broken one fails the tests, not a page.
var adminTemplates = sync.OnceValue(func() map[string]*template.Template {
	pages := map[string]*template.Template{}
	for _, name := range []string{"login", "list", "new", "reauthorize", "delete", "message", "confirm_login", "to_login"} {
		pages[name] = template.Must(template.New(name).ParseFS(adminTemplateFS, "admin_templates/layout.html", "admin_templates/"+name+".html"))
	}
	return pages
})

// PagesDeps is what the HTML side needs: the admin pages under /admin/ and the OAuth
// callback.
type PagesDeps struct {
	Store   *authstore.Store
	Keys    *secrets.KeyRing // seals the admin session cookie
	APIKeys tenant.Keys      // a tenant signs in with one of its API keys
	Logger  *slog.Logger
	// AllowedBaseURLs are offered as the Engage regions of a new authorization.
	AllowedBaseURLs []string
	WebexEnabled    bool
	// SecureCookies marks the session cookie Secure (the service is served over https).
	SecureCookies bool
	// SignOuts keeps the signed-out sessions, so a copy of their cookie is refused.
	SignOuts SignOuts
}

// MountAuthorizationPages serves the admin pages (list, add, re-authorize, delete; a
// tenant signs in with its API key) and /oauth/callback, where the Webex login comes
// back and is confirmed. Server-rendered HTML, no JavaScript; every form carries a CSRF token.
func MountAuthorizationPages(r chi.Router, d PagesDeps) {
	a := &adminPages{d: d, sessions: &sessions{keys: d.Keys, api: d.APIKeys, ended: d.SignOuts, secure: d.SecureCookies}}
	a.csp = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
	root := r
	// A person reads these pages: an address that is not one, or a method the page does
	// not take (a bookmarked sign-out), answers a page too, not a problem document.
	r.Route("/oauth", func(r chi.Router) {
		r.Use(a.protect)
		r.NotFound(a.noSuchPage)
		r.MethodNotAllowed(a.wrongMethod(root))
		r.Get("/callback", a.callback)
		r.Post("/callback", a.confirmLogin)
	})
	r.Route("/admin", func(r chi.Router) {
		r.Use(a.protect)
		r.NotFound(a.noSuchPage)
		r.MethodNotAllowed(a.wrongMethod(root))
		r.Get("/login", a.loginForm)
		r.Post("/login", a.login)
		r.Post("/logout", a.signedIn(a.logout))
		r.Get("/", a.signedIn(a.list))
		r.Get("/authorizations/new", a.signedIn(a.newForm))
		// A refused add is shown at /admin/authorizations; opening that address again
		// leads back to the form.
		r.Get("/authorizations", a.signedIn(func(w http.ResponseWriter, r *http.Request, _ adminSession) {
			http.Redirect(w, r, "/admin/authorizations/new", http.StatusSeeOther)
		}))
		r.Post("/authorizations", a.signedIn(a.create))
		r.Get("/authorizations/{id}/reauthorize", a.signedIn(a.reauthorizeForm))
		r.Post("/authorizations/{id}/reauthorize", a.signedIn(a.reauthorize))
		r.Get("/authorizations/{id}/delete", a.signedIn(a.deleteForm))
		r.Post("/authorizations/{id}/delete", a.signedIn(a.delete))
	})
}

func (a *adminPages) noSuchPage(w http.ResponseWriter, r *http.Request) {
	a.message(w, r, http.StatusNotFound, adminSession{}, "No such page", "There is no page at this address.")
}

// wrongMethod answers a method the page does not take, with the Allow header of the
// router's own 405 (root is the service's router, for the methods of the path).
func (a *adminPages) wrongMethod(root chi.Routes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allowedMethods(root, r))
		a.message(w, r, http.StatusMethodNotAllowed, adminSession{}, "This page cannot be opened this way",
			"The page does not take a "+r.Method+" request: open it from a link or a form of these pages.", "Nothing was changed.")
	}
}

type adminPages struct {
	d        PagesDeps
	sessions *sessions
	csp      string
}

// pageData is what every page template sees; each page uses the fields it needs.
type pageData struct {
	Title, Headline string
	Lines           []string
	Tenant          tenant.ID
	CSRF            string
	Notice, Error   string
	Authorizations  []authstore.Authorization
	Authorization   authstore.Authorization
	Form            formValues
	Bases           baseOptions
	WebexEnabled    bool
	Forward         string // where the page sends the browser on at once (the Webex login)
}

type formValues struct {
	Kind                            string // of the add form sent: the one filled again
	Name, Domain, TenantID, BaseURL string
	State, Code                     string // the OAuth callback's, carried by its confirmation form
}

type baseOption struct {
	URL, Label string
	Selected   bool
}

type baseOptions []baseOption

// For is the options of the add page's form of kind: only the form that was sent keeps
// its choice.
func (b baseOptions) For(f formValues, kind string) baseOptions {
	if f.Kind == kind {
		return b
	}
	out := make(baseOptions, len(b))
	for i, o := range b {
		o.Selected = false
		out[i] = o
	}
	return out
}

// protect gives every answer under /admin and /oauth, pages and redirects alike (a 303
// carries a small HTML body too), the browser protections: not kept, not framed, its
// address not sent on (the callback's holds a login code), and the pages' CSP.
func (a *adminPages) protect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", a.csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

func (a *adminPages) render(w http.ResponseWriter, r *http.Request, status int, page string, data pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := adminTemplates()[page].ExecuteTemplate(w, "layout", data); err != nil {
		a.d.Logger.ErrorContext(r.Context(), "render admin page", slog.String("page", page), slog.String("error", err.Error()))
	}
}

func (a *adminPages) message(w http.ResponseWriter, r *http.Request, status int, sess adminSession, headline string, lines ...string) {
	a.render(w, r, status, "message", pageData{Title: headline, Headline: headline, Lines: lines, Tenant: sess.Tenant, CSRF: sess.CSRF})
}

// readForm parses a form body of at most 64 KiB; when it cannot, it says why, for the
// page.
func readForm(w http.ResponseWriter, r *http.Request) (why string, ok bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	err := r.ParseForm()
	if err == nil {
		return "", true
	}
	if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
		return "The form is larger than 64 KiB.", false
	}
	return "The form could not be read.", false
}

type signedInHandler func(w http.ResponseWriter, r *http.Request, sess adminSession)

// signedIn lets a request through only with a tenant's session, and a POST only with
// the session's CSRF token.
func (a *adminPages) signedIn(next signedInHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, ok, err := a.sessions.read(r)
		if err != nil {
			a.sessionsUnreadable(w, r, err)
			return
		}
		if !ok || sess.Tenant == "" {
			// A GET (or HEAD), or a sign-out (the session ended already: in another tab,
			// or it expired), goes to sign in; another form says it changed nothing.
			if r.Method == http.MethodGet || r.Method == http.MethodHead || r.URL.Path == "/admin/logout" {
				http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
				return
			}
			a.message(w, r, http.StatusForbidden, adminSession{}, "Signed out", "Your session ended. Sign in again and repeat what you were doing.")
			return
		}
		if r.Method == http.MethodPost {
			if why, ok := readForm(w, r); !ok {
				a.message(w, r, http.StatusBadRequest, sess, "Unreadable form", why, "Nothing was changed.")
				return
			}
			if !csrfOK(sess, r) {
				a.message(w, r, http.StatusForbidden, sess, "Form expired", "This form is not from your current session. Go back, reload the page and try again.")
				return
			}
		}
		AnnotateLog(r.Context(), slog.String("tenant", string(sess.Tenant)))
		next(w, r, sess)
	}
}

func (a *adminPages) loginForm(w http.ResponseWriter, r *http.Request) {
	sess, ok, err := a.sessions.read(r)
	if err != nil {
		a.sessionsUnreadable(w, r, err)
		return
	}
	if ok && sess.Tenant != "" {
		http.Redirect(w, r, "/admin/", http.StatusSeeOther)
		return
	}
	if !ok {
		sess = adminSession{CSRF: newCSRFToken()}
		if err := a.sessions.write(w, sess); err != nil {
			a.failure(w, r, sess, err)
			return
		}
	}
	a.render(w, r, http.StatusOK, "login", pageData{Title: "Sign in", CSRF: sess.CSRF})
}

func (a *adminPages) login(w http.ResponseWriter, r *http.Request) {
	sess, ok, err := a.sessions.read(r)
	if err != nil {
		a.sessionsUnreadable(w, r, err)
		return
	}
	why, read := readForm(w, r)
	if read && ok && sess.Tenant != "" && !csrfOK(sess, r) {
		// A sign-in form shown before this browser signed in, in another tab: its token
		// is the signed-out session's. The session stays; the same key goes to the list,
		// another one is asked for again on a form of this session.
		if t, key, known := a.d.APIKeys.LookupKey(r.PostForm.Get("apiKey")); known && t == sess.Tenant && key == sess.Key {
			http.Redirect(w, r, "/admin/", http.StatusSeeOther)
			return
		}
		a.render(w, r, http.StatusForbidden, "login", pageData{Title: "Sign in", CSRF: sess.CSRF,
			Error: "This browser is already signed in, as tenant " + string(sess.Tenant) + ", on another page. Sign in again to switch, or go to the authorizations."})
		return
	}
	if !read || !ok || !csrfOK(sess, r) {
		fresh := adminSession{CSRF: newCSRFToken()}
		_ = a.sessions.write(w, fresh)
		msg := "The sign-in form expired. Please try again."
		if !read {
			msg = why + " Please try again."
		}
		a.render(w, r, http.StatusForbidden, "login", pageData{Title: "Sign in", CSRF: fresh.CSRF, Error: msg})
		return
	}
	t, key, ok := a.d.APIKeys.LookupKey(r.PostForm.Get("apiKey"))
	if !ok {
		w.Header().Set("WWW-Authenticate", bearerChallenge)
		a.render(w, r, http.StatusUnauthorized, "login", pageData{Title: "Sign in", CSRF: sess.CSRF, Error: "That API key is not valid."})
		return
	}
	// Signing in over a signed-in session (another tenant's key, say) ends that one, as
	// signing out would: a copy of its cookie opens nothing afterwards.
	if sess.Tenant != "" {
		if err := a.sessions.forget(r.Context(), sess); err != nil {
			a.sessionsUnreadable(w, r, err)
			return
		}
	}
	// A new CSRF token with the new identity, so a token seen before sign-in is useless.
	if err := a.sessions.write(w, adminSession{Tenant: t, Key: key, CSRF: newCSRFToken()}); err != nil {
		a.failure(w, r, sess, err)
		return
	}
	AnnotateLog(r.Context(), slog.String("tenant", string(t)))
	http.Redirect(w, r, "/admin/", http.StatusSeeOther)
}

func (a *adminPages) logout(w http.ResponseWriter, r *http.Request, sess adminSession) {
	if err := a.sessions.end(r.Context(), w, sess); err != nil {
		a.sessionsUnreadable(w, r, err)
		return
	}
	http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
}

// sessionsUnreadable answers a failure to read or record the signed-out sessions: the
// database is out of reach, and nothing was done.
func (a *adminPages) sessionsUnreadable(w http.ResponseWriter, r *http.Request, err error) {
	a.d.Logger.ErrorContext(r.Context(), "admin sessions unavailable", slog.String("requestId", RequestID(r.Context())), slog.String("error", err.Error()))
	a.message(w, r, http.StatusServiceUnavailable, adminSession{}, "Try again in a moment",
		"The service cannot reach its database, so it cannot check your session. Nothing was changed.")
}

// noticeURL is the list page showing a notice about the authorization name. The notice
// is signed for the session, so a link made elsewhere cannot put its own words
// ("Authorization <any text> deleted.") on the page.
func noticeURL(sess adminSession, notice, name string) string {
	return "/admin/?" + url.Values{"notice": {notice}, "name": {name}, "sig": {noticeSig(sess, notice, name)}}.Encode()
}

func noticeSig(sess adminSession, notice, name string) string {
	m := hmac.New(sha256.New, []byte("admin notice\x00"+sess.CSRF))
	m.Write([]byte(notice + "\x00" + name))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// notices are the confirmations the list page shows after a redirect.
var notices = map[string]string{
	"added":        "Authorization %s added.",
	"reauthorized": "Authorization %s re-authorized.",
	"deleted":      "Authorization %s deleted.",
}

func (a *adminPages) list(w http.ResponseWriter, r *http.Request, sess adminSession) {
	list, err := a.d.Store.List(r.Context(), sess.Tenant)
	if err != nil {
		a.failure(w, r, sess, err)
		return
	}
	data := pageData{Title: "Authorizations", Tenant: sess.Tenant, CSRF: sess.CSRF, Authorizations: list}
	q := r.URL.Query()
	if n, ok := notices[q.Get("notice")]; ok && hmac.Equal([]byte(q.Get("sig")), []byte(noticeSig(sess, q.Get("notice"), q.Get("name")))) {
		data.Notice = strings.Replace(n, "%s", q.Get("name"), 1)
	}
	a.render(w, r, http.StatusOK, "list", data)
}

func (a *adminPages) bases(selected string) baseOptions {
	var out baseOptions
	for _, u := range a.d.AllowedBaseURLs {
		label := u
		for _, region := range authstore.Regions() {
			if doc, _ := authstore.RegionBaseURL(region); doc == u {
				label = region + " — " + u
			}
		}
		out = append(out, baseOption{URL: u, Label: label, Selected: u == selected})
	}
	return out
}

func (a *adminPages) newForm(w http.ResponseWriter, r *http.Request, sess adminSession) {
	a.render(w, r, http.StatusOK, "new", pageData{Title: "Add an authorization", Tenant: sess.Tenant, CSRF: sess.CSRF, Bases: a.bases(""), WebexEnabled: a.d.WebexEnabled})
}

func (a *adminPages) create(w http.ResponseWriter, r *http.Request, sess adminSession) {
	f := r.PostForm
	form := formValues{Kind: f.Get("kind"), Name: f.Get("name"), Domain: f.Get("domain"), TenantID: f.Get("tenantId"), BaseURL: f.Get("baseUrl")}
	secret := secrets.New(f.Get("tenantSecret"))
	started, err := a.d.Store.Create(r.Context(), sess.Tenant, authstore.ActorAdmin, authstore.CreateRequest{
		Name: form.Name, Kind: authstore.Kind(f.Get("kind")), BaseURL: form.BaseURL, Domain: form.Domain,
		TenantID: form.TenantID, TenantSecret: secret,
	})
	if err != nil {
		// The form comes back filled in, but never with the secret pasted into a field.
		for _, v := range []*string{&form.Name, &form.Domain, &form.TenantID, &form.BaseURL} {
			if authstore.HoldsSecret(*v, secret) {
				*v = ""
			}
		}
		status, msg := a.storeFailure(r, err)
		if authstore.CodeOf(err) == authstore.ErrConflict {
			// Most often the same add sent again (back from the Webex login, a second
			// click): the first one is in the list, pending.
			msg += " If you sent this form a moment ago (twice, or again after going back), that one is it. Otherwise choose another name, or use Re-authorize (a Webex login signs in again) or Delete on that one in the list."
		}
		a.render(w, r, status, "new", pageData{Title: "Add an authorization", Tenant: sess.Tenant, CSRF: sess.CSRF,
			Error: msg, Form: form, Bases: a.bases(form.BaseURL), WebexEnabled: a.d.WebexEnabled})
		return
	}
	a.afterStart(w, r, sess, started, "added")
}

// afterStart sends the browser on after an add or re-authorize: to the Webex login when
// one is needed, else back to the list with a notice.
func (a *adminPages) afterStart(w http.ResponseWriter, r *http.Request, sess adminSession, started authstore.Started, notice string) {
	AnnotateLog(r.Context(), slog.String("authorizationId", started.ID))
	if started.AuthorizeURL != "" {
		// A page that goes on to the login, not a redirect: a form's navigation is held
		// to form-action on every redirect, and the authorize endpoint may send the
		// browser on to hosts of its own (Webex's identity broker) that no policy here
		// can name.
		headline := "Continue to the Webex login"
		a.render(w, r, http.StatusOK, "to_login", pageData{Title: headline, Headline: headline, Tenant: sess.Tenant, CSRF: sess.CSRF,
			Forward: started.AuthorizeURL})
		return
	}
	http.Redirect(w, r, noticeURL(sess, notice, started.Name), http.StatusSeeOther)
}

func (a *adminPages) reauthorizeForm(w http.ResponseWriter, r *http.Request, sess adminSession) {
	auth, err := a.d.Store.Get(r.Context(), sess.Tenant, pathParam(r, "id"))
	if err != nil {
		a.failure(w, r, sess, err)
		return
	}
	a.render(w, r, http.StatusOK, "reauthorize", pageData{Title: "Re-authorize " + auth.Name, Tenant: sess.Tenant, CSRF: sess.CSRF, Authorization: auth,
		Form: formValues{TenantID: auth.TenantID}})
}

func (a *adminPages) reauthorize(w http.ResponseWriter, r *http.Request, sess adminSession) {
	id := pathParam(r, "id")
	secret := secrets.New(r.PostForm.Get("tenantSecret"))
	started, err := a.d.Store.Reauthorize(r.Context(), sess.Tenant, authstore.ActorAdmin, id, authstore.ReauthorizeRequest{
		TenantID: r.PostForm.Get("tenantId"), TenantSecret: secret,
	})
	if err != nil {
		if authstore.CodeOf(err) == authstore.ErrNotFound {
			a.failure(w, r, sess, err)
			return
		}
		auth, gerr := a.d.Store.Get(r.Context(), sess.Tenant, id)
		if gerr != nil {
			a.failure(w, r, sess, gerr)
			return
		}
		// The form shows the tenant ID that was typed, not the stored one: sent again as
		// shown, the next try must not pair a new secret with the old ID.
		form := formValues{TenantID: r.PostForm.Get("tenantId")}
		if ae, _ := errors.AsType[*authstore.Error](err); authstore.HoldsSecret(form.TenantID, secret) || ae != nil && ae.SecretIn == "tenantId" {
			form.TenantID = "" // never the secret (given, or the stored one) pasted into it
		}
		if strings.TrimSpace(form.TenantID) == "" {
			form.TenantID = auth.TenantID
		}
		status, msg := a.storeFailure(r, err)
		a.render(w, r, status, "reauthorize", pageData{Title: "Re-authorize " + auth.Name, Tenant: sess.Tenant, CSRF: sess.CSRF, Authorization: auth, Error: msg, Form: form})
		return
	}
	a.afterStart(w, r, sess, started, "reauthorized")
}

func (a *adminPages) deleteForm(w http.ResponseWriter, r *http.Request, sess adminSession) {
	auth, err := a.d.Store.Get(r.Context(), sess.Tenant, pathParam(r, "id"))
	if err != nil {
		a.failure(w, r, sess, err)
		return
	}
	a.render(w, r, http.StatusOK, "delete", pageData{Title: "Delete " + auth.Name, Tenant: sess.Tenant, CSRF: sess.CSRF, Authorization: auth})
}

func (a *adminPages) delete(w http.ResponseWriter, r *http.Request, sess adminSession) {
	id := pathParam(r, "id")
	auth, err := a.d.Store.Get(r.Context(), sess.Tenant, id)
	if err == nil {
		err = a.d.Store.Delete(r.Context(), sess.Tenant, authstore.ActorAdmin, id)
	}
	if err != nil {
		a.failure(w, r, sess, err)
		return
	}
	AnnotateLog(r.Context(), slog.String("authorizationId", auth.ID))
	http.Redirect(w, r, noticeURL(sess, "deleted", auth.Name), http.StatusSeeOther)
}

// storeFailure turns a store error into a status and a message for the page, and names
// the store's code (or the problem's) on the access-log line, as problems do.
func (a *adminPages) storeFailure(r *http.Request, err error) (int, string) {
	p := authorizationProblem(r, a.d.Logger, err)
	code := string(p.Code)
	if c := authstore.CodeOf(err); c != "" {
		code = string(c)
	}
	AnnotateLog(r.Context(), slog.String("errorCode", code))
	// The problem's detail is a clause ("the login was not completed: …"); on a page it
	// is a sentence.
	msg := p.Detail
	if first, size := utf8.DecodeRuneInString(msg); size > 0 {
		msg = string(unicode.ToUpper(first)) + msg[size:] + "."
	}
	if p.Status == http.StatusInternalServerError {
		// The message sends the reader to the logs with the request's ID, which is
		// otherwise only in a response header.
		msg += " Request ID: " + RequestID(r.Context())
	}
	return p.Status, msg
}

func (a *adminPages) failure(w http.ResponseWriter, r *http.Request, sess adminSession, err error) {
	status, msg := a.storeFailure(r, err)
	headline := "Something went wrong"
	if authstore.CodeOf(err) == authstore.ErrNotFound {
		headline, msg = "Not found", "There is no such authorization (it may have been deleted)."
	}
	a.message(w, r, status, sess, headline, msg)
}
