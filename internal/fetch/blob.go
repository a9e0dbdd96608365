package fetch

import (
	"context"
	"net/http"

	"github.com/opencontainers/go-digest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/metrics"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// OpenBlob returns a blob from the source through the spool: one fetch
// however many read it, at the same time or shortly after. It returns once
// the source has answered; the caller reads and then calls Release. An
// error wrapping ErrSpool says the spool cannot take it (StreamBlob can).
func (s *Sources) OpenBlob(ctx context.Context, src Source, d digest.Digest) (*Blob, error) {
	c, err := s.client(src.Registry)
	if err != nil {
		return nil, err
	}
	b, joined, err := s.spool.open(ctx, src.String()+"@"+d.String(), d, func(ctx context.Context) (*http.Response, error) {
		metrics.ProxySourceFetches.WithLabelValues(src.Registry, "blob").Inc()
		return c.Do(ctx, http.MethodGet, blobPath(src, d), nil)
	}, func() { metrics.ProxyDigestMismatches.WithLabelValues(src.Registry).Inc() })
	if joined {
		metrics.ProxyCoalesced.WithLabelValues("blob").Inc()
	}
	return b, err
}

// BlobSize is a blob's length: from the spool when it is there, else from
// a HEAD at the source; -1 when the source does not say.
func (s *Sources) BlobSize(ctx context.Context, src Source, d digest.Digest) (int64, error) {
	if size, ok := s.spool.lookup(src.String() + "@" + d.String()); ok {
		return size, nil
	}
	c, err := s.client(src.Registry)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(ctx, http.MethodHead, blobPath(src, d), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.ContentLength, nil
}

// StreamBlob gets a blob from the source straight, not spooled nor shared,
// for when the spool cannot take it; the caller checks the digest.
func (s *Sources) StreamBlob(ctx context.Context, src Source, d digest.Digest) (*http.Response, error) {
	c, err := s.client(src.Registry)
	if err != nil {
		return nil, err
	}
	return c.Do(ctx, http.MethodGet, blobPath(src, d), nil)
}

func blobPath(src Source, d digest.Digest) registry.Path {
	return registry.Path{Repo: src.Repo, Kind: registry.Blobs, Ref: d.String(), Digest: d}
}
