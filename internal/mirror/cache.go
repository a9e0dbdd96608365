package mirror

import (
	"sync"
	"time"
)

// Outcomes of an existence check, counted in k8s_image_swapper_exists_cache_total.
const (
	cacheHit  = "hit"
	cacheMiss = "miss"
)

// existsCache remembers whether the target has an image: yes for a long
// TTL, no only briefly, so a pruned or new image is noticed soon.
type existsCache struct {
	present, missing time.Duration
	mu               sync.Mutex
	entries          map[string]cacheEntry
}

type cacheEntry struct {
	present bool
	expires time.Time
}

func newExistsCache(present, missing time.Duration) *existsCache {
	return &existsCache{present: present, missing: missing, entries: map[string]cacheEntry{}}
}

func (c *existsCache) get(key string) (present, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || time.Now().After(e.expires) {
		return false, false
	}
	return e.present, true
}

func (c *existsCache) set(key string, present bool) {
	ttl := c.missing
	if present {
		ttl = c.present
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) > 100_000 {
		c.sweep()
	}
	c.entries[key] = cacheEntry{present: present, expires: time.Now().Add(ttl)}
}

func (c *existsCache) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, key)
}

// sweep drops expired entries so the cache stays bounded; mu is held.
func (c *existsCache) sweep() {
	now := time.Now()
	for k, e := range c.entries {
		if now.After(e.expires) {
			delete(c.entries, k)
		}
	}
}
