package httpapi

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/noderuntime/noderuntime/internal/authstore"
)

// callback is GET /oauth/callback, where the provider sends the user back after the
// Webex login. It needs no session: the single-use state names the authorization. (Nor
// does it get one: the admin session's cookie is scoped to /admin and SameSite=Strict,
// and this is a cross-site navigation from the provider.)
//
// It stores nothing yet: it shows whose authorization the login would complete (tenant,
// name, Engage domain) and asks to confirm, since a tenant could send its login link to
// someone of another organisation. A refusal from the provider ends the login at once.
func (a *adminPages) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("error") != "" {
		a.completeLogin(w, r, q)
		return
	}
	login, err := a.d.Store.PendingLogin(r.Context(), q.Get("state"))
	if err != nil {
		a.loginFailed(w, r, err)
		return
	}
	if q.Get("code") == "" {
		// Nothing to confirm; the state stays unspent for the real answer.
		a.message(w, r, http.StatusBadRequest, adminSession{}, "The login could not be completed", "The provider sent no authorization code.", "Nothing was changed.")
		return
	}
	verb := "add"
	if login.Reauthorization {
		verb = "re-authorize"
	}
	sealed, err := a.sealCode(q.Get("state"), q.Get("code"))
	if err != nil {
		a.loginFailed(w, r, err)
		return
	}
	headline := "Connect your Webex login?"
	a.render(w, r, http.StatusOK, "confirm_login", pageData{Title: headline, Headline: headline,
		Lines: []string{
			"Connecting will " + verb + " the authorization " + login.Name + " of the noderuntime tenant " + string(login.Tenant) + ", for the Engage domain " + login.Domain + ": its flows will act on Engage with your login.",
			"Connect only if you started this, or someone you trust in that tenant asked you to. Otherwise cancel: nothing is stored.",
		},
		Form: formValues{State: q.Get("state"), Code: sealed}})
}

// sealCode encrypts the login's code for the confirmation form, bound to its state: the
// page never holds the code in clear (no response of the service does), and a sealed
// code works with its own state only.
func (a *adminPages) sealCode(state, code string) (string, error) {
	ct, err := a.d.Keys.Encrypt([]byte(code), confirmAAD(state))
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(ct), nil
}

// openCode returns the code sealCode sealed for state, and false for a form that was
// altered or belongs to another login.
func (a *adminPages) openCode(state, sealed string) (string, bool) {
	ct, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil {
		return "", false
	}
	code, err := a.d.Keys.Decrypt(ct, confirmAAD(state))
	if err != nil || len(code) == 0 {
		return "", false
	}
	return string(code), true
}

func confirmAAD(state string) []byte {
	h := sha256.Sum256([]byte(state))
	return append([]byte("oauth_confirm/"), hex.EncodeToString(h[:])...)
}

// confirmLogin is POST /oauth/callback, the confirmation form: Connect stores the login
// (spending the state), Cancel spends the state and stores nothing. Forging it needs the
// login's code and state, which only the browser that signed in has.
func (a *adminPages) confirmLogin(w http.ResponseWriter, r *http.Request) {
	if why, ok := readForm(w, r); !ok {
		a.message(w, r, http.StatusBadRequest, adminSession{}, "The login could not be completed", why, "Nothing was changed.")
		return
	}
	q := url.Values{"state": {r.PostForm.Get("state")}}
	switch r.PostForm.Get("action") {
	case "connect":
		code, ok := a.openCode(r.PostForm.Get("state"), r.PostForm.Get("code"))
		if !ok {
			// Not spending the state: whoever altered the form cannot end the real login.
			a.message(w, r, http.StatusBadRequest, adminSession{}, "The login could not be completed", "This confirmation form was altered or belongs to another login.", "Nothing was changed.")
			return
		}
		q.Set("code", code)
		a.completeLogin(w, r, q)
		return
	case "cancel":
	default:
		a.message(w, r, http.StatusBadRequest, adminSession{}, "The login could not be completed", "The form must say connect or cancel.", "Nothing was changed.")
		return
	}
	q.Set("error", "access_denied") // spends the state, stores nothing
	if _, err := a.d.Store.CompleteLogin(r.Context(), q); authstore.CodeOf(err) != authstore.ErrLoginDenied {
		a.loginFailed(w, r, err) // the state was unknown or spent already
		return
	}
	a.message(w, r, http.StatusOK, adminSession{}, "Login canceled", "This login link can no longer be used.", tryAgain)
}

// completeLogin stores the login q describes and shows a confirmation page, or an error
// page that says what to do; a failure changes nothing.
func (a *adminPages) completeLogin(w http.ResponseWriter, r *http.Request, q url.Values) {
	done, err := a.d.Store.CompleteLogin(r.Context(), q)
	if err != nil {
		a.loginFailed(w, r, err)
		return
	}
	AnnotateLog(r.Context(), slog.String("authorizationId", done.ID))
	verb := "added"
	if done.Reauthorized {
		verb = "re-authorized"
	}
	a.message(w, r, http.StatusOK, adminSession{}, "Authorization "+done.Name+" "+verb,
		"Status: "+string(done.Status)+". Nodes that name it can use it now.", "Authorization ID: "+done.ID)
}

// tryAgain says how to start a login again once one did not complete: its authorization
// is in the list (a new one pending), so adding it again would find the name taken.
const tryAgain = "Nothing was changed: the authorization keeps its status (a new one stays pending). To try again, choose Re-authorize on it in the list of authorizations: it starts a new login."

func (a *adminPages) loginFailed(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := a.storeFailure(r, err) // 500 for anything unexpected
	headline := "The login could not be completed"
	footer := "Nothing was changed."
	switch authstore.CodeOf(err) {
	case authstore.ErrStateUnknown:
		status, headline = http.StatusBadRequest, "This login link is unknown or was already used"
		// Most often a second click on Connect, or a reload: the first one stored it.
		footer = "Nothing was changed. If you connected with this link a moment ago, that login is stored: the authorization's status in the list shows it."
	case authstore.ErrStateExpired:
		status, headline, footer = http.StatusBadRequest, "This login expired", tryAgain
	case authstore.ErrLoginDenied:
		status, headline, footer = http.StatusBadRequest, "The login was refused", tryAgain
	case authstore.ErrExchangeFailed:
		status, footer = http.StatusBadGateway, tryAgain
	}
	a.message(w, r, status, adminSession{}, headline, msg, footer)
}
