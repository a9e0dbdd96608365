package mirror

import (
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/ttlcache"
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
	m                *ttlcache.Cache[string, bool]
}

func newExistsCache(present, missing time.Duration) existsCache {
	return existsCache{present: present, missing: missing, m: ttlcache.New[string, bool](100_000)}
}

func (c existsCache) get(key string) (present, ok bool) { return c.m.Get(key) }

func (c existsCache) set(key string, present bool) {
	ttl := c.missing
	if present {
		ttl = c.present
	}
	c.m.Set(key, present, ttl)
}

func (c existsCache) forget(key string) { c.m.Delete(key) }
