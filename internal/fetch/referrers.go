package fetch

import (
	"context"
	"net/http"

	"github.com/opencontainers/go-digest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// Referrers asks src for the referrers of d (the distribution spec's
// referrers API), with query (artifactType) passed on. The caller closes
// the body; a source without the API answers an *upstream.Error (404).
func (s *Sources) Referrers(ctx context.Context, src Source, d digest.Digest, query string) (*http.Response, error) {
	rc, err := s.client(src.Registry)
	if err != nil {
		return nil, err
	}
	p := registry.Path{Repo: src.Repo, Kind: "referrers", Ref: d.String(), Digest: d, Query: query}
	return rc.Do(ctx, http.MethodGet, p, http.Header{"Accept": {"application/vnd.oci.image.index.v1+json"}})
}
