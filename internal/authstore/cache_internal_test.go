package authstore

import (
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
