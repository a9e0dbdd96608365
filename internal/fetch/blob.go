package fetch

import (
	"context"
	"fmt"
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
	rc := s.relayFor(ctx, src)
	b, joined, err := s.spool.open(ctx, src.String()+"@"+d.String(), d, func(ctx context.Context, off int64) (*http.Response, string, error) {
		if off == 0 {
			return s.do(ctx, rc, src, http.MethodGet, blobPath(src, d), nil)
		}
		// The first answer broke off: the rest from the source itself.
		c, err := s.client(src.Registry)
		if err != nil {
			return nil, "", err
		}
		resp, err := c.Do(ctx, http.MethodGet, blobPath(src, d), http.Header{"Range": {fmt.Sprintf("bytes=%d-", off)}})
		return resp, "", err
	}, func() { metrics.ProxyDigestMismatches.WithLabelValues(src.Registry).Inc() })
	if joined {
		metrics.ProxyCoalesced.WithLabelValues("blob").Inc()
	}
	return b, err
}

// BlobSize is a blob's length: from the spool when it is there, else from
// a HEAD at the relay or the source; -1 when it does not say.
func (s *Sources) BlobSize(ctx context.Context, src Source, d digest.Digest) (int64, error) {
	if size, ok := s.spool.lookup(src.String() + "@" + d.String()); ok {
		return size, nil
	}
	resp, _, err := s.do(ctx, s.relayFor(ctx, src), src, http.MethodHead, blobPath(src, d), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.ContentLength, nil
}

// StreamBlob gets a blob from the relay or the source straight, not
// spooled nor shared, for when the spool cannot take it; the caller checks
// the digest.
func (s *Sources) StreamBlob(ctx context.Context, src Source, d digest.Digest) (*http.Response, error) {
	resp, _, err := s.do(ctx, s.relayFor(ctx, src), src, http.MethodGet, blobPath(src, d), nil)
	return resp, err
}

func blobPath(src Source, d digest.Digest) registry.Path {
	return registry.Path{Repo: src.Repo, Kind: registry.Blobs, Ref: d.String(), Digest: d}
}
