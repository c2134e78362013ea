package authstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/noderuntime/noderuntime/internal/redact"
	"github.com/noderuntime/noderuntime/internal/secrets"
)

// tokens is what a token endpoint granted.
type tokens struct {
	access, refresh secrets.Value
	expiry          time.Time // zero: the provider gave no lifetime
}

// providerError is a failed call of a token endpoint. Its message names the OAuth
// error or the kind of failure, never a body, a token or a secret.
type providerError struct {
	// final: the provider refused the grant or the client (invalid_grant,
	// invalid_client, unauthorized_client). Trying again cannot help: someone must
	// re-authorize, or fix the service's Webex client (finalFor says which).
	final  bool
	status int    // HTTP status, 0 when no answer came
	code   string // RFC 6749 error code, when the provider sent one
	desc   string // its error_description, scrubbed and shortened
	kind   string // timeout, unreachable, bad_answer or http
	cause  error  // context errors only, so errors.Is works
}

func (e *providerError) Error() string {
	var b strings.Builder
	b.WriteString("token endpoint: ")
	switch {
	case e.code != "":
		b.WriteString(e.code)
		if e.status != 0 {
			fmt.Fprintf(&b, " (HTTP %d)", e.status)
		}
	case e.status != 0:
		fmt.Fprintf(&b, "HTTP %d", e.status)
	default:
		b.WriteString(e.kind)
	}
	return b.String()
}

func (e *providerError) Unwrap() error { return e.cause }

// finalCodes are the OAuth errors after which only a new authorization helps.
var finalCodes = map[string]bool{"invalid_grant": true, "invalid_client": true, "unauthorized_client": true}

// finalFor reports whether the refusal is the authorization's own, so that only a new
// authorization helps. For client credentials the client is the authorization's tenant
// ID and secret. A Webex login's client is this service's integration (WEBEX_CLIENT_ID,
// WEBEX_CLIENT_SECRET), the same for every login: refusing it is a configuration fault,
// and only invalid_grant (the login's refresh token is dead) is the login's own.
// Marking every login for re-authorization over a wrong secret would throw away
// refresh tokens that still work.
func (e *providerError) finalFor(k Kind) bool {
	if k == KindClientCredentials {
		return e.final
	}
	return e.code == "invalid_grant"
}

// clientRefused reports whether the provider refused the OAuth client itself.
func (e *providerError) clientRefused() bool {
	return e.final && e.code != "invalid_grant"
}

// classify turns an oauth2 error into a providerError; scrub is removed from any text
// the provider sent back.
func classify(err error, scrub ...secrets.Value) *providerError {
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok {
		pe := &providerError{kind: "http", code: re.ErrorCode, desc: shorten(re.ErrorDescription, scrub)}
		if re.Response != nil {
			pe.status = re.Response.StatusCode
		}
		pe.final = finalCodes[re.ErrorCode] || (re.ErrorCode == "" && pe.status == http.StatusUnauthorized)
		// The code is scrubbed as the description is: a secret of letters and digits
		// looks like a code, and an endpoint that echoes its request may send it as one.
		// A redacted code is no code ("[" is not allowed in one).
		if !validCode(shorten(pe.code, scrub)) {
			pe.code = ""
		}
		return pe
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &providerError{kind: "timeout", cause: context.DeadlineExceeded}
	case errors.Is(err, context.Canceled):
		return &providerError{kind: "canceled", cause: context.Canceled}
	}
	var ne net.Error
	if errors.As(err, &ne) {
		if ne.Timeout() {
			return &providerError{kind: "timeout", cause: context.DeadlineExceeded}
		}
		return &providerError{kind: "unreachable"}
	}
	return &providerError{kind: "bad_answer"}
}

// validCode keeps an OAuth error code only if it looks like one (RFC 6749 allows
// %x20-21 / %x23-5B / %x5D-7E; we keep the usual letters and underscores).
func validCode(c string) bool {
	if len(c) > 64 {
		return false
	}
	for _, r := range c {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}

// A secret shorter than this is found inside ordinary words ("s" in "wrong secret"), and
// redacting it there would show where its letters are: a text that holds one is dropped
// whole.
const minSecretRedactedInPlace = 8

func shorten(s string, scrub []secrets.Value) string {
	for _, v := range scrub {
		if v.IsZero() {
			continue
		}
		// As sent, as the form body encodes it, and as an endpoint that quotes or dumps
		// its request may write it: JSON-escaped, percent-encoded by another encoder, in
		// base64 (redact.Secret).
		r := string(redact.Secret([]byte(s), v.Reveal()))
		if len(v.Reveal()) < minSecretRedactedInPlace && r != s {
			return "[redacted]"
		}
		s = r
	}
	if len(s) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// fromOAuth is what a token endpoint granted. A lifetime over before it was received
// (expires_in negative) is no lifetime, as expires_in 0 or absent is: the token is
// used until Engage rejects it. Taken as said, every call would refresh it, on every
// replica, each spending the rotating refresh token; and refused as a bad answer, the
// refresh token the provider has just rotated would be lost.
func fromOAuth(t *oauth2.Token) (tokens, error) {
	if t == nil || t.AccessToken == "" {
		return tokens{}, &providerError{kind: "bad_answer"}
	}
	expiry := t.Expiry
	if !expiry.IsZero() && !expiry.After(time.Now()) {
		expiry = time.Time{}
	}
	return tokens{access: secrets.New(t.AccessToken), refresh: secrets.New(t.RefreshToken), expiry: expiry}, nil
}

// withClient makes oauth2 use the store's HTTP client.
func (s *Store) withClient(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, s.hc)
}

// webexConfig is the OAuth client of the Webex login. The client authenticates with
// HTTP Basic, named explicitly: auto-detection would repeat a failed refresh with the
// other style, spending a rotating refresh token twice.
func (s *Store) webexConfig() *oauth2.Config {
	return &oauth2.Config{
		ClientID:     s.webex.ClientID,
		ClientSecret: s.webex.ClientSecret.Reveal(),
		Endpoint: oauth2.Endpoint{
			AuthURL:   s.webex.AuthorizeURL,
			TokenURL:  s.webex.TokenURL,
			AuthStyle: oauth2.AuthStyleInHeader,
		},
		RedirectURL: s.webex.RedirectURL,
		Scopes:      s.webex.Scopes,
	}
}

// clientCredentialsTokenURL is where standalone Engage grants client-credentials tokens
// for a base URL (ENGAGE.md §5, our decision).
func clientCredentialsTokenURL(baseURL string) string { return baseURL + "/oauth/token" }

// fetchClientCredentials asks {base}/oauth/token for a token. The callers check the
// allowlist first and say why; this check is the last line, so the tenant secret never
// goes anywhere else.
func (s *Store) fetchClientCredentials(ctx context.Context, baseURL, tenantID string, secret secrets.Value) (tokens, error) {
	if !s.allowedBase(baseURL) {
		return tokens{}, errorf(ErrBaseURLNotAllowed, "the Engage base URL "+quote(baseURL)+" is not on the allowlist (ENGAGE_ALLOWED_BASE_URLS)")
	}
	ctx, cancel := context.WithTimeout(ctx, s.refreshTimeout)
	defer cancel()
	conf := clientcredentials.Config{
		ClientID:     tenantID,
		ClientSecret: secret.Reveal(),
		TokenURL:     clientCredentialsTokenURL(baseURL),
		AuthStyle:    oauth2.AuthStyleInHeader,
	}
	t, err := conf.Token(s.withClient(ctx))
	if err != nil {
		return tokens{}, classify(err, secret, basicCredentials(tenantID, secret))
	}
	return fromOAuth(t)
}

// refreshWebex spends refresh token rt for a new pair. A provider that sends no new
// refresh token leaves the old one valid: it is kept.
func (s *Store) refreshWebex(ctx context.Context, rt secrets.Value) (tokens, error) {
	if !s.webex.Enabled() {
		return tokens{}, errors.New("the Webex login is not configured (WEBEX_CLIENT_ID): cannot refresh")
	}
	if rt.IsZero() {
		return tokens{}, &providerError{final: true, kind: "no_refresh_token", code: "invalid_grant"}
	}
	ctx, cancel := context.WithTimeout(ctx, s.refreshTimeout)
	defer cancel()
	t, err := s.webexConfig().TokenSource(s.withClient(ctx), &oauth2.Token{RefreshToken: rt.Reveal()}).Token()
	if err != nil {
		return tokens{}, classify(err, rt, s.webex.ClientSecret, basicCredentials(s.webex.ClientID, s.webex.ClientSecret))
	}
	out, err := fromOAuth(t)
	if err == nil && out.refresh.IsZero() {
		out.refresh = rt
	}
	return out, err
}

// exchangeCode finishes a Webex login: the code and the PKCE verifier for tokens.
func (s *Store) exchangeCode(ctx context.Context, code string, verifier secrets.Value) (tokens, error) {
	ctx, cancel := context.WithTimeout(ctx, s.refreshTimeout)
	defer cancel()
	t, err := s.webexConfig().Exchange(s.withClient(ctx), code, oauth2.VerifierOption(verifier.Reveal()))
	if err != nil {
		// The code is scrubbed too: it is sent in the same form body as the verifier.
		return tokens{}, classify(err, secrets.New(code), verifier, s.webex.ClientSecret, basicCredentials(s.webex.ClientID, s.webex.ClientSecret))
	}
	return fromOAuth(t)
}

// basicCredentials is the Authorization header's credentials oauth2 sends for a client
// (AuthStyleInHeader): what a token endpoint that echoes its request could send back.
func basicCredentials(id string, secret secrets.Value) secrets.Value {
	if secret.IsZero() {
		return secrets.Value{}
	}
	return secrets.New(base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret.Reveal()))))
}
