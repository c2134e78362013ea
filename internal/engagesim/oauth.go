package engagesim

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Grant kinds, as counted by Grants.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
)

// authzRequest is an authorization request, as read from the query (GET) or from the
// login form's hidden fields (POST).
type authzRequest struct {
	ClientID            string
	RedirectURI         string
	ResponseType        string
	State               string
	Scope               string
	CodeChallenge       string
	CodeChallengeMethod string
}

func readAuthzRequest(v url.Values) authzRequest {
	return authzRequest{
		ClientID:            v.Get("client_id"),
		RedirectURI:         v.Get("redirect_uri"),
		ResponseType:        v.Get("response_type"),
		State:               v.Get("state"),
		Scope:               v.Get("scope"),
		CodeChallenge:       v.Get("code_challenge"),
		CodeChallengeMethod: v.Get("code_challenge_method"),
	}
}

// checkAuthz validates an authorization request in RFC 6749 §4.1.2.1 order: a bad
// client or redirect URI is shown to the user (never redirected to), anything else goes
// back to the client's redirect URI. It reports false after answering.
func (s *Sim) checkAuthz(w http.ResponseWriter, req *authzRequest) bool {
	s.auth.mu.Lock()
	client, ok := s.auth.clients[req.ClientID]
	s.auth.mu.Unlock()
	if !ok {
		errorPage(w, http.StatusBadRequest, "invalid_request", "unknown client_id")
		return false
	}
	// redirect_uri is required (as Webex requires it), and matched exactly.
	if !slices.Contains(client.RedirectURIs, req.RedirectURI) {
		errorPage(w, http.StatusBadRequest, "invalid_request", "redirect_uri is missing or does not match a registered one")
		return false
	}
	var code, desc string
	switch {
	case req.ResponseType != "code":
		code, desc = "unsupported_response_type", "response_type must be code"
	case req.State == "":
		code, desc = "invalid_request", "state is required"
	case req.CodeChallenge == "":
		code, desc = "invalid_request", "PKCE code_challenge is required"
	case req.CodeChallengeMethod != "S256":
		code, desc = "invalid_request", "code_challenge_method must be S256"
	case !validChallenge(req.CodeChallenge):
		code, desc = "invalid_request", "code_challenge is not a base64url SHA-256"
	default:
		return true
	}
	redirectBack(w, req, url.Values{"error": {code}, "error_description": {desc}})
	return false
}

func validChallenge(c string) bool {
	b, err := base64.RawURLEncoding.DecodeString(c)
	return err == nil && len(b) == sha256.Size
}

// validVerifier checks RFC 7636 §4.1: 43 to 128 unreserved characters.
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for _, c := range v {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', strings.ContainsRune("-._~", c):
		default:
			return false
		}
	}
	return true
}

func redirectBack(w http.ResponseWriter, req *authzRequest, params url.Values) {
	u, err := url.Parse(req.RedirectURI)
	if err != nil {
		errorPage(w, http.StatusBadRequest, "invalid_request", "redirect_uri is not a URL")
		return
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	if req.State != "" {
		q.Set("state", req.State)
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Location", u.String())
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusFound)
}

// handleAuthorize shows the login form (GET) and signs in (POST).
func (s *Sim) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		req := readAuthzRequest(r.URL.Query())
		if !s.checkAuthz(w, &req) {
			return
		}
		loginPage(w, http.StatusOK, &req, "")
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			errorPage(w, http.StatusBadRequest, "invalid_request", "unreadable form")
			return
		}
		req := readAuthzRequest(r.PostForm)
		if !s.checkAuthz(w, &req) {
			return
		}
		if r.PostForm.Get("action") == "cancel" {
			redirectBack(w, &req, url.Values{"error": {"access_denied"}, "error_description": {"the user canceled the login"}})
			return
		}
		code, ok := s.login(&req, r.PostForm.Get("username"), r.PostForm.Get("password"))
		if !ok {
			loginPage(w, http.StatusUnauthorized, &req, "Invalid username or password.")
			return
		}
		redirectBack(w, &req, url.Values{"code": {code}})
	default:
		w.Header().Set("Allow", "GET, POST")
		errorPage(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
	}
}

func (s *Sim) login(req *authzRequest, username, password string) (string, bool) {
	a := &s.auth
	a.mu.Lock()
	defer a.mu.Unlock()
	u, ok := a.users[username]
	if !ok || !secretEqual(u.Password, password) {
		return "", false
	}
	code := newToken("simcode_")
	a.codes[code] = &authCode{
		clientID:    req.ClientID,
		redirectURI: req.RedirectURI,
		challenge:   req.CodeChallenge,
		scope:       req.Scope,
		sub:         subject{kind: subjectUser, name: u.Username, gen: u.gen},
		domain:      u.Domain,
		expires:     s.now().Add(s.codeTTL),
	}
	return code, true
}

// tokenResponse is RFC 6749 §5.1.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// oauthError is RFC 6749 §5.2.
type oauthError struct {
	status int
	Code   string `json:"error"`
	Desc   string `json:"error_description,omitempty"`
}

func (e *oauthError) write(w http.ResponseWriter, basicUsed bool) {
	if e.Code == "invalid_grant" || e.Code == "invalid_request" || e.Code == "unsupported_grant_type" || e.Code == "unauthorized_client" {
		e.status = http.StatusBadRequest
	}
	if e.Code == "invalid_client" {
		e.status = http.StatusUnauthorized
		if basicUsed {
			w.Header().Set("WWW-Authenticate", `Basic realm="engagesim"`)
		}
	}
	if e.status == 0 {
		e.status = http.StatusBadRequest
	}
	writeJSONNoStore(w, e.status, e)
}

func writeJSONNoStore(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, status, v)
}

func oerr(code, desc string) *oauthError { return &oauthError{Code: code, Desc: desc} }

// clientAuth reads client_secret_basic or client_secret_post credentials (RFC 6749
// §2.3.1). Using both at once is invalid_request.
func clientAuth(r *http.Request) (id, secret string, basic bool, e *oauthError) {
	bid, bsecret, hasBasic := r.BasicAuth()
	pid, psecret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	switch {
	case hasBasic && psecret != "":
		return "", "", true, oerr("invalid_request", "use one client authentication method")
	case hasBasic:
		var err1, err2 error
		id, err1 = url.QueryUnescape(bid)
		secret, err2 = url.QueryUnescape(bsecret)
		if err1 != nil || err2 != nil {
			return "", "", true, oerr("invalid_client", "malformed basic credentials")
		}
		if pid != "" && pid != id {
			return "", "", true, oerr("invalid_request", "client_id differs from the authenticated client")
		}
		return id, secret, true, nil
	case pid != "" && psecret != "":
		return pid, psecret, false, nil
	default:
		return "", "", false, oerr("invalid_client", "client authentication required")
	}
}

// readTokenForm applies the token operation's counting and faults and parses the form.
func (s *Sim) readTokenForm(w http.ResponseWriter, r *http.Request) bool {
	s.counters.call(OpToken)
	if !s.applyTokenFaults(w, r, OpToken) {
		return false
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeJSONNoStore(w, http.StatusMethodNotAllowed, oerr("invalid_request", "POST required"))
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oerr("invalid_request", "unreadable form").write(w, false)
		return false
	}
	return true
}

// handleToken is the Webex login token endpoint.
func (s *Sim) handleToken(w http.ResponseWriter, r *http.Request) {
	if !s.readTokenForm(w, r) {
		return
	}
	id, secret, basic, e := clientAuth(r)
	if e == nil {
		s.auth.mu.Lock()
		c, ok := s.auth.clients[id]
		s.auth.mu.Unlock()
		if !ok || !secretEqual(c.Secret, secret) {
			e = oerr("invalid_client", "unknown client or wrong secret")
		}
	}
	if e != nil {
		e.write(w, basic)
		return
	}
	var resp *tokenResponse
	switch gt := r.PostForm.Get("grant_type"); gt {
	case GrantAuthorizationCode:
		resp, e = s.exchangeCode(id, r.PostForm)
	case GrantRefreshToken:
		resp, e = s.refreshGrant(id, r.PostForm)
	case GrantClientCredentials:
		e = oerr("unauthorized_client", "this client may not use client_credentials here; tenants use {base}/oauth/token")
	case "":
		e = oerr("invalid_request", "grant_type is required")
	default:
		e = oerr("unsupported_grant_type", "unsupported grant_type "+gt)
	}
	if e != nil {
		if e.Code == "invalid_grant" {
			s.counters.invalidGrant()
		}
		e.write(w, basic)
		return
	}
	writeJSONNoStore(w, http.StatusOK, resp)
}

func (s *Sim) exchangeCode(clientID string, form url.Values) (*tokenResponse, *oauthError) {
	code, verifier := form.Get("code"), form.Get("code_verifier")
	if code == "" {
		return nil, oerr("invalid_request", "code is required")
	}
	if verifier == "" {
		return nil, oerr("invalid_request", "code_verifier is required")
	}
	now := s.now()
	a := &s.auth
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.codes[code]
	switch {
	case !ok || c.clientID != clientID:
		return nil, oerr("invalid_grant", "unknown authorization code")
	case c.used:
		// RFC 6749 §4.1.2: a replayed code revokes what it issued.
		if c.fam != nil {
			c.fam.revoked = true
		}
		return nil, oerr("invalid_grant", "authorization code already used")
	case !now.Before(c.expires):
		delete(a.codes, code)
		return nil, oerr("invalid_grant", "authorization code expired")
	case form.Get("redirect_uri") != c.redirectURI:
		return nil, oerr("invalid_grant", "redirect_uri does not match the authorization request")
	case !validVerifier(verifier) || !challengeMatches(verifier, c.challenge):
		return nil, oerr("invalid_grant", "code_verifier does not match the code_challenge")
	case !a.current(c.sub):
		return nil, oerr("invalid_grant", "the user's credentials changed")
	}
	c.used = true
	c.fam = &family{}
	resp := s.issuePairLocked(c.sub, c.domain, clientID, c.scope, c.fam, now)
	s.counters.grant(GrantAuthorizationCode)
	return resp, nil
}

func challengeMatches(verifier, challenge string) bool {
	sum := sha256.Sum256([]byte(verifier))
	return secretEqual(base64.RawURLEncoding.EncodeToString(sum[:]), challenge)
}

func (s *Sim) refreshGrant(clientID string, form url.Values) (*tokenResponse, *oauthError) {
	rt := form.Get("refresh_token")
	if rt == "" {
		return nil, oerr("invalid_request", "refresh_token is required")
	}
	now := s.now()
	a := &s.auth
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.refresh[rt]
	switch {
	case !ok || t.clientID != clientID:
		return nil, oerr("invalid_grant", "unknown refresh token")
	case t.used:
		// Rotation's point: a replayed refresh token means two parties hold the family,
		// so all of it dies (access tokens too).
		t.fam.revoked = true
		return nil, oerr("invalid_grant", "refresh token already used; token family revoked")
	case t.fam.revoked:
		return nil, oerr("invalid_grant", "refresh token revoked")
	case !t.expires.IsZero() && !now.Before(t.expires):
		return nil, oerr("invalid_grant", "refresh token expired")
	case !a.current(t.sub):
		return nil, oerr("invalid_grant", "the user's credentials changed")
	}
	if sc := form.Get("scope"); sc != "" && !scopeSubset(sc, t.scope) {
		return nil, oerr("invalid_scope", "scope exceeds the original grant")
	}
	resp := s.issuePairLocked(t.sub, t.domain, clientID, t.scope, t.fam, now)
	if s.noRotation {
		delete(a.refresh, resp.RefreshToken) // t stays valid; the answer names no new one
		resp.RefreshToken = ""
	} else {
		t.used = true
	}
	s.counters.grant(GrantRefreshToken)
	return resp, nil
}

func scopeSubset(asked, granted string) bool {
	have := strings.Fields(granted)
	for _, sc := range strings.Fields(asked) {
		if !slices.Contains(have, sc) {
			return false
		}
	}
	return true
}

// issuePairLocked issues an access and a refresh token in fam. Caller holds s.auth.mu.
func (s *Sim) issuePairLocked(sub subject, domain, clientID, scope string, fam *family, now time.Time) *tokenResponse {
	a := &s.auth
	at, rt := newToken("simat_"), newToken("simrt_")
	a.access[at] = &accessToken{sub: sub, domain: domain, fam: fam, expires: now.Add(s.accessTTL)}
	r := &refreshToken{sub: sub, domain: domain, clientID: clientID, scope: scope, fam: fam}
	if s.refreshTTL > 0 {
		r.expires = now.Add(s.refreshTTL)
	}
	a.refresh[rt] = r
	a.sweepLocked(now)
	return &tokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: expiresIn(s.accessTTL), RefreshToken: rt, Scope: scope}
}

// handleClientCredentials is the standalone token endpoint at {base}/oauth/token.
func (s *Sim) handleClientCredentials(w http.ResponseWriter, r *http.Request) {
	if !s.readTokenForm(w, r) {
		return
	}
	id, secret, basic, e := clientAuth(r)
	var tn Tenant
	var sub subject
	if e == nil {
		s.auth.mu.Lock()
		t, ok := s.auth.tenants[id]
		if ok && secretEqual(t.Secret, secret) {
			tn, sub = t.Tenant, subject{kind: subjectTenant, name: t.ID, gen: t.gen}
		} else {
			e = oerr("invalid_client", "unknown tenant or wrong secret")
		}
		s.auth.mu.Unlock()
	}
	if e == nil {
		switch gt := r.PostForm.Get("grant_type"); gt {
		case GrantClientCredentials:
		case "":
			e = oerr("invalid_request", "grant_type is required")
		default:
			e = oerr("unsupported_grant_type", "only client_credentials is supported here")
		}
	}
	if e != nil {
		e.write(w, basic)
		return
	}
	tok := s.issueAccess(sub, tn.Domain, &family{}, s.ccTTL)
	s.counters.grant(GrantClientCredentials)
	writeJSONNoStore(w, http.StatusOK, &tokenResponse{
		AccessToken: tok, TokenType: "Bearer", ExpiresIn: expiresIn(s.ccTTL), Scope: r.PostForm.Get("scope"),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away: nothing to do
}

var pages = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Webex login (engagesim)</title>
<style>body{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto}label,input,button{display:block;width:100%;margin:.4rem 0}.error{color:#b00020}</style>
</head><body>
<h1>Sign in</h1>
<p>Engage simulator: sign in to let <strong>{{.ClientID}}</strong> act on your Engage domain.</p>
{{with .Error}}<p class="error" id="error" role="alert">{{.}}</p>{{end}}
<form method="post" action="/oauth/authorize">
<input type="hidden" name="client_id" value="{{.ClientID}}">
<input type="hidden" name="redirect_uri" value="{{.RedirectURI}}">
<input type="hidden" name="response_type" value="{{.ResponseType}}">
<input type="hidden" name="state" value="{{.State}}">
<input type="hidden" name="scope" value="{{.Scope}}">
<input type="hidden" name="code_challenge" value="{{.CodeChallenge}}">
<input type="hidden" name="code_challenge_method" value="{{.CodeChallengeMethod}}">
<label for="username">Username</label><input id="username" name="username" autocomplete="username" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="login" type="submit" name="action" value="login">Sign in</button>
<button id="cancel" type="submit" name="action" value="cancel" formnovalidate>Cancel</button>
</form></body></html>
{{define "error"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorization error (engagesim)</title></head><body>
<h1>Authorization error</h1>
<p><code id="error">{{.Code}}</code>: <span id="error_description">{{.Desc}}</span></p>
</body></html>
{{end}}`))

type loginData struct {
	*authzRequest
	Error string
}

func loginPage(w http.ResponseWriter, status int, req *authzRequest, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_ = pages.Execute(w, loginData{authzRequest: req, Error: msg})
}

func errorPage(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = pages.ExecuteTemplate(w, "error", oauthError{Code: code, Desc: desc})
}
