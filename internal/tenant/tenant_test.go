package tenant_test

import (
	"context"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/tenant"
)

func TestKeysResolveTheirTenantOnly(t *testing.T) {
	keys, err := tenant.ParseKeys("acme:" + tenant.HashKey("a1") + ", acme:" + tenant.HashKey("a2") + ",globex:" + tenant.HashKey("g1"))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]tenant.ID{"a1": "acme", "a2": "acme", "g1": "globex"} {
		if got, ok := keys.Lookup(key); !ok || got != want {
			t.Errorf("%s: %q %v", key, got, ok)
		}
	}
	for _, key := range []string{"", "a3", tenant.HashKey("a1")} {
		if got, ok := keys.Lookup(key); ok {
			t.Errorf("%q accepted as %s", key, got)
		}
	}
	if got := keys.Tenants(); len(got) != 2 {
		t.Errorf("tenants %v", got)
	}
}

func TestParseKeysRejectsClearKeysAndBadTenants(t *testing.T) {
	empty := tenant.HashKey("") // an empty bearer token would sign in
	for _, s := range []string{"", "acme", "acme:plain", "acme:" + tenant.HashKey("x")[:60], "bad tenant:" + tenant.HashKey("x"), "acme:" + empty, "acme:" + strings.ToUpper(empty)} {
		if _, err := tenant.ParseKeys(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

// An entry written the wrong way round (the key itself first, as `head -c 32
// /dev/urandom | base64` makes it, or base64url) is refused without repeating the key:
// the error is the line start-up prints.
func TestParseKeysNeverRepeatsAKeyGivenInPlaceOfTheTenant(t *testing.T) {
	const urlKey = "q8Vb7Cw2Yf0-Jm_5TzR1uXhN4eKpA9sLdG3iWoE6vBc"
	const stdKey = "q8Vb7Cw2Yf0+Jm/5TzR1uXhN4eKpA9sLdG3iWoE6vBc="
	for _, c := range []struct{ key, entry string }{
		{urlKey, urlKey + ":acme"},
		{stdKey, stdKey + ":acme"},
		{urlKey, urlKey + ":" + tenant.HashKey(urlKey)[:63]},
	} {
		_, err := tenant.ParseKeys(c.entry)
		if err == nil {
			t.Fatalf("%q accepted", c.entry)
		}
		if strings.Contains(err.Error(), c.key[:20]) {
			t.Errorf("the error repeats the key: %v", err)
		}
	}
}

// A key belongs to one tenant: the same hash under two tenants would sign in as
// whichever entry comes first, so it stops start-up instead, as does a hash repeated
// under one tenant (a rotated key pasted wrong).
func TestParseKeysRefusesAHashGivenTwice(t *testing.T) {
	a1 := tenant.HashKey("a1")
	for s, want := range map[string]string{
		"acme:" + a1 + ",globex:" + a1:                                   `entry 2: tenant "globex": the same hash is configured for tenant "acme" (entry 1)`,
		"acme:" + a1 + ",acme:" + strings.ToUpper(a1):                    `entry 2: tenant "acme": the hash is given twice (entries 1 and 2)`,
		"acme:" + tenant.HashKey("a2") + ",acme:" + a1 + ",globex:" + a1: `entry 3: tenant "globex": the same hash is configured for tenant "acme" (entry 2)`,
	} {
		_, err := tenant.ParseKeys(s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", s, err, want)
		}
	}
}

func TestTenantTravelsInTheContext(t *testing.T) {
	if _, ok := tenant.FromContext(context.Background()); ok {
		t.Fatal("tenant in an empty context")
	}
	if id, ok := tenant.FromContext(tenant.WithID(context.Background(), "acme")); !ok || id != "acme" {
		t.Fatalf("%q %v", id, ok)
	}
}

// The fingerprint LookupKey gives is the one HasKey knows, and only for the key's own
// tenant: a key moved to another tenant must not keep the first tenant's sessions open.
func TestAKeysFingerprintBelongsToItsTenantOnly(t *testing.T) {
	before, err := tenant.ParseKeys("acme:" + tenant.HashKey("k1") + ",globex:" + tenant.HashKey("g1"))
	if err != nil {
		t.Fatal(err)
	}
	id, fp, ok := before.LookupKey("k1")
	if !ok || id != "acme" {
		t.Fatalf("LookupKey: %q %q %v", id, fp, ok)
	}
	if !before.HasKey("acme", fp) {
		t.Errorf("acme does not have the key %s it signed in with", fp)
	}
	if before.HasKey("globex", fp) {
		t.Errorf("globex has acme's key %s", fp)
	}
	after, err := tenant.ParseKeys("globex:" + tenant.HashKey("k1"))
	if err != nil {
		t.Fatal(err)
	}
	if after.HasKey("acme", fp) {
		t.Errorf("acme still has the key %s after it moved to globex", fp)
	}
}

func TestATenantIDStartsWithALetterOrDigit(t *testing.T) {
	for _, name := range []string{"-acme", ".acme", "_acme"} {
		if _, err := tenant.ParseKeys(name + ":" + tenant.HashKey("k")); err == nil {
			t.Errorf("tenant %q accepted", name)
		}
	}
}

// An empty tenant in the context is no tenant: nothing is authenticated as "".
func TestAnEmptyTenantInTheContextIsNone(t *testing.T) {
	if id, ok := tenant.FromContext(tenant.WithID(context.Background(), "")); ok {
		t.Fatalf("tenant %q from an empty ID", id)
	}
}

// A tenant ID is at most 63 characters, as the names package checks them.
func TestATenantIDLongerThan63CharactersIsRefused(t *testing.T) {
	name := strings.Repeat("a", 63)
	if _, err := tenant.ParseKeys(name + ":" + tenant.HashKey("k")); err != nil {
		t.Fatalf("a 63-character tenant: %v", err)
	}
	if _, err := tenant.ParseKeys(name + "b:" + tenant.HashKey("k")); err == nil {
		t.Fatal("a 64-character tenant accepted")
	}
}

// A list written with a trailing comma, or a blank entry between two commas (a YAML
// block, an edit that removed a key), is the list of its other entries.
func TestABlankEntryInTheKeyListIsSkipped(t *testing.T) {
	keys, err := tenant.ParseKeys("acme:" + tenant.HashKey("a1") + ", ,\n globex:" + tenant.HashKey("g1") + ",")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := keys.Lookup("g1"); !ok || got != "globex" {
		t.Fatalf("g1: %q %v", got, ok)
	}
}

// An error names its entry as NODERUNTIME_ENCRYPTION_KEYS' errors do: the nth item
// between commas, blank ones counted, so the number leads to the entry as written.
func TestAnEntryIsNumberedAsWrittenBlankOnesCounted(t *testing.T) {
	a1 := tenant.HashKey("a1")
	for list, want := range map[string]string{
		"acme:" + a1 + ",,globex:zz":                   "entry 3: the hash after the colon",
		" ,acme:" + a1 + ", ,globex:" + a1:             `entry 4: tenant "globex": the same hash is configured for tenant "acme" (entry 2)`,
		"acme:" + a1 + ",,acme:" + strings.ToUpper(a1): `entry 3: tenant "acme": the hash is given twice (entries 1 and 3)`,
	} {
		_, err := tenant.ParseKeys(list)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: got %v, want %s...", list, err, want)
		}
	}
}

// LookupKey accepts what Lookup accepts and nothing else: an unknown or empty key
// names no tenant and no fingerprint.
func TestLookupKeyRefusesAnUnknownKey(t *testing.T) {
	keys, err := tenant.ParseKeys("acme:" + tenant.HashKey("a1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"", "a2", tenant.HashKey("a1")} {
		if id, fp, ok := keys.LookupKey(key); ok || id != "" || fp != "" {
			t.Errorf("%q: tenant %q, fingerprint %q, ok %v", key, id, fp, ok)
		}
	}
	if id, fp, ok := keys.LookupKey("a1"); !ok || id != "acme" || !keys.HasKey("acme", fp) {
		t.Errorf("a1: tenant %q, fingerprint %q, ok %v", id, fp, ok)
	}
}

// An entry without a colon (the hash without its tenant, or the API key itself pasted
// in) is answered with the form an entry takes, and is not repeated: it may be the key.
func TestAnEntryWithoutAColonIsAnsweredWithTheFormAndNotRepeated(t *testing.T) {
	for _, entry := range []string{tenant.HashKey("g1"), "q8Vb7Cw2Yf0-Jm_5TzR1uXhN4eKpA9sLdG3iWoE6vBc"} {
		_, err := tenant.ParseKeys("acme:" + tenant.HashKey("a1") + "," + entry)
		if err == nil || !strings.Contains(err.Error(), "entry 2: want tenant:sha256hex") {
			t.Errorf("%q: got %v, want entry 2 answered with the form tenant:sha256hex", entry, err)
		}
		if err != nil && strings.Contains(err.Error(), entry[:20]) {
			t.Errorf("the error repeats the entry: %v", err)
		}
	}
}

// The key written before its own hash (key:sha256(key)) would make the key a tenant ID,
// which every request's log line names: it is refused, without repeating the key.
func TestAKeyWrittenAsItsOwnTenantIsRefused(t *testing.T) {
	const key = "q8Vb7Cw2Yf0-Jm_5TzR1uXhN4eKpA9sLdG3iWoE6vBc" // base64url: a valid tenant ID
	_, err := tenant.ParseKeys("acme:" + tenant.HashKey("a1") + "," + key + ":" + tenant.HashKey(key))
	if err == nil {
		t.Fatal("the key accepted as the tenant of its own hash")
	}
	if !strings.Contains(err.Error(), "entry 2") || strings.Contains(err.Error(), key[:20]) {
		t.Fatalf("got %v, want entry 2 named and the key not repeated", err)
	}
}
