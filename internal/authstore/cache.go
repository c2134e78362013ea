package authstore

import (
	"sync"
	"time"

	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// maxCacheEntries bounds the memory cache; past it the cache starts over (every
// authorization in use is back after one database read).
const maxCacheEntries = 100_000

// cache holds the tokens of the execution path, and the authorizations whose token
// endpoint failed lately (the negative cache).
//
// seq makes invalidation race-free: a loader notes seq before it reads Postgres and
// stores its result only if no invalidation happened meanwhile, so a deletion that
// arrives while a read is in flight is never undone by that read; and the calls made
// after an invalidation do not share a read begun before it (flightKey).
type cache struct {
	mu      sync.RWMutex
	seq     uint64
	entries map[string]*entry
	failed  map[string]time.Time // authorization ID -> end of its backoff
}

type entry struct {
	tenant  tenant.ID
	cred    Credential
	version int64
	until   time.Time // served until then; afterwards a database read decides
}

func (c *cache) init() {
	c.entries = map[string]*entry{}
	c.failed = map[string]time.Time{}
}

// get answers from the cache when the entry belongs to t and is still good.
func (c *cache) get(id string, t tenant.ID, now time.Time) (Credential, bool) {
	c.mu.RLock()
	e, ok := c.entries[id]
	c.mu.RUnlock()
	if !ok || e.tenant != t || !now.Before(e.until) {
		return Credential{}, false
	}
	return e.cred, true
}

func (c *cache) snapshot() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.seq
}

// put stores e unless an invalidation happened since snap, or the cache holds a newer
// version of the row: a read that began before a refresh (which notifies no one) may
// finish after it, and must not put the token the refresh replaced back.
func (c *cache) put(snap uint64, id string, e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seq != snap {
		return
	}
	if old, ok := c.entries[id]; ok && old.version > e.version {
		return
	}
	if len(c.entries) >= maxCacheEntries {
		clear(c.entries)
	}
	c.entries[id] = e
}

// invalidate forgets one authorization.
func (c *cache) invalidate(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	delete(c.entries, id)
	delete(c.failed, id)
}

// invalidateAll forgets everything: the listener lost or regained its connection, so
// notifications may have been missed.
func (c *cache) invalidateAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	clear(c.entries)
}

// dropToken forgets id's entry if it holds token (Engage just rejected it).
func (c *cache) dropToken(id string, token secrets.Value) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[id]; ok && e.cred.AccessToken.Reveal() == token.Reveal() {
		delete(c.entries, id)
	}
}

// backingOff returns the end of id's backoff, if one is running.
func (c *cache) backingOff(id string, now time.Time) (time.Time, bool) {
	c.mu.RLock()
	until, ok := c.failed[id]
	c.mu.RUnlock()
	return until, ok && now.Before(until)
}

func (c *cache) fail(id string, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.failed) >= maxCacheEntries {
		clear(c.failed)
	}
	c.failed[id] = until
}

func (c *cache) recovered(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.failed, id)
}
