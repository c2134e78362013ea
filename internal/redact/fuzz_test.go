package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzSecretLeavesNoFormOfTheTokenAndCopiesOnlyWhatHoldsOne feeds Secret any bytes, and
// the same bytes with the token embedded at any position in one of the forms it promises
// to catch (forms below), and checks:
//
//   - Secret never panics;
//   - the output holds the token in none of the forms a reader reads it back from: as
//     written; as encoding/json writes it (HTML-escaped or not, with every "/" as "\/",
//     and escaped twice), when the token is valid UTF-8 (encoding/json writes invalid
//     UTF-8 as U+FFFD: the token is not in what it wrote); url.QueryEscape and
//     url.PathEscape; and, when its base64 core is at least minBase64Core characters,
//     the characters that encode the token alone (the groups it shares with no other
//     byte) in base64, std and URL alphabets, with 0, 1 or 2 bytes before it, and
//     those with every "/" as "\/" (a JSON encoder that escapes slashes);
//   - when the bytes around the embedded token hold no '"', '\', '%' or '+' (nothing
//     that pairs with or reads as part of an escape), the token cannot be read back from
//     the output at all (readsBack): no mix of escapes Secret decodes is left;
//   - the output is raw itself (the same bytes, not a copy) unless the token can be read
//     back from raw: raw holds one of those forms, or the token or a base64 core of it
//     once JSON-unescaped any number of times (as encoding/json decodes a literal),
//     possibly then percent-decoded ("+" as a space or not).
//
// This holds for a token of 8 bytes or more that holds neither "[" nor "]": the marker
// written in place of a copy could otherwise spell the token with the bytes next to it
// ("a[redacted]b" out of "aa[redacted]bb"), which reveals nothing of the token. For the
// same reason a form is not looked for from within a \uXXXX escape (holds).
func FuzzSecretLeavesNoFormOfTheTokenAndCopiesOnlyWhatHoldsOne(f *testing.F) {
	for _, s := range []struct {
		raw   string
		token string
		form  byte
		at    uint16
		pad   []byte
	}{
		{`{"status":200,"value":{"ok":true}}`, "simat_ABCDEFGHIJKLMNOPQRSTUVWXYZ", 0, 20, nil},
		{`{"error":"bad token ","code":401}`, "simat_ABCDEFGHIJKLMNOPQRSTUVWXYZ", 1, 19, nil},
		{`{"upstream":"{\"echo\":\"\"}"}`, "a/b+c/d=e&f g", 5, 22, nil},
		{`GET /x?token=&y=1`, "a+b/c d=e&f", 6, 13, nil},
		{`GET /x/ HTTP/1.1`, "a+b/c d=e&f", 7, 7, nil},
		{`dump: ==`, "tok/with+slashes=and/0123456789", 9, 6, []byte("B")},
		{`{"dump":""}`, "tok/with+slashes=and/0123456789", 10, 9, []byte("Be")},
		{`{"id":"3f2a9c1e-7b4d-4e8a-9f0b-1c2d3e4f5a6b"}`, "simat_0123", 0, 0, nil},
		{`"\u0041\/\"" 50% off a+b %zz %4`, "a/b\"c<d>\u2028é", 4, 3, nil},
		{`"cut \u00`, "abcdefgh", 3, 5, []byte{1, 2, 3}},
		{"\xff\xfe\"\\ud800\"", "\xff\xfeabcdefgh", 2, 1, nil},
	} {
		f.Add([]byte(s.raw), s.token, s.form, s.at, s.pad)
	}
	f.Fuzz(func(t *testing.T, noise []byte, token string, form byte, at uint16, pad []byte) {
		if len(token) < 8 || strings.ContainsAny(token, "[]") {
			return
		}
		p := int(at) % (len(noise) + 1)
		embedded := fmt.Appendf(nil, "%s%s%s", noise[:p], encodeAs(form, token, pad), noise[p:])
		for _, raw := range [][]byte{noise, embedded} {
			in := bytes.Clone(raw)
			out := Secret(raw, token)
			if !bytes.Equal(raw, in) {
				t.Fatalf("Secret wrote into its input %q", in)
			}
			for _, form := range formsOf(token) {
				if holds(out, form) {
					t.Fatalf("Secret(%q, %q) = %q holds %q", raw, token, out, form)
				}
			}
			if !bytes.ContainsAny(noise, "\"\\%+") && readsBack(out, token) {
				t.Fatalf("Secret(%q, %q) = %q, from which the token reads back", raw, token, out)
			}
			if !readsBack(raw, token) && (len(out) != len(raw) || len(raw) > 0 && &out[0] != &raw[0]) {
				t.Fatalf("Secret(%q, %q) = %q, not its input, which holds no form of the token", raw, token, out)
			}
		}
	})
}

// holds reports whether out holds form other than from within a \uXXXX escape: a
// literal written again (a token redacted from it) escapes its control characters, and
// "\u0001" then "0000000" spells "01000000", which a reader reads as "\x01" and
// "0000000", not as the token.
func holds(out []byte, form string) bool {
	for from := 0; ; {
		i := bytes.Index(out[from:], []byte(form))
		if i < 0 {
			return false
		}
		at := from + i
		if !inUnicodeEscape(out, at) {
			return true
		}
		from = at + 1
	}
}

// inUnicodeEscape reports whether out[at] is one of the hex digits of a \uXXXX.
func inUnicodeEscape(out []byte, at int) bool {
	for k := 1; k <= 4 && at-k-1 >= 0; k++ {
		if out[at-k-1] == '\\' && out[at-k] == 'u' && at-k+4 < len(out) {
			if _, ok := hex4(out[at-k+1:]); ok {
				return true
			}
		}
	}
	return false
}

// encodeAs writes token in one of the forms Secret is meant to catch, chosen by form;
// pad, when it is base64, goes before the token in the encoded bytes (its first 0, 1 or
// 2 bytes) and after it.
func encodeAs(form byte, token string, pad []byte) string {
	quoted, _ := json.Marshal(token)
	inner := string(quoted[1 : len(quoted)-1])
	switch form % 13 {
	case 1:
		return string(quoted)
	case 2:
		return `"` + strings.ReplaceAll(inner, "/", `\/`) + `"`
	case 3: // every character as \uXXXX, as an encoder that escapes everything writes it
		var b strings.Builder
		b.WriteByte('"')
		for _, r := range token {
			if r > 0xFFFF {
				r1, r2 := utf16Pair(r)
				fmt.Fprintf(&b, `\u%04x\u%04X`, r1, r2)
				continue
			}
			fmt.Fprintf(&b, `\u%04X`, r)
		}
		b.WriteByte('"')
		return b.String()
	case 4: // some slashes escaped, some not: pad chooses
		var b strings.Builder
		b.WriteByte('"')
		for i, c := range []byte(inner) {
			if c == '/' && len(pad) > 0 && pad[i%len(pad)]&1 == 1 {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		b.WriteByte('"')
		return b.String()
	case 5: // a JSON text quoted in another: escaped twice
		twice, _ := json.Marshal(`{"token":` + string(quoted) + `}`)
		return string(twice)
	case 6:
		return url.QueryEscape(token)
	case 7:
		return url.PathEscape(token)
	case 8: // every byte percent-encoded, in either case of hex, as pad chooses
		var b strings.Builder
		for i := 0; i < len(token); i++ {
			format := "%%%02X"
			if len(pad) > 0 && pad[i%len(pad)]&1 == 1 {
				format = "%%%02x"
			}
			fmt.Fprintf(&b, format, token[i])
		}
		return b.String()
	case 9, 10, 11:
		encs := []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding}
		lead := 0
		if len(pad) > 0 {
			lead = int(pad[0]) % 3
		}
		lead = min(lead, len(pad))
		in := append(append(append([]byte(nil), pad[:lead]...), token...), pad[lead:]...)
		return encs[int(form)%len(encs)].EncodeToString(in)
	case 12: // in base64 in a JSON literal whose "/" an encoder escapes
		lead := 0
		if len(pad) > 0 {
			lead = min(int(pad[0])%3, len(pad))
		}
		in := append(append(append([]byte(nil), pad[:lead]...), token...), pad[lead:]...)
		return `"` + strings.ReplaceAll(base64.StdEncoding.EncodeToString(in), "/", `\/`) + `"`
	}
	return token
}

func utf16Pair(r rune) (rune, rune) {
	r -= 0x10000
	return 0xD800 + r>>10&0x3FF, 0xDC00 + r&0x3FF
}

// formsOf returns the forms of token the output of Secret may hold none of.
func formsOf(token string) []string {
	forms := []string{token, url.QueryEscape(token), url.PathEscape(token)}
	if utf8.ValidString(token) {
		for _, escapeHTML := range []bool{true, false} {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(escapeHTML)
			_ = enc.Encode(token)
			quoted := strings.TrimSuffix(b.String(), "\n")
			inner := quoted[1 : len(quoted)-1]
			twice, _ := json.Marshal(inner)
			forms = append(forms, inner, strings.ReplaceAll(inner, "/", `\/`), string(twice[1:len(twice)-1]))
		}
	}
	for _, core := range base64Cores(token) {
		forms = append(forms, core, strings.ReplaceAll(core, "/", `\/`))
	}
	return forms
}

// base64Cores returns what encodes token alone in base64 (std and URL alphabets), for
// each of the 3 offsets the token may start at in the encoded bytes, when it is at
// least minBase64Core characters long.
func base64Cores(token string) []string {
	var cores []string
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		for lead := range 3 {
			in := append(make([]byte, lead), token...)
			full := len(in) / 3 * 4
			first := 0
			if lead > 0 {
				first = 4
			}
			if full-first >= minBase64Core {
				cores = append(cores, enc.EncodeToString(in)[first:full])
			}
		}
	}
	return cores
}

// readsBack reports whether token can be read back from raw: raw holds one of its forms
// (formsOf), or it or a base64 core of it once JSON-unescaped any number of times (each time also as encoding/json
// decodes, invalid UTF-8 as U+FFFD), and possibly then percent-decoded.
func readsBack(raw []byte, token string) bool {
	for _, form := range formsOf(token) {
		if bytes.Contains(raw, []byte(form)) {
			return true
		}
	}
	cores := base64Cores(token)
	seen := map[string]bool{}
	views := []string{string(raw)}
	for len(views) > 0 {
		v := views[0]
		views = views[1:]
		if seen[v] {
			continue
		}
		seen[v] = true
		if strings.Contains(v, token) || strings.Contains(percentDecode(v, false), token) || strings.Contains(percentDecode(v, true), token) {
			return true
		}
		for _, c := range cores {
			if strings.Contains(v, c) {
				return true
			}
		}
		if strings.IndexByte(v, '\\') >= 0 {
			d := unescapeLeniently([]byte(v))
			views = append(views, d, string([]rune(d)))
		}
	}
	return false
}

// percentDecode decodes every valid %XX of s, and "+" as a space if plusIsSpace, keeping
// anything else as written.
func percentDecode(s string, plusIsSpace bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := url.PathUnescape(s[i : i+3]); err == nil {
				b.WriteString(v)
				i += 2
				continue
			}
		}
		if s[i] == '+' && plusIsSpace {
			b.WriteByte(' ')
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
