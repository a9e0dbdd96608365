package target

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// maxManifest is distribution's own limit on a manifest body.
const maxManifest = 4 << 20

// acceptAll asks distribution for a manifest of any kind it stores.
const acceptAll = mediaTypeIndex + ", " + mediaTypeManifest +
	", application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

// putManifest stores a manifest through distribution's handler, then: a
// digest other than sha256 is made an alias of the sha256 distribution
// stores it by (digests.go), and a manifest with a subject is recorded as
// its referrer and answered with OCI-Subject.
func (s *storeAPI) putManifest(w http.ResponseWriter, r *http.Request, name, ref string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifest+1))
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "MANIFEST_INVALID", "read the manifest: %v", err)
		return
	}
	if len(body) > maxManifest {
		writeAPIError(w, http.StatusRequestEntityTooLarge, "SIZE_INVALID", "a manifest is at most %d bytes", maxManifest)
		return
	}
	tags := r.URL.Query()["tag"]
	for _, tag := range tags {
		if c, ok := registry.ParsePath("/v2/" + name + "/manifests/" + tag); !ok || c.Digest != "" {
			writeAPIError(w, http.StatusBadRequest, "TAG_INVALID", "%q is not a tag", tag)
			return
		}
	}
	canonical := digest.Canonical.FromBytes(body)
	d, stored := canonical, ref
	if named, err := digest.Parse(ref); err == nil {
		d = named
		if named.Algorithm() != digest.Canonical {
			if !named.Algorithm().Available() || named.Algorithm().FromBytes(body) != named {
				writeAPIError(w, http.StatusBadRequest, "DIGEST_INVALID", "the manifest does not match digest %s", named)
				return
			}
			stored = canonical.String()
		}
	}
	rec := s.ask(r, http.MethodPut, "/v2/"+name+"/manifests/"+stored, "", body)
	if rec.Code != http.StatusCreated {
		replay(w, rec)
		return
	}
	h := rec.Header()
	if d != canonical {
		if err := s.alias(r.Context(), name, manifestLinks, d, canonical); err != nil {
			writeAPIError(w, http.StatusInternalServerError, "UNKNOWN", "%v", err)
			return
		}
		h.Set("Docker-Content-Digest", d.String())
		h.Set("Location", "/v2/"+name+"/manifests/"+d.String())
	}
	for _, tag := range tags {
		if err := s.tag(r, name, tag, body, d, canonical); err != nil {
			writeAPIError(w, http.StatusInternalServerError, "UNKNOWN", "%v", err)
			return
		}
		h.Add("OCI-Tag", tag)
	}
	if subject, desc, ok := referrerOf(body, d, r.Header.Get("Content-Type")); ok {
		if err := s.refs.add(name, subject, desc); err != nil {
			writeAPIError(w, http.StatusInternalServerError, "UNKNOWN", "%v", err)
			return
		}
		h.Set("OCI-Subject", subject.String())
	}
	replay(w, rec)
}

// tag points tag at the manifest just put (a PUT by digest with ?tag=,
// which distribution lacks): distribution's own PUT by tag, then, for a
// digest other than sha256, the tag's links are made to name that digest,
// so that the tag resolves to it.
func (s *storeAPI) tag(r *http.Request, name, tag string, body []byte, d, canonical digest.Digest) error {
	if rec := s.ask(r, http.MethodPut, "/v2/"+name+"/manifests/"+tag, "", body); rec.Code != http.StatusCreated {
		return fmt.Errorf("tag %s:%s: %d %s", name, tag, rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	if d == canonical {
		return nil
	}
	dir := path.Join(repositoriesRoot, name, "_manifests/tags", tag)
	for _, p := range []string{path.Join(dir, "index", d.Algorithm().String(), d.Encoded(), "link"), path.Join(dir, "current/link")} {
		if err := s.driver.PutContent(r.Context(), p, []byte(d)); err != nil {
			return fmt.Errorf("tag %s:%s at %s: %w", name, tag, d, err)
		}
	}
	return nil
}

// deleteManifest deletes through distribution's handler and, for a
// manifest with a subject, its entry in the subject's referrers. Deleting a
// tag leaves its manifest, and so its referrer entry.
func (s *storeAPI) deleteManifest(w http.ResponseWriter, r *http.Request, name, ref string) {
	d, err := digest.Parse(ref)
	if err != nil {
		s.app.ServeHTTP(w, r)
		return
	}
	old := s.ask(r, http.MethodGet, "/v2/"+name+"/manifests/"+ref, "", nil)
	rec := s.ask(r, http.MethodDelete, r.URL.Path, r.URL.RawQuery, nil)
	if rec.Code == http.StatusAccepted && old.Code == http.StatusOK {
		if subject, _, ok := referrerOf(old.Body.Bytes(), d, ""); ok {
			if err := s.refs.remove(name, subject, d); err != nil {
				// The manifest is gone; a stale entry only lists a digest
				// that answers 404, as a deleted referrer may anyway.
				slog.Default().Warn("local store: referrer entry not removed", "repository", name, "digest", d, "error", err)
			}
		}
	}
	replay(w, rec)
}
