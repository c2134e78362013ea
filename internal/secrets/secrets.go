// Package secrets owns encryption at rest and the redaction of secret values. A key ring
// holds AES-256 keys by ID; the first encrypts, all decrypt, so keys rotate without
// downtime. Every ciphertext names its key and is bound to associated data (the row ID
// and column), so a ciphertext copied to another row or column does not decrypt.
//
// It knows nothing of where ciphertexts are stored or what a secret is for: the caller
// chooses the associated data, and keeps the ciphertext.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/noderuntime/noderuntime/internal/names"
)

// Value is a secret string. It prints as [redacted] through fmt, slog and encoding/json,
// so leaking one takes an explicit call to Reveal.
type Value struct{ s string }

// New wraps s as a secret.
func New(s string) Value { return Value{s: s} }

// Reveal returns the secret itself; call it only where the secret leaves for its owner
// (an HTTP Authorization header, the token endpoint, the cipher).
func (v Value) Reveal() string { return v.s }

// IsZero reports whether the secret is empty.
func (v Value) IsZero() bool { return v.s == "" }

const redacted = "[redacted]"

func (Value) String() string                  { return redacted }
func (Value) GoString() string                { return redacted }
func (Value) LogValue() slog.Value            { return slog.StringValue(redacted) }
func (Value) MarshalJSON() ([]byte, error)    { return []byte(`"` + redacted + `"`), nil }
func (Value) MarshalText() ([]byte, error)    { return []byte(redacted), nil }
func (v Value) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redacted)) }

// ErrDecrypt is returned for any ciphertext that does not open: wrong key, unknown key
// ID, tampered bytes or associated data that does not match.
var ErrDecrypt = errors.New("secrets: ciphertext does not decrypt")

const formatVersion = 1

type key struct {
	id   string
	aead cipher.AEAD
}

// KeyRing holds the encryption keys.
type KeyRing struct {
	keys []key
}

// ParseKeyRing reads "id:base64key,id:base64key"; each key is 32 bytes (AES-256).
func ParseKeyRing(s string) (*KeyRing, error) {
	r := &KeyRing{}
	seen := map[string]bool{}
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, b64, ok := strings.Cut(item, ":")
		if !ok {
			return nil, fmt.Errorf("entry %d: want id:base64key", i+1)
		}
		if !names.Valid(id, 32) {
			// Not quoted: an entry written key first (base64key:id) has the key there.
			return nil, fmt.Errorf("entry %d: the key ID before the colon is not 1-32 letters, digits, '.', '_' or '-' (want id:base64key)", i+1)
		}
		if seen[id] {
			return nil, fmt.Errorf("entry %d: key ID %q given twice", i+1, id)
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			raw, err = base64.RawStdEncoding.DecodeString(b64)
		}
		if err != nil {
			return nil, fmt.Errorf("entry %d (key %q): not valid base64", i+1, id)
		}
		if len(raw) != 32 {
			return nil, fmt.Errorf("entry %d (key %q): want 32 bytes, got %d", i+1, id, len(raw))
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("entry %d (key %q): %w", i+1, id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("entry %d (key %q): %w", i+1, id, err)
		}
		seen[id] = true
		r.keys = append(r.keys, key{id: id, aead: aead})
	}
	if len(r.keys) == 0 {
		return nil, errors.New("no keys given")
	}
	return r, nil
}

// Holds reports whether the ring has a key under id.
func (r *KeyRing) Holds(id string) bool {
	for _, k := range r.keys {
		if k.id == id {
			return true
		}
	}
	return false
}

// PrimaryID is the ID of the key that encrypts.
func (r *KeyRing) PrimaryID() string { return r.keys[0].id }

// Encrypt seals plaintext under the primary key, bound to aad. The result is
// version(1) | len(keyID)(1) | keyID | nonce(12) | sealed.
func (r *KeyRing) Encrypt(plaintext, aad []byte) ([]byte, error) {
	k := r.keys[0]
	out := make([]byte, 0, 2+len(k.id)+k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	out = append(out, formatVersion, byte(len(k.id)))
	out = append(out, k.id...)
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("secrets: nonce: %w", err)
	}
	out = append(out, nonce...)
	return k.aead.Seal(out, nonce, plaintext, aad), nil
}

// KeyID returns the ID of the key a ciphertext was sealed with.
func KeyID(ciphertext []byte) (string, error) {
	if len(ciphertext) < 2 || ciphertext[0] != formatVersion || len(ciphertext) < 2+int(ciphertext[1]) {
		return "", ErrDecrypt
	}
	return string(ciphertext[2 : 2+int(ciphertext[1])]), nil
}

// Decrypt opens a ciphertext made by Encrypt with any key of the ring.
func (r *KeyRing) Decrypt(ciphertext, aad []byte) ([]byte, error) {
	id, err := KeyID(ciphertext)
	if err != nil {
		return nil, err
	}
	for _, k := range r.keys {
		if k.id != id {
			continue
		}
		rest := ciphertext[2+len(id):]
		if len(rest) < k.aead.NonceSize()+k.aead.Overhead() {
			return nil, ErrDecrypt
		}
		nonce, sealed := rest[:k.aead.NonceSize()], rest[k.aead.NonceSize():]
		plain, err := k.aead.Open(nil, nonce, sealed, aad)
		if err != nil {
			// Most often the ring holds another key under this ID (pasted wrong, or an ID
			// used again for a new key): the ID tells the operator which entry to check.
			// The ring's caller knows where the ring came from, and names it.
			return nil, fmt.Errorf("%w: key %q of the key ring does not open it (another key under that ID, or the ciphertext was altered)", ErrDecrypt, id)
		}
		return plain, nil
	}
	// The key ID is not secret, and it is what an operator mid-rotation needs.
	return nil, fmt.Errorf("%w: it is sealed under key %q, which the key ring does not hold", ErrDecrypt, id)
}
