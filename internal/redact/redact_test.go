package redact

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

func TestASecretPercentEncodedByAnyEncoderIsRedactedAndItsNeighboursKept(t *testing.T) {
	const secret = "a+b/c d=e&f"
	for _, enc := range []string{
		url.QueryEscape(secret),
		url.PathEscape(secret),
		"a%2bb%2fc%20d%3de%26f",
		"%61+b/c%20d=e&f", // an encoder that escapes a letter, and a "+" that is not a space
		"a%2Bb/c+d=e&f",   // a space written as a form writes it
	} {
		got := string(PercentEncoded([]byte("<"+enc+">"), secret))
		if got != "<[redacted]>" {
			t.Errorf("%q: %q", enc, got)
		}
	}
}

func TestATextWithoutAnEncodedSecretIsReturnedAsItIs(t *testing.T) {
	for _, text := range []string{"50% off", "100%25 sure", "a+b/c", "%zz", "%4"} {
		in := []byte(text)
		if got := PercentEncoded(in, "a+b/c d"); &got[0] != &in[0] || string(got) != text {
			t.Errorf("%q became %q", text, got)
		}
		if got := Base64(in, "a-secret-long-enough-to-look-for"); &got[0] != &in[0] {
			t.Errorf("%q was copied", text)
		}
	}
}

func TestASecretInBase64AtAnyOffsetRedactsTheWholeEncodedRun(t *testing.T) {
	const secret = "tok/with+slashes=and/0123456789"
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding} {
		for _, prefix := range []string{"", "B", "Be", "Bearer ", "Authorization: Bearer "} {
			encoded := enc.EncodeToString([]byte(prefix + secret + "\r\nAccept: */*"))
			got := string(Base64([]byte(`{"dump":"`+encoded+`","ok":1}`), secret))
			if got != `{"dump":"[redacted]","ok":1}` {
				t.Errorf("%q at offset %d: %q", encoded, len(prefix), got)
			}
		}
	}
}

func TestAShortSecretIsNotLookedForInBase64(t *testing.T) {
	// Its encoding is a few characters that ordinary base64 holds by chance.
	text := base64.StdEncoding.EncodeToString([]byte("x-abc12-y and some more bytes to make a run"))
	if got := Base64([]byte(text), "abc12"); string(got) != text {
		t.Errorf("%q", got)
	}
	if strings.Contains(string(Base64([]byte(text), "")), Marker) {
		t.Error("an empty secret redacted something")
	}
}

// Secret runs on every answer of Engage: one that echoes nothing is returned without a
// copy, and with a run of base64 long enough to be looked into (a UUID, when tokens are
// short) it costs one allocation, not one per encoding looked for.
func TestAnAnswerThatEchoesNothingCostsAtMostOneAllocation(t *testing.T) {
	const token = "simat_ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	short := []byte(`{"status":200,"code":1000,"description":"ok, 50% done","value":{"chatExist":true,"status":"active"}}`)
	withID := []byte(`{"status":200,"code":1000,"description":"ok","value":{"conversationId":"3f2a9c1e-7b4d-4e8a-9f0b-1c2d3e4f5a6b"}}`)
	for name, tc := range map[string]struct {
		raw  []byte
		most float64
	}{"short": {short, 0}, "with an ID": {withID, 1}} {
		if got := Secret(tc.raw, token); &got[0] != &tc.raw[0] {
			t.Errorf("%s: copied", name)
		}
		if n := testing.AllocsPerRun(100, func() { Secret(tc.raw, token) }); n > tc.most {
			t.Errorf("%s: %v allocations, want at most %v", name, n, tc.most)
		}
	}
}

// Decoding finds a token by its escapes only where they are read the way JSON and URLs
// read them: after a stray quote or a "%" that reads as an escape with the token's first
// characters, the token as encoding/json or net/url writes it is looked for as written.
func TestATokenAsEncodersWriteItIsRedactedAfterAStrayQuoteOrPercent(t *testing.T) {
	for _, tc := range []struct{ raw, token, want string }{
		// The quote before it pairs with the token's first escaped one.
		{`He said "hi: "a\"b\u003cc\u0026d/e" ok`, `a"b<c&d/e`, `He said "hi: "[redacted]" ok`},
		{`he said "a\"b<c/d`, `a"b<c/d`, `he said "[redacted]`}, // not HTML-escaped, cut off
		{`ok "a\/b\"cdefgh" bye`, `a/b"cdefgh`, `ok "[redacted]" bye`},
		// Escaped twice, after an odd quote.
		{`"x": "{\"t\":\"a\\\"b\\u003cc\"}`, `a"b<c`, `"x": "{\"t\":\"[redacted]\"}`},
		// "%ab" reads as an escape: as url.QueryEscape and url.PathEscape write it.
		{`done 100%ab12+cd%2Fef.`, "ab12 cd/ef", `done 100%[redacted].`},
		{`done 100%ab12%20cd%2Fef.`, "ab12 cd/ef", `done 100%[redacted].`},
	} {
		if got := string(Secret([]byte(tc.raw), tc.token)); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.raw, got, tc.want)
		}
	}
}

// A token without "/" may have one in its base64; an encoder that escapes "/" (PHP's
// json_encode) writes the dump with "\/". Looked for only when the text holds "\/".
func TestABase64DumpWhoseSlashesAreJSONEscapedIsRedacted(t *testing.T) {
	const secret = "no-slash-here?>?>?>-CANARY-0123456789"
	for _, prefix := range []string{"", "B", "Be", "Bearer "} {
		encoded := base64.StdEncoding.EncodeToString([]byte(prefix + secret + "\r\nAccept: */*"))
		if strings.Contains(secret, "/") || !strings.Contains(encoded, "/") {
			t.Fatalf("%q: the secret must have no slash, its base64 some", encoded)
		}
		escaped := strings.ReplaceAll(encoded, "/", `\/`)
		for _, raw := range []string{`{"dump":"` + escaped + `","ok":1}`, `he said "` + escaped + `"`} {
			got := string(Secret([]byte(raw), secret))
			if want := strings.Replace(raw, escaped, Marker, 1); got != want {
				t.Errorf("%s: got %s, want %s", raw, got, want)
			}
		}
	}
	// Without "\/" in the answer, the escaped form costs nothing.
	raw := []byte(`{"status":200,"value":{"conversationId":"3f2a9c1e-7b4d-4e8a-9f0b-1c2d3e4f5a6b","url":"https://x/y"}}`)
	if n := testing.AllocsPerRun(100, func() { Secret(raw, secret) }); n > 1 {
		t.Errorf("%v allocations", n)
	}
}
