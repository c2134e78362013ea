// Package redact removes a token or secret from what a server answered, in every form
// it may have been echoed in (Secret): as sent; JSON-escaped, once or, in a JSON text
// quoted inside another, twice; percent-encoded, as a gateway or a token endpoint that
// quotes the request URL or form writes it ("+" as %2B, "/" as %2F, in either case of
// hex, all of it or only some characters); in base64, as one that dumps the request
// writes it, alone or inside a larger encoded text ("Bearer <token>", a Basic header, a
// whole form body), its slashes escaped as "\/" by a JSON encoder or not. Each is read
// back as easily as the secret itself. What is found is replaced with "[redacted]".
package redact

import (
	"bytes"
	"encoding/base64"
	"net/url"
	"strings"
)

// Marker is what a redacted secret is replaced with.
const Marker = "[redacted]"

const redacted = Marker

// PercentEncoded redacts every span of raw that percent-decodes to token: the decoding
// is matched, not one particular encoder's output. A form or a query writes a space as
// "+": a token with a space is also looked for so. It returns raw itself when there is
// none.
func PercentEncoded(raw []byte, token string) []byte {
	if token == "" || bytes.IndexByte(raw, '%') < 0 && (bytes.IndexByte(raw, '+') < 0 || strings.IndexByte(token, ' ') < 0) {
		return raw
	}
	// As url.QueryEscape and url.PathEscape write it, wherever it is: decoding misses it
	// after a "%" that is not an escape but reads as one with the token's first
	// characters ("100%" before "ab+cd").
	// Each differs from token by an escape or a "+": an answer with neither ("50% done")
	// costs no encoding.
	if hasEscape(raw, strings.IndexByte(token, ' ') >= 0) {
		for _, form := range [...]string{url.QueryEscape(token), url.PathEscape(token)} {
			if form != token && bytes.Contains(raw, []byte(form)) {
				raw = bytes.ReplaceAll(raw, []byte(form), []byte(redacted))
			}
		}
	}
	raw = percentEncoded(raw, token, false)
	if strings.IndexByte(token, ' ') >= 0 {
		raw = percentEncoded(raw, token, true)
	}
	return raw
}

func percentEncoded(raw []byte, token string, plusIsSpace bool) []byte {
	// A "%" that escapes nothing ("50% off") costs no copy.
	first := -1
	for i := 0; i < len(raw) && first < 0; i++ {
		if c, w := percentAt(raw, i, plusIsSpace); w > 1 || c != raw[i] {
			first = i
		}
	}
	if first < 0 {
		return raw
	}
	decoded, changed := append(make([]byte, 0, len(raw)), raw[:first]...), false
	for i := first; i < len(raw); i++ {
		c, w := percentAt(raw, i, plusIsSpace)
		decoded = append(decoded, c)
		changed = changed || w > 1 || c != raw[i]
		i += w - 1
	}
	if !changed || !bytes.Contains(decoded, []byte(token)) {
		return raw
	}
	// ri is where decoded[di] starts in raw; both only move forward.
	ri, di := 0, 0
	rawAt := func(d int) int {
		for ; di < d; di++ {
			_, w := percentAt(raw, ri, plusIsSpace)
			ri += w
		}
		return ri
	}
	var out []byte
	last := 0
	for from := 0; ; {
		j := bytes.Index(decoded[from:], []byte(token))
		if j < 0 {
			break
		}
		start := rawAt(from + j)
		end := rawAt(from + j + len(token))
		out = append(append(out, raw[last:start]...), redacted...)
		last = end
		from += j + len(token)
	}
	return append(out, raw[last:]...)
}

// hasEscape reports whether raw holds a valid %XX (or a "+", if plusIsSpace).
func hasEscape(raw []byte, plusIsSpace bool) bool {
	for i := range raw {
		if c, w := percentAt(raw, i, plusIsSpace); w > 1 || c != raw[i] {
			return true
		}
	}
	return false
}

// percentAt is the byte at raw[i] with a valid %XX decoded (and "+" as a space, if
// plusIsSpace), and how many bytes of raw it takes.
func percentAt(raw []byte, i int, plusIsSpace bool) (byte, int) {
	switch {
	case raw[i] == '%' && i+2 < len(raw):
		if hi, ok := unhex(raw[i+1]); ok {
			if lo, ok := unhex(raw[i+2]); ok {
				return hi<<4 | lo, 3
			}
		}
	case raw[i] == '+' && plusIsSpace:
		return ' ', 1
	}
	return raw[i], 1
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// minBase64Core is the shortest part of a token's base64 that is looked for: what
// shorter tokens encode to could be found in ordinary text by chance.
const minBase64Core = 16

// Base64 redacts every run of base64 (standard or URL alphabet) in raw
// that encodes token, wherever the token starts in the encoded bytes: the whole run,
// since whatever of it is left would decode to parts of the token. It returns raw
// itself when there is none.
func Base64(raw []byte, token string) []byte {
	if token == "" {
		return raw
	}
	// The characters that encode the token alone, not its neighbours: the token starts
	// at offset 0, 1 or 2 of a 3-byte group; a group it shares with other bytes is left
	// out. Only a run of base64 at least that long can hold one.
	if !hasBase64Run(raw, max(minBase64Core, 4*len(token)/3-10)) {
		return raw // the usual answer: a byte loop, nothing encoded
	}
	// One allocation: the token after two spare bytes, then room for its encoding.
	n := 2 + len(token)
	buf := make([]byte, n, n+base64.RawStdEncoding.EncodedLen(n))
	copy(buf[2:], token)
	scratch := buf[n:cap(buf)]
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		for shift := 0; shift < 3; shift++ {
			in := buf[2-shift:]
			full := len(in) / 3 * 4 // the characters of complete groups
			first := 0
			if shift > 0 {
				first = 4
			}
			if full-first < minBase64Core {
				continue
			}
			enc.Encode(scratch, in)
			core := scratch[first:full]
			raw = redactRunsHolding(raw, core)
			// An encoder that escapes "/" in JSON (PHP's json_encode) writes the
			// dump's slashes as "\/": looked for only in a text that holds one.
			if enc == base64.RawStdEncoding && bytes.IndexByte(core, '/') >= 0 && bytes.Contains(raw, []byte(`\/`)) {
				raw = redactRunsHolding(raw, bytes.ReplaceAll(core, []byte("/"), []byte(`\/`)))
			}
		}
	}
	return raw
}

// redactRunsHolding replaces each maximal run of base64 characters (either alphabet,
// with padding, "/" escaped as "\/" or not) that holds core.
func redactRunsHolding(raw, core []byte) []byte {
	for from := 0; ; {
		j := bytes.Index(raw[from:], core)
		if j < 0 {
			return raw
		}
		start, end := from+j, from+j+len(core)
		for start > 0 {
			if start > 1 && raw[start-2] == '\\' && raw[start-1] == '/' {
				start -= 2
			} else if isBase64(raw[start-1]) {
				start--
			} else {
				break
			}
		}
		for end < len(raw) {
			if raw[end] == '\\' && end+1 < len(raw) && raw[end+1] == '/' {
				end += 2
			} else if isBase64(raw[end]) || raw[end] == '=' {
				end++
			} else {
				break
			}
		}
		out := make([]byte, 0, len(raw)-(end-start)+len(redacted))
		out = append(append(append(out, raw[:start]...), redacted...), raw[end:]...)
		raw, from = out, start+len(redacted)
	}
}

func isBase64(c byte) bool { return base64Chars[c] }

// base64Chars are the characters of either base64 alphabet, without padding.
var base64Chars = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_") {
		t[c] = true
	}
	return t
}()

// hasBase64Run reports whether raw holds a run of at least n base64 characters ("/"
// escaped as "\/" or not).
func hasBase64Run(raw []byte, n int) bool {
	run := 0
	for i, c := range raw {
		if !base64Chars[c] {
			if c != '\\' || i+1 == len(raw) || raw[i+1] != '/' {
				run = 0
			}
			continue
		}
		if run++; run >= n {
			return true
		}
	}
	return false
}
