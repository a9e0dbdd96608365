package fetch

import (
	"container/list"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/upstream"
)

// MaxManifest is distribution's own limit on a manifest's size.
const MaxManifest = 4 << 20

// Descriptor is what a manifest reference resolves to.
type Descriptor struct {
	Digest    digest.Digest
	Size      int64
	MediaType string
	// Relay is the role of the relay that answered (upstream.Hub, Peer), ""
	// when the source did: a relay that serves an image also copies it.
	Relay string
}

// Manifest is a manifest's bytes, checked against its digest.
type Manifest struct {
	Descriptor
	Body []byte
}

// ResolveTag asks the source for a tag's digest, at most once per TagTTL,
// once however many ask at the same time. A HEAD does it: Docker Hub does
// not count HEADs against its pull limit.
func (s *Sources) ResolveTag(ctx context.Context, src Source, tag string) (Descriptor, error) {
	key := src.String() + ":" + tag
	if d, ok := s.tags.Get(key); ok {
		return d, nil
	}
	rc := s.relayFor(ctx, src)
	v, err, _ := s.flight.Do("tag "+key, func() (any, error) {
		ctx := context.WithoutCancel(ctx)
		resp, relay, err := s.do(ctx, rc, src, http.MethodHead, registry.Path{Repo: src.Repo, Kind: registry.Manifests, Ref: tag}, upstream.AcceptManifests())
		if err != nil {
			return Descriptor{}, err
		}
		resp.Body.Close()
		d := Descriptor{Size: resp.ContentLength, MediaType: mediaType(resp.Header.Get("Content-Type")), Relay: relay}
		d.Digest, err = digest.Parse(resp.Header.Get("Docker-Content-Digest"))
		if err != nil || d.Size < 0 || d.MediaType == "" {
			// This registry does not say on a HEAD: read the manifest.
			m, err := s.getManifest(ctx, rc, src, tag, "")
			if err != nil {
				return Descriptor{}, err
			}
			s.manifests.add(src.String()+"@"+m.Digest.String(), m)
			d = m.Descriptor
		}
		s.tags.Set(key, d, s.opts.TagTTL)
		return d, nil
	})
	if err != nil {
		return Descriptor{}, err
	}
	return v.(Descriptor), nil
}

// Manifest gets a manifest by digest from the source, checked, from the
// cache when it can and once however many ask at the same time.
func (s *Sources) Manifest(ctx context.Context, src Source, d digest.Digest) (*Manifest, error) {
	key := src.String() + "@" + d.String()
	if m, ok := s.manifests.get(key); ok {
		metrics.ProxyCoalesced.WithLabelValues("manifest").Inc()
		return m, nil
	}
	rc := s.relayFor(ctx, src)
	v, err, shared := s.flight.Do("manifest "+key, func() (any, error) {
		m, err := s.getManifest(context.WithoutCancel(ctx), rc, src, d.String(), d)
		if err != nil {
			return nil, err
		}
		s.manifests.add(key, m)
		return m, nil
	})
	if err != nil {
		return nil, err
	}
	if shared {
		metrics.ProxyCoalesced.WithLabelValues("manifest").Inc()
	}
	return v.(*Manifest), nil
}

// getManifest reads a manifest from a source and checks it against want
// (when ref is a digest) and against the digest the source claims.
func (s *Sources) getManifest(ctx context.Context, rc *upstream.Client, src Source, ref string, want digest.Digest) (*Manifest, error) {
	resp, relay, err := s.do(ctx, rc, src, http.MethodGet, registry.Path{Repo: src.Repo, Kind: registry.Manifests, Ref: ref}, upstream.AcceptManifests())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s:%s from %s: %w", src, ref, src.Registry, err)
	}
	if len(body) > MaxManifest {
		return nil, fmt.Errorf("manifest %s:%s is larger than %d bytes", src, ref, MaxManifest)
	}
	algo := digest.Canonical
	if want != "" {
		algo = want.Algorithm()
	}
	got := algo.FromBytes(body)
	claimed, _ := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	if want != "" && got != want || claimed != "" && claimed.Algorithm() == algo && claimed != got {
		metrics.ProxyDigestMismatches.WithLabelValues(src.Registry).Inc()
		return nil, fmt.Errorf("manifest %s:%s: %w", src, ref, ErrDigestMismatch)
	}
	mt := mediaType(resp.Header.Get("Content-Type"))
	if mt == "" || mt == "application/octet-stream" || mt == "text/plain" {
		var probe struct {
			MediaType string `json:"mediaType"`
		}
		_ = json.Unmarshal(body, &probe)
		mt = probe.MediaType
	}
	return &Manifest{Descriptor: Descriptor{Digest: got, Size: int64(len(body)), MediaType: mt, Relay: relay}, Body: body}, nil
}

// mediaType drops parameters: "application/json; charset=utf-8" -> "application/json".
func mediaType(ct string) string {
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ct
	}
	return mt
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
	m   *Manifest
}

func newManifestCache(max int) *manifestCache {
	return &manifestCache{max: max, ll: list.New(), m: map[string]*list.Element{}}
}

func (c *manifestCache) get(key string) (*Manifest, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*cachedManifest).m, true
}

func (c *manifestCache) add(key string, m *Manifest) {
	if len(m.Body) > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok {
		c.ll.MoveToFront(e)
		return
	}
	c.m[key] = c.ll.PushFront(&cachedManifest{key: key, m: m})
	c.size += len(m.Body)
	for c.size > c.max {
		last := c.ll.Back()
		cm := last.Value.(*cachedManifest)
		c.ll.Remove(last)
		delete(c.m, cm.key)
		c.size -= len(cm.m.Body)
	}
}
