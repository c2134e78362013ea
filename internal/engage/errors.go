package engage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unsafe"

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

const redacted = redact.Marker

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

// withoutToken returns raw with every copy of token redacted, as written, as JSON
// may escape it ("/" as "\/", every slash or only some; any character as \uXXXX), as a
// URL percent-encodes it, and in base64. It
// returns raw itself, without copying, when there is none: the usual case.
func withoutToken(raw []byte, token string) []byte {
	if token == "" || len(raw) < len(token) {
		return raw
	}
	tok := unsafe.Slice(unsafe.StringData(token), len(token)) // a read-only view, no copy
	if bytes.Contains(raw, tok) {
		raw = bytes.ReplaceAll(raw, tok, []byte(redacted))
	}
	if strings.IndexByte(token, '/') >= 0 {
		if esc := []byte(strings.ReplaceAll(token, "/", `\/`)); bytes.Contains(raw, esc) {
			raw = bytes.ReplaceAll(raw, esc, []byte(redacted))
		}
	}
	// A literal may escape some of the token's slashes and not others, or write any
	// character as \uXXXX: only decoding it finds the token then.
	if bytes.Contains(raw, []byte(`\u`)) || (strings.IndexByte(token, '/') >= 0 && bytes.Contains(raw, []byte(`\/`))) {
		raw = withoutEscapedToken(raw, token)
	}
	// Percent-encoded, as a quoted URL has it; in base64, as a dump of the request has it.
	return redact.Base64(redact.PercentEncoded(raw, token), token)
}

// withoutEscapedToken redacts token from the JSON string literals of raw that spell it
// with escapes: any character may be written as \uXXXX, and some encoders do it by
// default (.NET's writes "+" as \u002B, and base64 tokens hold "+"); "/" may be "\/".
// Each literal with an escape is decoded and, when it holds the token, written again
// without it. raw need not be JSON: a literal that encoding/json refuses (a control
// character in it) or that the body ends inside (an answer cut short) is decoded
// leniently, since whoever reads the body can still read the token in it.
func withoutEscapedToken(raw []byte, token string) []byte {
	var out []byte // nil until a literal changes
	last := 0
	for i := 0; i < len(raw); i++ {
		if raw[i] != '"' {
			continue
		}
		end, escaped := literalEnd(raw, i)
		stop := end
		if end < 0 {
			stop = len(raw) - 1 // cut off inside the literal: it runs to the end
		}
		if escaped {
			var s string
			if end < 0 || json.Unmarshal(raw[i:end+1], &s) != nil {
				s = unescapeLeniently(raw[i+1 : stop+1])
			}
			if strings.Contains(s, token) {
				q, _ := json.Marshal(strings.ReplaceAll(s, token, redacted))
				out = append(append(out, raw[last:i]...), q...)
				last = stop + 1
			}
		}
		if end < 0 {
			break
		}
		i = end
	}
	if out == nil {
		return raw
	}
	return append(out, raw[last:]...)
}

// unescapeLeniently decodes the JSON escapes of a literal's content (without its
// quotes) as encoding/json would, and keeps whatever is not a valid escape as written.
func unescapeLeniently(lit []byte) string {
	var b strings.Builder
	for i := 0; i < len(lit); i++ {
		c := lit[i]
		if c != '\\' || i+1 >= len(lit) {
			b.WriteByte(c)
			continue
		}
		switch e := lit[i+1]; e {
		case '"', '\\', '/':
			b.WriteByte(e)
			i++
		case 'b':
			b.WriteByte('\b')
			i++
		case 'f':
			b.WriteByte('\f')
			i++
		case 'n':
			b.WriteByte('\n')
			i++
		case 'r':
			b.WriteByte('\r')
			i++
		case 't':
			b.WriteByte('\t')
			i++
		case 'u':
			r, ok := hex4(lit[i+2:])
			if !ok {
				b.WriteByte(c)
				continue
			}
			i += 5
			if utf16.IsSurrogate(r) {
				if i+6 < len(lit) && lit[i+1] == '\\' && lit[i+2] == 'u' {
					if r2, ok := hex4(lit[i+3:]); ok {
						if d := utf16.DecodeRune(r, r2); d != unicode.ReplacementChar {
							b.WriteRune(d)
							i += 6
							continue
						}
					}
				}
				r = unicode.ReplacementChar
			}
			b.WriteRune(r)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// hex4 reads the four hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// literalEnd returns the index of the quote closing the string literal that opens at
// start (-1 if none), and whether the literal holds an escape.
func literalEnd(raw []byte, start int) (int, bool) {
	escaped := false
	for j := start + 1; j < len(raw); j++ {
		switch raw[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j, escaped
		}
	}
	return -1, escaped
}

// stringWithoutToken is withoutToken for a string (error texts: not the hot path).
func stringWithoutToken(s, token string) string {
	return string(withoutToken([]byte(s), token))
}
