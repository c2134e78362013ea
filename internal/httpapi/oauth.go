package httpapi

import (
	"log/slog"
	"net/http"

	"github.com/noderuntime/noderuntime/internal/authstore"
)

// callback is GET /oauth/callback, where the provider sends the user back after the
// Webex login. It needs no session: the single-use state names the authorization. (Nor
// does it get one: the admin session's cookie is scoped to /admin and SameSite=Strict,
// and this is a cross-site navigation from the provider.) It shows a confirmation page,
// or an error page that says what to do; a failure changes nothing.
func (a *adminPages) callback(w http.ResponseWriter, r *http.Request) {
	var sess adminSession // the page links back to /admin, which asks for a sign-in if needed
	done, err := a.d.Store.CompleteLogin(r.Context(), r.URL.Query())
	if err != nil {
		status, msg := a.storeFailure(r, err) // 500 for anything unexpected
		headline := "The login could not be completed"
		switch authstore.CodeOf(err) {
		case authstore.ErrStateUnknown:
			status, headline = http.StatusBadRequest, "This login link is unknown or was already used"
		case authstore.ErrStateExpired:
			status, headline = http.StatusBadRequest, "This login expired"
		case authstore.ErrLoginDenied:
			status, headline = http.StatusBadRequest, "The login was refused"
		case authstore.ErrExchangeFailed:
			status = http.StatusBadGateway
		}
		a.message(w, r, status, sess, headline, msg, "Nothing was changed.")
		return
	}
	AnnotateLog(r.Context(), slog.String("authorizationId", done.ID))
	verb := "added"
	if done.Reauthorized {
		verb = "re-authorized"
	}
	a.message(w, r, http.StatusOK, sess, "Authorization "+done.Name+" "+verb,
		"Status: "+string(done.Status)+". Nodes that name it can use it now.", "Authorization ID: "+done.ID)
}
