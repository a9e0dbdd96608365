package target

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/opencontainers/go-digest"
)

// The referrers API (distribution spec 1.1), which distribution's library
// does not have. When a manifest with a subject is put, its descriptor is
// written beside the store, one file per referrer under its subject:
// <root>/<repo>/_referrers/<alg>/<hex>/<alg>-<hex>.json. The listing is
// those files, so it survives restarts; a manifest delete removes its file.

const (
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
)

// descriptor is an entry of a referrers index.
type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// manifestFields are the parts of a manifest or index a referrer needs.
type manifestFields struct {
	MediaType    string `json:"mediaType"`
	ArtifactType string `json:"artifactType"`
	Config       *struct {
		MediaType string `json:"mediaType"`
	} `json:"config"`
	Subject *struct {
		Digest digest.Digest `json:"digest"`
	} `json:"subject"`
	Annotations map[string]string `json:"annotations"`
}

// referrerOf reads body's subject and the descriptor that lists it as a
// referrer; ok is false for a manifest without a subject.
func referrerOf(body []byte, d digest.Digest, contentType string) (subject digest.Digest, desc descriptor, ok bool) {
	var m manifestFields
	if json.Unmarshal(body, &m) != nil || m.Subject == nil || m.Subject.Digest.Validate() != nil {
		return "", descriptor{}, false
	}
	desc = descriptor{MediaType: m.MediaType, Digest: d, Size: int64(len(body)), ArtifactType: m.ArtifactType, Annotations: m.Annotations}
	if desc.MediaType == "" {
		desc.MediaType = contentType
	}
	if desc.ArtifactType == "" && m.Config != nil && desc.MediaType == mediaTypeManifest {
		// The spec: an image manifest without artifactType lists its config's media type.
		desc.ArtifactType = m.Config.MediaType
	}
	return m.Subject.Digest, desc, true
}

type referrers struct {
	root string
}

func (x *referrers) dir(repo string, subject digest.Digest) string {
	return filepath.Join(x.root, filepath.FromSlash(repo), "_referrers", subject.Algorithm().String(), subject.Encoded())
}

func (x *referrers) file(repo string, subject, d digest.Digest) string {
	return filepath.Join(x.dir(repo, subject), d.Algorithm().String()+"-"+d.Encoded()+".json")
}

// add records desc as a referrer of subject in repo.
func (x *referrers) add(repo string, subject digest.Digest, desc descriptor) error {
	b, err := json.Marshal(desc)
	if err != nil {
		return fmt.Errorf("referrers: %w", err)
	}
	if err := replaceFile(x.file(repo, subject, desc.Digest), b); err != nil {
		return fmt.Errorf("referrers of %s@%s: %w", repo, subject, err)
	}
	return nil
}

// remove forgets d as a referrer of subject in repo.
func (x *referrers) remove(repo string, subject, d digest.Digest) error {
	if err := os.Remove(x.file(repo, subject, d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("referrers of %s@%s: %w", repo, subject, err)
	}
	return nil
}

// list is subject's referrers in repo, those of artifactType only when it
// is set, in digest order.
func (x *referrers) list(repo string, subject digest.Digest, artifactType string) ([]descriptor, error) {
	entries, err := os.ReadDir(x.dir(repo, subject))
	if errors.Is(err, fs.ErrNotExist) {
		return []descriptor{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("referrers of %s@%s: %w", repo, subject, err)
	}
	out := []descriptor{}
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".json" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(x.dir(repo, subject), e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("referrers of %s@%s: %w", repo, subject, err)
		}
		var d descriptor
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("referrers of %s@%s: %s: %w", repo, subject, e.Name(), err)
		}
		if artifactType == "" || d.ArtifactType == artifactType {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b descriptor) int { return cmp.Compare(a.Digest, b.Digest) })
	return out, nil
}

// serveReferrers answers GET /v2/<name>/referrers/<digest>: an image index,
// empty for a digest nothing refers to (the spec's 200, not a 404).
func (s *storeAPI) serveReferrers(w http.ResponseWriter, r *http.Request, name, ref string) {
	subject, err := digest.Parse(ref)
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "DIGEST_INVALID", "%s is not a digest", ref)
		return
	}
	artifactType := r.URL.Query().Get("artifactType")
	list, err := s.refs.list(name, subject, artifactType)
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, "UNKNOWN", "%v", err)
		return
	}
	body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mediaTypeIndex, "manifests": list})
	if artifactType != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Header().Set("Content-Type", mediaTypeIndex)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}
