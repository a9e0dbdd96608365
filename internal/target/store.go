package target

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// storeAPI is the local store's registry API: distribution's, plus what its
// library lacks for the OCI distribution spec 1.1: the referrers API and the
// OCI-Subject header (referrers.go), digests other than sha256
// (digests.go), single-POST uploads and anonymous mounts (upload.go).
// Everything else is distribution's own handler.
type storeAPI struct {
	app    http.Handler
	refs   *referrers
	driver storagedriver.StorageDriver // distribution's driver on the same folder, for digest aliases
}

func (s *storeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, kind, ref, ok := splitAPIPath(r.URL.Path)
	if !ok {
		s.app.ServeHTTP(w, r)
		return
	}
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case kind == "referrers" && read:
		s.serveReferrers(w, r, name, ref)
	case kind == registry.Manifests && r.Method == http.MethodPut:
		s.putManifest(w, r, name, ref)
	case kind == registry.Manifests && r.Method == http.MethodDelete:
		s.deleteManifest(w, r, name, ref)
	case kind == uploads && r.Method == http.MethodPost:
		s.postUpload(w, r, name)
	case kind == uploads && r.Method == http.MethodPut:
		s.putUpload(w, r, name)
	case kind == registry.Blobs && read:
		s.readBlob(w, r, ref)
	default:
		s.app.ServeHTTP(w, r)
	}
}

// uploads is the "kind" of /v2/<name>/blobs/uploads/[<id>].
const uploads = "uploads"

// splitAPIPath splits /v2/<name>/<kind>/<ref> for the kinds this layer
// handles: manifests, blobs, referrers and blob uploads (ref: the upload id).
func splitAPIPath(p string) (name, kind, ref string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", "", "", false
	}
	if i := strings.LastIndex(rest, "/blobs/uploads"); i > 0 {
		id := strings.TrimPrefix(rest[i+len("/blobs/uploads"):], "/")
		return rest[:i], uploads, id, registry.IsRepository(rest[:i]) && !strings.Contains(id, "/")
	}
	for _, k := range []string{registry.Manifests, registry.Blobs, "referrers"} {
		if i := strings.LastIndex(rest, "/"+k+"/"); i > 0 {
			ref := rest[i+len(k)+2:]
			return rest[:i], k, ref, registry.IsRepository(rest[:i]) && ref != "" && !strings.Contains(ref, "/")
		}
	}
	return "", "", "", false
}

// ask sends a request to distribution's handler and keeps its (small) answer.
func (s *storeAPI) ask(r *http.Request, method, path, query string, body []byte) *httptest.ResponseRecorder {
	in := r.Clone(r.Context())
	in.Method = method
	in.URL.Path, in.URL.RawPath, in.URL.RawQuery = path, "", query
	in.RequestURI = in.URL.RequestURI()
	in.Body = http.NoBody
	in.ContentLength = 0
	if body != nil {
		in.Body = noClose{bytes.NewReader(body)}
		in.ContentLength = int64(len(body))
	}
	if method == http.MethodGet || method == http.MethodHead {
		in.Header.Set("Accept", acceptAll)
	}
	rec := httptest.NewRecorder()
	s.app.ServeHTTP(rec, in)
	return rec
}

type noClose struct{ *bytes.Reader }

func (noClose) Close() error { return nil }

// replay writes a kept answer.
func replay(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// writeAPIError answers in the spec's error format.
func writeAPIError(w http.ResponseWriter, status int, code, format string, args ...any) {
	body, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": fmt.Sprintf(format, args...)}}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// headerFix changes the headers of an answer as it is written.
type headerFix struct {
	http.ResponseWriter
	fix   func(code int, h http.Header) int // returns the status to write
	wrote bool
}

func (f *headerFix) WriteHeader(code int) {
	if f.wrote {
		return
	}
	f.wrote = true
	f.ResponseWriter.WriteHeader(f.fix(code, f.ResponseWriter.Header()))
}

func (f *headerFix) Write(b []byte) (int, error) {
	if !f.wrote {
		f.WriteHeader(http.StatusOK)
	}
	return f.ResponseWriter.Write(b)
}

func (f *headerFix) Flush() {
	if fl, ok := f.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}
