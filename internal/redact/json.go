package redact

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// Secret returns raw with every copy of token redacted: as written, as JSON may escape
// it ("/" as "\/", every slash or only some; any character as \uXXXX; in a JSON text
// quoted inside another, escaped twice), as a URL percent-encodes it, and in base64. It
// returns raw itself, without copying, when there is none: the usual case (it runs on
// every answer of Engage).
func Secret(raw []byte, token string) []byte {
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
	// A token encoding/json escapes ('"', '\\', "<", ">", "&", a control character) is
	// looked for as it writes it, once and twice, wherever it is: decoding literals
	// (below) misses it in a text whose quotes are not paired the way JSON pairs them
	// (a stray quote before it, in a log line or an HTML page).
	if bytes.IndexByte(raw, '\\') >= 0 && jsonEscapes(token) {
		for _, form := range jsonForms(token) {
			if bytes.Contains(raw, form) {
				raw = bytes.ReplaceAll(raw, form, []byte(redacted))
			}
		}
	}
	// A literal may escape some of the token's slashes and not others, or write any
	// character as \uXXXX: only decoding it finds the token then.
	if bytes.Contains(raw, []byte(`\u`)) || (strings.IndexByte(token, '/') >= 0 && bytes.Contains(raw, []byte(`\/`))) {
		raw = withoutEscapedToken(raw, token)
	}
	// Percent-encoded, as a quoted URL has it; in base64, as a dump of the request has it.
	return Base64(PercentEncoded(raw, token), token)
}

// jsonEscapes reports whether encoding/json writes token with an escape (a
// non-ASCII character may be one: U+2028, U+2029).
func jsonEscapes(token string) bool {
	for i := 0; i < len(token); i++ {
		if c := token[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return true
		}
	}
	return false
}

// jsonForms returns what encoding/json writes token as inside a literal, HTML-escaped
// or not, with every "/" as "\/" (other encoders), and escaped twice: each that differs
// from token, once. An invalid UTF-8 token has none: encoding/json writes U+FFFD for
// what is invalid, which does not hold the token.
func jsonForms(token string) [][]byte {
	if !utf8.ValidString(token) {
		return nil
	}
	var forms [][]byte
	add := func(form []byte) {
		if string(form) == token {
			return
		}
		for _, f := range forms {
			if bytes.Equal(f, form) {
				return
			}
		}
		forms = append(forms, form)
	}
	for _, escapeHTML := range []bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(escapeHTML)
		_ = enc.Encode(token) // a string always encodes
		quoted := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
		inner := quoted[1 : len(quoted)-1]
		twice, _ := json.Marshal(string(inner))
		add(inner)
		add(bytes.ReplaceAll(inner, []byte("/"), []byte(`\/`)))
		add(twice[1 : len(twice)-1])
	}
	return forms
}

// withoutEscapedToken redacts token from the JSON string literals of raw that spell it
// with escapes: any character may be written as \uXXXX, and some encoders do it by
// default (.NET's writes "+" as \u002B, and base64 tokens hold "+"); "/" may be "\/".
// Each literal with an escape is decoded and, when it holds the token (in any form
// Secret finds), written again without it. raw need not be JSON: a literal that
// encoding/json refuses (a control character in it) or that the body ends inside (an
// answer cut short) is decoded leniently, since whoever reads the body can still read
// the token in it.
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
			// Everything Secret looks for, in the decoded text: the token, and a JSON
			// text quoted in it with its own escapes (a gateway's error wrapping the
			// upstream's), whose token a reader finds by decoding twice. The decoded
			// text is shorter than the literal: this ends.
			if r := string(Secret([]byte(s), token)); r != s {
				q, _ := json.Marshal(r)
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
