// Package tenant knows who is calling: the API keys that identify a tenant, and the
// tenant carried in a request's context. Keys are configured only as SHA-256 hashes.
//
// It knows nothing of HTTP (how a key arrives is the edge's business) nor of what a
// tenant owns: authorizations name their tenant, not the other way round.
package tenant

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/noderuntime/noderuntime/internal/names"
)

// ID names a tenant. Every authorization belongs to exactly one.
type ID string

type keyHash struct {
	tenant ID
	sum    [sha256.Size]byte
}

// Keys is the set of API keys the service accepts.
type Keys struct {
	hashes []keyHash
}

// ParseKeys reads "tenant:sha256hex,tenant:sha256hex". A tenant may have several keys
// (to rotate them without downtime); a hash given twice is refused: under two tenants
// the key would sign in as whichever comes first, and under one it is most likely a new
// key pasted wrong.
func ParseKeys(s string) (Keys, error) {
	var k Keys
	seen := map[[sha256.Size]byte]int{} // hash: the entry that gave it
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		// Counted as written, blank ones included, as NODERUNTIME_ENCRYPTION_KEYS counts
		// its entries: the nth item between commas.
		entry := i + 1
		name, hexSum, ok := strings.Cut(item, ":")
		if !ok {
			return Keys{}, fmt.Errorf("entry %d: want tenant:sha256hex", entry)
		}
		// Neither error below quotes the tenant: an entry written key first (key:tenant)
		// has the API key itself there, and the error is the line start-up prints.
		if !names.ValidLead(name, 63) {
			return Keys{}, fmt.Errorf("entry %d: the tenant before the colon is not letters, digits, '.', '_' or '-' (want tenant:sha256hex)", entry)
		}
		raw, err := hex.DecodeString(hexSum)
		if err != nil || len(raw) != sha256.Size {
			return Keys{}, fmt.Errorf("entry %d: the hash after the colon must be 64 hex digits (SHA-256 of the key)", entry)
		}
		sum := [sha256.Size]byte(raw)
		if sha256.Sum256([]byte(name)) == sum {
			// The key itself before its hash: as a tenant ID it would be in every
			// request's log line.
			return Keys{}, fmt.Errorf("entry %d: the tenant before the colon is the key whose hash follows it (want tenant:sha256hex)", entry)
		}
		if sum == emptyKeySum {
			// An empty bearer token would then sign in (HashKey("") is well known).
			return Keys{}, fmt.Errorf("entry %d: tenant %q: the hash is of an empty key", entry, name)
		}
		if firstEntry, ok := seen[sum]; ok {
			if first := k.tenantOf(sum); first != ID(name) {
				return Keys{}, fmt.Errorf("entry %d: tenant %q: the same hash is configured for tenant %q (entry %d); a key belongs to one tenant", entry, name, first, firstEntry)
			}
			return Keys{}, fmt.Errorf("entry %d: tenant %q: the hash is given twice (entries %d and %d)", entry, name, firstEntry, entry)
		}
		seen[sum] = entry
		k.hashes = append(k.hashes, keyHash{tenant: ID(name), sum: sum})
	}
	if len(k.hashes) == 0 {
		return Keys{}, errors.New("no keys given")
	}
	return k, nil
}

// tenantOf is the tenant of a configured hash, "" for none; for start-up's errors, not
// for requests (Lookup compares in constant time).
func (k Keys) tenantOf(sum [sha256.Size]byte) ID {
	for _, h := range k.hashes {
		if h.sum == sum {
			return h.tenant
		}
	}
	return ""
}

// emptyKeySum is the SHA-256 of the empty key.
var emptyKeySum = sha256.Sum256(nil)

// HashKey returns the hex SHA-256 of an API key, the form the configuration takes.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Lookup returns the tenant that owns key. It compares against every configured hash
// in constant time, so timing says nothing about which key, if any, came close.
func (k Keys) Lookup(key string) (ID, bool) {
	if key == "" {
		return "", false
	}
	sum := sha256.Sum256([]byte(key))
	var found ID
	match := 0
	for _, h := range k.hashes {
		eq := subtle.ConstantTimeCompare(sum[:], h.sum[:])
		if eq == 1 && match == 0 {
			found = h.tenant
		}
		match |= eq
	}
	return found, match == 1
}

// LookupKey is Lookup that also names which of the tenant's keys matched: a fingerprint
// of its configured hash (not secret: the configuration holds the hash), for a session
// to end when that key is no longer configured.
func (k Keys) LookupKey(key string) (ID, string, bool) {
	t, ok := k.Lookup(key)
	if !ok {
		return "", "", false
	}
	sum := sha256.Sum256([]byte(key))
	return t, hex.EncodeToString(sum[:8]), true
}

// HasKey reports whether t still has the key of fingerprint (from LookupKey).
func (k Keys) HasKey(t ID, fingerprint string) bool {
	for _, h := range k.hashes {
		if h.tenant == t && hex.EncodeToString(h.sum[:8]) == fingerprint {
			return true
		}
	}
	return false
}

// Tenants lists the configured tenants, each once.
func (k Keys) Tenants() []ID {
	seen := map[ID]bool{}
	var out []ID
	for _, h := range k.hashes {
		if !seen[h.tenant] {
			seen[h.tenant] = true
			out = append(out, h.tenant)
		}
	}
	return out
}

type ctxKey struct{}

// WithID returns a context that carries the calling tenant.
func WithID(ctx context.Context, id ID) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the calling tenant, if the request was authenticated.
func FromContext(ctx context.Context) (ID, bool) {
	id, ok := ctx.Value(ctxKey{}).(ID)
	return id, ok && id != ""
}
