package engage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/noderuntime/noderuntime/internal/redact"
)

// Kind classifies a failed call so a node can map it to an outcome without looking at
// HTTP details.
type Kind string

// The kinds of failure. A call either succeeds or fails with exactly one of them.
const (
	// KindTimeout: the caller's deadline passed before Engage answered. (A dial or TLS
	// handshake timeout of the transport, with time left, is KindUpstream.)
	KindTimeout Kind = "timeout"
	// KindCanceled: the caller canceled the context.
	KindCanceled Kind = "canceled"
	// KindUnauthorized: Engage refused the token (401 or 403).
	KindUnauthorized Kind = "unauthorized"
	// KindBusiness: Engage said no with a 4xx and its envelope (404 not found, 409
	// conflict, 400 validation, ...).
	KindBusiness Kind = "business"
	// KindRateLimited: 429; RetryAfter holds Engage's Retry-After when it sent one.
	KindRateLimited Kind = "rate_limited"
	// KindUpstream: Engage failed: 5xx, connection refused, reset or timed out, a
	// malformed or unexpected body, a body over the size limit, an unexpected status.
	KindUpstream Kind = "upstream"
	// KindInvalidRequest: the call never left: the target or the request could not be
	// turned into an HTTP request (no domain, a relative base URL, invalid raw JSON).
	KindInvalidRequest Kind = "invalid_request"
	// KindCircuitOpen: the call never left because Engage at this base URL has been
	// failing persistently (see BreakerOptions); it recovers by itself.
	KindCircuitOpen Kind = "circuit_open"
)

// Error is every failure a Client returns. It never holds the bearer token.
type Error struct {
	Op   string
	Kind Kind
	// HTTPStatus is Engage's HTTP status; 0 when no answer arrived.
	HTTPStatus int
	// Code and Description come from Engage's envelope, when it sent one.
	Code        int
	Description string
	// RetryAfter is Engage's Retry-After on a 429 (0 when absent).
	RetryAfter time.Duration
	// Raw is the body Engage answered with (possibly truncated at the size limit).
	Raw []byte
	// Err is the underlying cause, if any (a transport or decoding error).
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("engage ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	b.WriteString(string(e.Kind))
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.HTTPStatus)
	}
	if e.Code != 0 {
		fmt.Fprintf(&b, ", code %d", e.Code)
	}
	if e.Description != "" {
		b.WriteString(", ")
		b.WriteString(e.Description)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %s", e.RetryAfter)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of err: that of the first *Error in its chain, KindTimeout or
// KindCanceled for bare context errors, and "" for nil or any other error.
func KindOf(err error) Kind {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Kind
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	case errors.Is(err, context.Canceled):
		return KindCanceled
	}
	return ""
}

// scrub removes the token from every text of e. Engage never echoes a token, but a proxy
// or a misbehaving server might, and an error ends up in logs and flow outputs.
func (e *Error) scrub(token string) *Error {
	if token == "" {
		return e
	}
	e.Description = stringWithoutToken(e.Description, token)
	if e.Err != nil {
		if msg := e.Err.Error(); stringWithoutToken(msg, token) != msg {
			// The chain is dropped on purpose: its messages hold the token.
			e.Err = errors.New(stringWithoutToken(msg, token))
		}
	}
	e.Raw = withoutToken(e.Raw, token)
	return e
}

// withoutToken returns raw with every copy of token redacted (redact.Secret): as
// written, JSON-escaped, percent-encoded, in base64. It returns raw itself, without
// copying, when there is none: the usual case.
func withoutToken(raw []byte, token string) []byte { return redact.Secret(raw, token) }

// stringWithoutToken is withoutToken for a string (error texts: not the hot path).
func stringWithoutToken(s, token string) string {
	return string(withoutToken([]byte(s), token))
}
