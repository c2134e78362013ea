package authstore

import (
	"strconv"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/secrets"
)

// A read that began before a refresh and finishes after it holds the older row: the
// refreshed token stays in the cache, and a newer row still replaces it.
func TestTheCacheKeepsTheNewerVersionOfARow(t *testing.T) {
	var c cache
	c.init()
	until := time.Now().Add(time.Hour)
	put := func(version int64, token string) {
		c.put(c.snapshot(), "a", &entry{tenant: "t", version: version, until: until,
			cred: Credential{AuthorizationID: "a", AccessToken: secrets.New(token)}})
	}
	cached := func() string {
		got, ok := c.get("a", "t", time.Now())
		if !ok {
			t.Fatal("nothing cached")
		}
		return got.AccessToken.Reveal()
	}
	put(5, "refreshed")
	put(4, "replaced")
	if got := cached(); got != "refreshed" {
		t.Fatalf("after an older read: %q cached, want the refreshed token", got)
	}
	put(6, "newer")
	if got := cached(); got != "newer" {
		t.Fatalf("after a newer read: %q cached, want it", got)
	}
}

// Past maxCacheEntries authorizations the cache, and the negative cache, start over
// rather than grow: the entry being stored is kept, the rest are read again when used.
func TestTheCacheStartsOverPastItsBound(t *testing.T) {
	var c cache
	c.init()
	until := time.Now().Add(time.Hour)
	for i := range maxCacheEntries {
		id := strconv.Itoa(i)
		c.put(c.snapshot(), id, &entry{tenant: "t", until: until, cred: Credential{AuthorizationID: id}})
		c.fail(id, until)
	}
	if len(c.entries) != maxCacheEntries || len(c.failed) != maxCacheEntries {
		t.Fatalf("filled to %d / %d entries, want %d each", len(c.entries), len(c.failed), maxCacheEntries)
	}
	c.put(c.snapshot(), "one more", &entry{tenant: "t", until: until, cred: Credential{AuthorizationID: "one more"}})
	c.fail("one more", until)
	if len(c.entries) != 1 || len(c.failed) != 1 {
		t.Fatalf("past the bound: %d / %d entries, want the cache started over with 1 each", len(c.entries), len(c.failed))
	}
	if _, ok := c.get("one more", "t", time.Now()); !ok {
		t.Error("the entry stored past the bound was lost")
	}
	if _, ok := c.backingOff("one more", time.Now()); !ok {
		t.Error("the backoff stored past the bound was lost")
	}
}
