package authstore

import (
	"errors"

	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// ErrorCode classifies a failure of a management call (create, re-authorize, delete, the
// login callback). The HTTP edge maps each to a status; the codes are stable.
type ErrorCode string

const (
	// ErrInvalid: the request is incomplete or malformed (422).
	ErrInvalid ErrorCode = "invalid"
	// ErrBaseURLNotAllowed: the region or base URL is not on ENGAGE_ALLOWED_BASE_URLS
	// (422); nothing was sent there.
	ErrBaseURLNotAllowed ErrorCode = "base_url_not_allowed"
	// ErrWebexDisabled: the Webex login kind is not configured (422).
	ErrWebexDisabled ErrorCode = "webex_login_disabled"
	// ErrConflict: the tenant already has an authorization of that name (409).
	ErrConflict ErrorCode = "conflict"
	// ErrNotFound: no such authorization for this tenant (404).
	ErrNotFound ErrorCode = "not_found"
	// ErrProviderRejected: the token endpoint refused the credentials (422); its OAuth
	// error is in ProviderError and ProviderDescription.
	ErrProviderRejected ErrorCode = "provider_rejected"
	// ErrProviderUnavailable: the token endpoint failed or did not answer in time (502).
	ErrProviderUnavailable ErrorCode = "provider_unavailable"

	// The login callback's failures; each leaves the authorization as it was.
	ErrStateUnknown   ErrorCode = "login_state_unknown"   // never issued, already used, or its authorization was deleted
	ErrStateExpired   ErrorCode = "login_state_expired"   // older than the state lifetime
	ErrLoginDenied    ErrorCode = "login_denied"          // the provider redirected back with an OAuth error
	ErrExchangeFailed ErrorCode = "login_exchange_failed" // the code did not exchange for tokens
)

// Error is the failure of a management call. Message is safe to show to the caller; it
// never holds a secret.
type Error struct {
	Code    ErrorCode
	Message string
	// ProviderError and ProviderDescription are the OAuth error of the token endpoint or
	// of the login redirect, when there was one.
	ProviderError       string
	ProviderDescription string
	// SecretIn names the field of the request that held the tenant secret (given, or
	// the stored one): a form must not show that field back as it was typed.
	SecretIn string
}

func (e *Error) Error() string { return "authstore: " + string(e.Code) + ": " + e.Message }

// CodeOf returns the ErrorCode of err, or "" when err is not an *Error.
func CodeOf(err error) ErrorCode {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return ""
}

func errorf(code ErrorCode, msg string) *Error { return &Error{Code: code, Message: msg} }

var errNotFound = errorf(ErrNotFound, "no such authorization")

// The token path's answers for an authorization that cannot be used. A foreign tenant's
// ID and a malformed ID get exactly the answer of a missing one.
func authNotFound() error {
	return &outcomes.AuthorizationError{Code: outcomes.CodeAuthorizationNotFound, Message: "the authorization does not exist (or was deleted)"}
}

func authPending() error {
	return &outcomes.AuthorizationError{Code: outcomes.CodeAuthorizationPending, Message: "the authorization is pending: its login was not completed"}
}

// authBaseNotAllowed answers an authorization whose base URL is not on the allowlist
// (the allowlist shrank, or the row was written past the API): for the execution path it
// does not exist, and nothing is sent to that URL.
func authBaseNotAllowed() error {
	return &outcomes.AuthorizationError{Code: outcomes.CodeAuthorizationNotFound, Message: "the authorization's Engage base URL is not on this service's allowlist (ENGAGE_ALLOWED_BASE_URLS)"}
}

func authNeedsReauthorization() error {
	return &outcomes.AuthorizationError{Code: outcomes.CodeNeedsReauthorization, Message: "the authorization needs re-authorization: the provider no longer accepts its credentials"}
}
