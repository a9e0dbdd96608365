package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
)

// maxManifest is distribution's own limit on a manifest's size.
const maxManifest = 4 << 20

func acceptManifests() http.Header { return http.Header{"Accept": {manifestAccept}} }

// sourceUpstream returns the upstream for a source registry, made on first use.
func (p *Proxy) sourceUpstream(registry string) (*upstream, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u, ok := p.sources[registry]; ok {
		return u, nil
	}
	reg, err := name.NewRegistry(registry, p.opts.Sources.NameOptions(registry)...)
	if err != nil {
		return nil, fmt.Errorf("source registry %s: %w", registry, err)
	}
	keychain := p.keychain
	u := &upstream{
		role:    roleSource,
		label:   registry,
		reg:     reg,
		auth:    func(context.Context) (authn.Authenticator, error) { return keychain.Resolve(reg) },
		base:    p.opts.Transport,
		follow:  true,
		timeout: p.opts.UpstreamTimeout,
		sem:     make(chan struct{}, p.opts.MaxConcurrent),
		repos:   newRepoTransports(),
	}
	p.sources[registry] = u
	return u, nil
}

// resolveTag asks the source for a tag's digest, at most once per tagTTL,
// once however many ask at the same time. A HEAD does it: Docker Hub does
// not count HEADs against its pull limit.
func (p *Proxy) resolveTag(ctx context.Context, s source, tag string) (desc, error) {
	key := s.String() + ":" + tag
	if d, ok := p.tags.Get(key); ok {
		return d, nil
	}
	v, err, _ := p.flight.Do("tag "+key, func() (any, error) {
		ctx := context.WithoutCancel(ctx)
		u, err := p.sourceUpstream(s.registry)
		if err != nil {
			return desc{}, err
		}
		resp, err := u.do(ctx, http.MethodHead, s.repo, kindManifests, tag, acceptManifests())
		if err != nil {
			return desc{}, err
		}
		resp.Body.Close()
		d := desc{size: resp.ContentLength, mediaType: mediaType(resp.Header.Get("Content-Type"))}
		d.digest, err = digest.Parse(resp.Header.Get("Docker-Content-Digest"))
		if err != nil || d.size < 0 || d.mediaType == "" {
			// This registry does not say on a HEAD: read the manifest.
			m, err := p.getManifest(ctx, u, s, tag, "")
			if err != nil {
				return desc{}, err
			}
			p.manifests.add(s.String()+"@"+m.digest.String(), m)
			d = m.desc
		}
		p.tags.Set(key, d, p.opts.TagTTL)
		return d, nil
	})
	if err != nil {
		return desc{}, err
	}
	return v.(desc), nil
}

// fetchManifest gets a manifest by digest from the source, checked, from
// the cache when it can and once however many ask at the same time.
func (p *Proxy) fetchManifest(ctx context.Context, s source, d digest.Digest) (*manifest, error) {
	key := s.String() + "@" + d.String()
	if m, ok := p.manifests.get(key); ok {
		metrics.ProxyCoalesced.WithLabelValues("manifest").Inc()
		return m, nil
	}
	v, err, shared := p.flight.Do("manifest "+key, func() (any, error) {
		u, err := p.sourceUpstream(s.registry)
		if err != nil {
			return nil, err
		}
		m, err := p.getManifest(context.WithoutCancel(ctx), u, s, d.String(), d)
		if err != nil {
			return nil, err
		}
		p.manifests.add(key, m)
		return m, nil
	})
	if err != nil {
		return nil, err
	}
	if shared {
		metrics.ProxyCoalesced.WithLabelValues("manifest").Inc()
	}
	return v.(*manifest), nil
}

// getManifest reads a manifest from a source and checks it against want
// (when ref is a digest) and against the digest the source claims.
func (p *Proxy) getManifest(ctx context.Context, u *upstream, s source, ref string, want digest.Digest) (*manifest, error) {
	metrics.ProxySourceFetches.WithLabelValues(s.registry, "manifest").Inc()
	resp, err := u.do(ctx, http.MethodGet, s.repo, kindManifests, ref, acceptManifests())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s:%s from %s: %w", s, ref, s.registry, err)
	}
	if len(body) > maxManifest {
		return nil, fmt.Errorf("manifest %s:%s is larger than %d bytes", s, ref, maxManifest)
	}
	algo := digest.Canonical
	if want != "" {
		algo = want.Algorithm()
	}
	got := algo.FromBytes(body)
	claimed, _ := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	if want != "" && got != want || claimed != "" && claimed.Algorithm() == algo && claimed != got {
		metrics.ProxyDigestMismatches.WithLabelValues(s.registry).Inc()
		return nil, fmt.Errorf("manifest %s:%s: %w", s, ref, errDigestMismatch)
	}
	mt := mediaType(resp.Header.Get("Content-Type"))
	if mt == "" || mt == "application/octet-stream" || mt == "text/plain" {
		var probe struct {
			MediaType string `json:"mediaType"`
		}
		_ = json.Unmarshal(body, &probe)
		mt = probe.MediaType
	}
	return &manifest{desc: desc{digest: got, size: int64(len(body)), mediaType: mt}, body: body}, nil
}

// openBlob returns a blob from the source through the spool: one fetch
// however many read it, at the same time or shortly after.
func (p *Proxy) openBlob(ctx context.Context, s source, d digest.Digest) (*spoolBlob, error) {
	u, err := p.sourceUpstream(s.registry)
	if err != nil {
		return nil, err
	}
	b, joined, err := p.spool.open(ctx, s.String()+"@"+d.String(), d, func(ctx context.Context) (*http.Response, error) {
		metrics.ProxySourceFetches.WithLabelValues(s.registry, "blob").Inc()
		return u.do(ctx, http.MethodGet, s.repo, kindBlobs, d.String(), nil)
	}, func() { metrics.ProxyDigestMismatches.WithLabelValues(s.registry).Inc() })
	if joined {
		metrics.ProxyCoalesced.WithLabelValues("blob").Inc()
	}
	return b, err
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
