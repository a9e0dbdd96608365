package proxy

import (
	"container/list"
	"sync"

	"github.com/opencontainers/go-digest"
)

// desc is what a manifest reference resolves to.
type desc struct {
	digest    digest.Digest
	size      int64
	mediaType string
}

// manifest is a manifest's bytes, checked against its digest.
type manifest struct {
	desc
	body []byte
}

// manifestCache keeps the manifests last fetched from sources, least
// recently used out first, within max bytes: a pull asks for each manifest
// about twice (HEAD, then GET) and the copy into the target a third time.
type manifestCache struct {
	max  int
	mu   sync.Mutex
	size int
	ll   *list.List
	m    map[string]*list.Element
}

type cachedManifest struct {
	key string
	m   *manifest
}

func newManifestCache(max int) *manifestCache {
	return &manifestCache{max: max, ll: list.New(), m: map[string]*list.Element{}}
}

func (c *manifestCache) get(key string) (*manifest, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*cachedManifest).m, true
}

func (c *manifestCache) add(key string, m *manifest) {
	if len(m.body) > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok {
		c.ll.MoveToFront(e)
		return
	}
	c.m[key] = c.ll.PushFront(&cachedManifest{key: key, m: m})
	c.size += len(m.body)
	for c.size > c.max {
		last := c.ll.Back()
		cm := last.Value.(*cachedManifest)
		c.ll.Remove(last)
		delete(c.m, cm.key)
		c.size -= len(cm.m.body)
	}
}
