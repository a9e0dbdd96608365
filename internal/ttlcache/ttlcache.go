// Package ttlcache is the one bounded map of the process: entries that
// expire, and a size they never outgrow. Every user keeps only what it can
// find out again (an answer of a registry or the API server, a digest a
// copy wrote), so when the map is full, expired entries go first and, when
// that frees too little, all of them.
package ttlcache

import (
	"sync"
	"time"
)

// Cache maps K to V. The zero value is not usable; call New.
type Cache[K comparable, V any] struct {
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[K]entry[V]
}

type entry[V any] struct {
	v       V
	expires time.Time // zero: until evicted
}

func (e entry[V]) live(now time.Time) bool { return e.expires.IsZero() || now.Before(e.expires) }

// New returns a cache of at most max entries.
func New[K comparable, V any](max int) *Cache[K, V] {
	return &Cache[K, V]{max: max, now: time.Now, entries: map[K]entry[V]{}}
}

// Get returns k's value unless it has expired.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || !e.live(c.now()) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Set keeps v under k for ttl; ttl <= 0 keeps it until it is evicted.
func (c *Cache[K, V]) Set(k K, v V, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLocked(k, v, ttl)
}

// Add is Set unless k holds a value that has not expired; it tells whether
// it set v.
func (c *Cache[K, V]) Add(k K, v V, ttl time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok && e.live(c.now()) {
		return false
	}
	c.setLocked(k, v, ttl)
	return true
}

func (c *Cache[K, V]) setLocked(k K, v V, ttl time.Duration) {
	now := c.now()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		c.evictLocked(now)
	}
	e := entry[V]{v: v}
	if ttl > 0 {
		e.expires = now.Add(ttl)
	}
	c.entries[k] = e
}

// evictLocked drops the expired entries and, unless that leaves a quarter
// free, every entry, so that a full cache costs one sweep per max/4 sets.
func (c *Cache[K, V]) evictLocked(now time.Time) {
	for k, e := range c.entries {
		if !e.live(now) {
			delete(c.entries, k)
		}
	}
	if len(c.entries) > c.max*3/4 {
		clear(c.entries)
	}
}

// Delete forgets k.
func (c *Cache[K, V]) Delete(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, k)
}
