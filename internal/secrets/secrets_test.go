package secrets_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/secrets"
)

func key(b byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32))
}

func TestCiphertextOpensOnlyWithItsAssociatedData(t *testing.T) {
	ring, err := secrets.ParseKeyRing("k1:" + key(1))
	if err != nil {
		t.Fatal(err)
	}
	ct, err := ring.Encrypt([]byte("refresh-token-canary"), []byte("row-1/refresh_token"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, []byte("canary")) {
		t.Fatal("plaintext visible in ciphertext")
	}
	if got, err := ring.Decrypt(ct, []byte("row-1/refresh_token")); err != nil || string(got) != "refresh-token-canary" {
		t.Fatalf("decrypt: %q %v", got, err)
	}
	for _, aad := range []string{"row-2/refresh_token", "row-1/access_token", ""} {
		if _, err := ring.Decrypt(ct, []byte(aad)); !errors.Is(err, secrets.ErrDecrypt) {
			t.Errorf("aad %q: got %v, want ErrDecrypt", aad, err)
		}
	}
	tampered := append([]byte(nil), ct...)
	tampered[len(tampered)-1] ^= 1
	if _, err := ring.Decrypt(tampered, []byte("row-1/refresh_token")); !errors.Is(err, secrets.ErrDecrypt) {
		t.Errorf("tampered: %v", err)
	}
}

// A damaged ciphertext (a truncated column, a byte changed by hand, another format) is
// ErrDecrypt, which callers report per row, and never a panic that would take the
// request, or a key rotation, down with it.
func TestADamagedCiphertextIsErrDecryptNeverAPanic(t *testing.T) {
	ring, err := secrets.ParseKeyRing("k1:" + key(1))
	if err != nil {
		t.Fatal(err)
	}
	aad := []byte("row-1/access_token")
	ct, err := ring.Encrypt([]byte("access-token-canary"), aad)
	if err != nil {
		t.Fatal(err)
	}
	damaged := map[string][]byte{
		"another format version":              append([]byte{ct[0] + 1}, ct[1:]...),
		"a key ID longer than the ciphertext": {ct[0], 200, 'k', '1'},
	}
	for n := range len(ct) {
		damaged[fmt.Sprintf("truncated to %d bytes", n)] = ct[:n]
	}
	for name, c := range damaged {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("panic: %v", r)
				}
			}()
			if got, err := ring.Decrypt(c, aad); !errors.Is(err, secrets.ErrDecrypt) {
				t.Fatalf("got %q, %v; want ErrDecrypt", got, err)
			}
		})
	}
}

func TestKeyRingRotation(t *testing.T) {
	old, _ := secrets.ParseKeyRing("k1:" + key(1))
	ct, _ := old.Encrypt([]byte("s"), []byte("a"))
	rotated, err := secrets.ParseKeyRing("k2:" + key(2) + ",k1:" + key(1))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Decrypt(ct, []byte("a")); err != nil || string(got) != "s" {
		t.Fatalf("old ciphertext under rotated ring: %q %v", got, err)
	}
	fresh, _ := rotated.Encrypt([]byte("s"), []byte("a"))
	if id, _ := secrets.KeyID(fresh); id != "k2" {
		t.Fatalf("new ciphertext under key %q, want k2", id)
	}
	// Nor where the ring came from: that is its caller's to say (config reads the
	// environment, this package does not).
	if _, err := old.Decrypt(fresh, []byte("a")); !errors.Is(err, secrets.ErrDecrypt) || !strings.Contains(err.Error(), `key "k2"`) || strings.Contains(err.Error(), "NODERUNTIME_") {
		t.Fatalf("a ring without k2 opened a k2 ciphertext, or did not say which key it lacks: %v", err)
	}
}

// Another key given under the ID a ciphertext names (a key pasted wrong, or a new key
// reusing an old ID) is the usual way a ring fails: the error says which ID does not
// open it, and prints neither key.
func TestAWrongKeyUnderTheRightIDSaysWhichIDAndPrintsNoKey(t *testing.T) {
	right, _ := secrets.ParseKeyRing("k1:" + key(1))
	ct, _ := right.Encrypt([]byte("s"), []byte("a"))
	wrong, _ := secrets.ParseKeyRing("k1:" + key(2))
	_, err := wrong.Decrypt(ct, []byte("a"))
	if !errors.Is(err, secrets.ErrDecrypt) || !strings.Contains(err.Error(), `key "k1"`) || strings.Contains(err.Error(), "NODERUNTIME_") {
		t.Fatalf("got %v, want ErrDecrypt naming key k1 (and no variable)", err)
	}
	for _, k := range []string{key(1), key(2)} {
		if strings.Contains(err.Error(), k) {
			t.Fatalf("the error %q prints a key", err)
		}
	}
}

func TestParseKeyRingRejectsBadRings(t *testing.T) {
	for _, s := range []string{"", "k1", "k1:notbase64!", "k1:" + base64.StdEncoding.EncodeToString([]byte("short")),
		"k1:" + base64.StdEncoding.EncodeToString(make([]byte, 16)), "k1:" + base64.StdEncoding.EncodeToString(make([]byte, 24)), // AES-128/192: the docs promise AES-256
		"k1:" + key(1) + ",k1:" + key(2), "bad id:" + key(1),
		key(1) + ":k1", "k1:" + key(2) + "," + key(1) + ":k1"} { // written key first: the ID is the key
		if _, err := secrets.ParseKeyRing(s); err == nil {
			t.Errorf("%q accepted", s)
		} else if strings.Contains(err.Error(), key(1)) {
			t.Errorf("error repeats the key: %v", err)
		}
	}
}

// The forms an operator writes into NODERUNTIME_ENCRYPTION_KEYS by hand or by tool: spaces
// around entries, a trailing comma, base64 without its padding. Each is the same ring:
// the same primary key, and it opens what the plain form sealed.
func TestParseKeyRingAcceptsTheFormsAnOperatorWrites(t *testing.T) {
	plain, err := secrets.ParseKeyRing("k2:" + key(2) + ",k1:" + key(1))
	if err != nil {
		t.Fatal(err)
	}
	ct, err := plain.Encrypt([]byte("s"), []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	unpadded := strings.TrimRight(key(2), "=")
	for name, spec := range map[string]string{
		"spaces around entries": " k2:" + key(2) + " , k1:" + key(1) + " ",
		"a trailing comma":      "k2:" + key(2) + ",k1:" + key(1) + ",",
		"unpadded base64":       "k2:" + unpadded + ",k1:" + key(1),
	} {
		t.Run(name, func(t *testing.T) {
			ring, err := secrets.ParseKeyRing(spec)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if ring.PrimaryID() != "k2" {
				t.Fatalf("primary key %q, want k2", ring.PrimaryID())
			}
			if got, err := ring.Decrypt(ct, []byte("a")); err != nil || string(got) != "s" {
				t.Fatalf("does not open what the plain form sealed: %q %v", got, err)
			}
		})
	}
}

func TestSecretValuesPrintRedacted(t *testing.T) {
	v := secrets.New("tok-canary-123")
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("x", "token", v)
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("x", "token", v)
	j, _ := json.Marshal(map[string]any{"t": v})
	// As a map key, JSON writes the key's text; so does XML for an element's content.
	k, _ := json.Marshal(map[secrets.Value]int{v: 1})
	x, _ := xml.Marshal(struct{ Token secrets.Value }{v})
	// String is what code calls that builds a text itself ("Bearer " + v.String() by mistake).
	for _, s := range []string{fmt.Sprint(v), fmt.Sprintf("%v %+v %#v %s %q", v, v, v, v, v), v.String(), v.GoString(), logBuf.String(), string(j), string(k), string(x)} {
		if strings.Contains(s, "canary") {
			t.Errorf("secret leaked: %s", s)
		}
	}
	if v.Reveal() != "tok-canary-123" {
		t.Fatal("Reveal lost the value")
	}
}

// AES-GCM under one key loses both secrecy and integrity when a nonce repeats: every
// seal draws a fresh one, so one secret sealed twice never gives the same ciphertext,
// and no two of many seals share a nonce.
func TestEverySealDrawsAFreshNonce(t *testing.T) {
	ring, err := secrets.ParseKeyRing("k1:" + key(1))
	if err != nil {
		t.Fatal(err)
	}
	const header = 2 + len("k1") // version, key ID length, key ID
	seen := map[string]bool{}
	for range 1000 {
		ct, err := ring.Encrypt([]byte("the same refresh token"), []byte("row-1/refresh_token"))
		if err != nil {
			t.Fatal(err)
		}
		nonce := string(ct[header : header+12])
		if seen[nonce] {
			t.Fatalf("a nonce came twice in %d seals under one key", len(seen)+1)
		}
		seen[nonce] = true
	}
}

// An empty secret is a secret like any other: sealed, it opens to the empty secret, not
// to ErrDecrypt, which would read as a wrong key.
func TestAnEmptySecretOpensAsTheEmptySecret(t *testing.T) {
	ring, err := secrets.ParseKeyRing("k1:" + key(1))
	if err != nil {
		t.Fatal(err)
	}
	ct, err := ring.Encrypt(nil, []byte("row-1/refresh_token"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ring.Decrypt(ct, []byte("row-1/refresh_token")); err != nil || len(got) != 0 {
		t.Fatalf("got %q, %v; want the empty secret", got, err)
	}
	if _, err := ring.Decrypt(ct, []byte("row-2/refresh_token")); !errors.Is(err, secrets.ErrDecrypt) {
		t.Fatalf("another row's associated data: %v, want ErrDecrypt", err)
	}
}

// NODERUNTIME_ENCRYPTION_KEYS is refused at start-up, and its error goes to the log:
// however an entry is wrong (no ID, not base64, the wrong size), the error names the
// entry and never prints the key written in it.
func TestParseKeyRingErrorsNeverPrintTheKey(t *testing.T) {
	short := base64.StdEncoding.EncodeToString([]byte("CANARY-16-bytes!"))
	for name, tc := range map[string]struct{ spec, key string }{
		"a key without its ID":     {"k1:" + key(1) + "," + key(2), key(2)},
		"a key that is not base64": {"k1:CANARY-not-base64!", "CANARY-not-base64!"},
		"a key of the wrong size":  {"k1:" + short, short},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := secrets.ParseKeyRing(tc.spec)
			if err == nil {
				t.Fatalf("%q accepted", tc.spec)
			}
			if !strings.Contains(err.Error(), "entry ") {
				t.Errorf("the error does not say which entry: %v", err)
			}
			if strings.Contains(err.Error(), tc.key) || strings.Contains(err.Error(), strings.TrimRight(tc.key, "=")) {
				t.Errorf("the error prints the key: %v", err)
			}
		})
	}
}
