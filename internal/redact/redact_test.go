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
