package target

import (
	"context"
	_ "crypto/sha512" // sha512 digests, as the OCI spec allows
	"fmt"
	"log/slog"
	"net/http"
	"path"

	"github.com/opencontainers/go-digest"
)

// Digests other than sha256. distribution stores content by sha256 and
// finds it by another digest through a link, which its blob uploads write
// (?digest=sha512:...) but its manifest puts and mounts do not; and it
// answers with the sha256. Here the missing links are written, in its own
// layout, and answers name the digest the client asked for.

// distribution's layout: its repositories, and link folders in each.
const (
	repositoriesRoot = "/docker/registry/v2/repositories"
	manifestLinks    = "_manifests/revisions"
	layerLinks       = "_layers"
)

// alias makes distribution find canonical's content in repo by d as well:
// <root>/docker/registry/v2/repositories/<repo>/<kind>/<alg>/<hex>/link.
func (s *storeAPI) alias(ctx context.Context, repo, kind string, d, canonical digest.Digest) error {
	p := path.Join(repositoriesRoot, repo, kind, d.Algorithm().String(), d.Encoded(), "link")
	if err := s.driver.PutContent(ctx, p, []byte(canonical)); err != nil {
		return fmt.Errorf("link %s@%s to %s: %w", repo, d, canonical, err)
	}
	return nil
}

// readBlob serves a blob, under the digest it was asked by.
func (s *storeAPI) readBlob(w http.ResponseWriter, r *http.Request, ref string) {
	d, err := digest.Parse(ref)
	if err != nil || d.Algorithm() == digest.Canonical {
		s.app.ServeHTTP(w, r)
		return
	}
	s.app.ServeHTTP(&headerFix{ResponseWriter: w, fix: func(code int, h http.Header) int {
		if code < http.StatusMultipleChoices {
			h.Set("Docker-Content-Digest", d.String())
			h.Set("ETag", `"`+d.String()+`"`)
		}
		return code
	}}, r)
}

// putUpload completes an upload; one named by another digest is answered
// by that digest (distribution links both).
func (s *storeAPI) putUpload(w http.ResponseWriter, r *http.Request, name string) {
	d, err := digest.Parse(r.URL.Query().Get("digest"))
	if err != nil || d.Algorithm() == digest.Canonical {
		s.app.ServeHTTP(w, r)
		return
	}
	s.app.ServeHTTP(s.created(w, r, name, d, ""), r)
}

// created names a blob created in name by d. A mount of canonical's
// content is linked under both digests, as an upload is.
func (s *storeAPI) created(w http.ResponseWriter, r *http.Request, name string, d, canonical digest.Digest) http.ResponseWriter {
	return &headerFix{ResponseWriter: w, fix: func(code int, h http.Header) int {
		if code != http.StatusCreated {
			return code
		}
		if canonical != "" {
			err := s.alias(r.Context(), name, layerLinks, canonical, canonical)
			if err == nil {
				err = s.alias(r.Context(), name, layerLinks, d, canonical)
			}
			if err != nil {
				slog.Default().Warn("local store: mount by a non-sha256 digest failed", "repository", name, "digest", d, "error", err)
				return http.StatusInternalServerError
			}
		}
		h.Set("Docker-Content-Digest", d.String())
		h.Set("Location", "/v2/"+name+"/blobs/"+d.String())
		return code
	}}
}
