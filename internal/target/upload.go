package target

import (
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
)

// postUpload starts an upload: a mount (from a given repository, or with
// none from a pushed repository that holds the blob), a whole upload in the
// one POST (?digest=), or distribution's plain upload session.
func (s *storeAPI) postUpload(w http.ResponseWriter, r *http.Request, name string) {
	q := r.URL.Query()
	if m := q.Get("mount"); m != "" {
		d, err := digest.Parse(m)
		if err != nil {
			s.app.ServeHTTP(w, r)
			return
		}
		if q.Get("from") == "" {
			if from := s.holder(r, d); from != "" {
				q.Set("from", from)
				r = withQuery(r, q)
			}
		}
		if from := q.Get("from"); from != "" && d.Algorithm() != digest.Canonical {
			// distribution links a mount under the digest asked, to that
			// same digest, which names no blob: link it to the sha256.
			src := s.ask(r, http.MethodHead, "/v2/"+from+"/blobs/"+d.String(), "", nil)
			canonical, err := digest.Parse(src.Header().Get("Docker-Content-Digest"))
			if src.Code != http.StatusOK || err != nil {
				s.app.ServeHTTP(w, r) // not there: distribution opens an upload
				return
			}
			w = s.created(w, r, name, d, canonical)
		}
		s.app.ServeHTTP(w, r) // with no from: distribution opens an upload (202)
		return
	}
	if q.Get("digest") != "" {
		s.postOnly(w, r, name)
		return
	}
	s.app.ServeHTTP(w, r)
}

// postOnly takes a whole blob in one POST, which distribution takes in two
// requests: open an upload session, then put the content into it.
func (s *storeAPI) postOnly(w http.ResponseWriter, r *http.Request, name string) {
	q := r.URL.Query()
	d := q.Get("digest")
	q.Del("digest")
	open := s.ask(r, http.MethodPost, r.URL.Path, q.Encode(), nil)
	if open.Code != http.StatusAccepted {
		replay(w, open)
		return
	}
	loc, err := url.Parse(open.Header().Get("Location"))
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, "UNKNOWN", "upload location %q: %v", open.Header().Get("Location"), err)
		return
	}
	lq := loc.Query()
	lq.Set("digest", d)
	put := r.Clone(r.Context())
	put.Method = http.MethodPut
	put.URL.Path, put.URL.RawPath, put.URL.RawQuery = loc.Path, "", lq.Encode()
	put.RequestURI = put.URL.RequestURI()
	s.putUpload(w, put, name)
}

// holder is a pushed repository (no mirror path) that holds blob d, or ""
// when none does. Mirrors are never mounted from: a mirrored blob may be
// private, and its digest alone must not copy it where anyone may read it.
// distribution's catalog lists only repositories with manifests, so its
// layout is walked instead, skipping the mirrors' top folders (their hosts).
func (s *storeAPI) holder(r *http.Request, d digest.Digest) string {
	var walk func(dir string) string
	walk = func(dir string) string {
		children, err := s.driver.List(r.Context(), dir)
		if err != nil {
			return ""
		}
		slices.Sort(children)
		for _, c := range children {
			base := path.Base(c)
			switch {
			case base == layerLinks:
				repo := strings.TrimPrefix(dir, repositoriesRoot+"/")
				if s.ask(r, http.MethodHead, "/v2/"+repo+"/blobs/"+d.String(), "", nil).Code == http.StatusOK {
					return repo
				}
			case strings.HasPrefix(base, "_"), dir == repositoriesRoot && imageref.IsMirrorPath(base):
			default:
				if repo := walk(c); repo != "" {
					return repo
				}
			}
		}
		return ""
	}
	return walk(repositoriesRoot)
}

func withQuery(r *http.Request, q url.Values) *http.Request {
	r = r.Clone(r.Context())
	r.URL.RawQuery = q.Encode()
	r.RequestURI = r.URL.RequestURI()
	return r
}
